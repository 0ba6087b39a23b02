//! The compose demo's one-shots (`deploy/compose.yaml`, binary `sealprint-compose-demo`):
//! TEST AND DEMO CODE, packaged only in the `sealprint-demo` image, never in a production one.
//!
//! The containers share one volume, the hand-over directory (`/handover`), owned by the
//! containers' uid 10001 and holding, mode 0600:
//! - `admin-password`: made by [`secrets`] before the coordinator's `init` reads it;
//! - `tenant.json`: the tenant and site ids [`bootstrap`] created (`{"tenant","site"}`);
//! - `agent-N.token`: one one-time enrollment token per agent, which the agent reads with
//!   `run --enroll-token-file` (a file, never a command line or the environment).
//!
//! Each step does nothing that is already done, so `up` can run again on the same volumes.
//! Nothing here logs a secret or a label's content (ids and counts only).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_client::ApiClient;
use crate::cluster::wait_for;
use crate::scenario::{self, zpl_label};

/// The first admin's e-mail in the compose demo.
pub const ADMIN_EMAIL: &str = "admin@sealprint.demo";

/// The marker in the demo's labels (see [`zpl_label`]): the compose test looks for it in
/// what the simulated printers recorded.
pub const MARKER: &str = "PIIcomposedemo";

/// The hand-over file with the tenant and site ids.
const TENANT_FILE: &str = "tenant.json";

/// The tenant and site the bootstrap made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantIds {
    /// Tenant id.
    pub tenant: String,
    /// Site id.
    pub site: String,
}

/// Where the API is and how to trust it.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    /// `HOST:PORT` (resolved on each connection attempt: the name is a compose service).
    pub api: String,
    /// The coordinator's self-signed certificate (PEM).
    pub ca_file: PathBuf,
    /// The hand-over directory.
    pub handover: PathBuf,
}

/// Writes `bytes` to `path` with mode 0600, unless the file exists. Returns whether it wrote.
fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Makes the admin password (random, meeting the account rules) unless it exists.
pub fn secrets(handover: &Path) -> anyhow::Result<()> {
    let mut raw = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut raw);
    // Upper, lower, digit and a special character, as the account rules want.
    let password = format!("Demo-{}-x9", hex::encode(raw));
    let path = handover.join("admin-password");
    if write_new_private(&path, password.as_bytes())? {
        println!("admin password written to {}", path.display());
    } else {
        println!("admin password kept ({} exists)", path.display());
    }
    Ok(())
}

/// Logs in as the demo's admin, retrying until the API answers (up to `limit`).
async fn admin(target: &ApiTarget, limit: Duration) -> anyhow::Result<ApiClient> {
    let password_file = target.handover.join("admin-password");
    let password = std::fs::read_to_string(&password_file)
        .with_context(|| format!("reading {}", password_file.display()))?;
    let last = std::cell::RefCell::new(String::new());
    let client = wait_for("the coordinator's API", limit, || {
        let last = &last;
        let password = password.trim().to_owned();
        async move {
            let attempt = async {
                let addr: SocketAddr = tokio::net::lookup_host(&target.api)
                    .await
                    .with_context(|| format!("resolving {}", target.api))?
                    .next()
                    .with_context(|| format!("{} has no address", target.api))?;
                ApiClient::new(addr, &target.ca_file)?
                    .login(ADMIN_EMAIL, &password)
                    .await
            };
            match attempt.await {
                Ok(c) => Ok(Some(c)),
                Err(e) => {
                    *last.borrow_mut() = format!("{e:#}");
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    Ok(None)
                }
            }
        }
    })
    .await
    .with_context(|| format!("last error: {}", last.borrow()))?;
    Ok(client)
}

/// Creates the tenant (subscription active, attestation complete) and its site unless
/// `tenant.json` says it exists, then one enrollment token per agent without a token file.
pub async fn bootstrap(target: &ApiTarget, agents: &[String]) -> anyhow::Result<()> {
    let admin = admin(target, Duration::from_secs(120)).await?;
    let tenant_file = target.handover.join(TENANT_FILE);
    let ids = match std::fs::read(&tenant_file) {
        Ok(bytes) => {
            let ids: TenantIds = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", tenant_file.display()))?;
            println!("tenant {} site {} (kept)", ids.tenant, ids.site);
            ids
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (tenant, site) = scenario::new_tenant(&admin).await?;
            println!("tenant {tenant} site {site}: subscription active, attestation complete");
            let ids = TenantIds { tenant, site };
            write_new_private(&tenant_file, &serde_json::to_vec(&ids)?)?;
            ids
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", tenant_file.display())),
    };
    for agent in agents {
        let path = target.handover.join(format!("{agent}.token"));
        if path.exists() {
            println!("{agent}: token file kept");
            continue;
        }
        let token = scenario::enrollment_token(&admin, &ids.tenant, &ids.site).await?;
        write_new_private(&path, token.as_bytes())?;
        println!(
            "{agent}: one-time enrollment token written to {}",
            path.display()
        );
    }
    Ok(())
}

/// Waits for `printers` verified printers, prints `count` labels to pool `outbound` and
/// waits until each is printed; fails unless all are.
pub async fn labels(target: &ApiTarget, printers: usize, count: usize) -> anyhow::Result<()> {
    let admin = admin(target, Duration::from_secs(120)).await?;
    let tenant_file = target.handover.join(TENANT_FILE);
    let ids: TenantIds = serde_json::from_slice(
        &std::fs::read(&tenant_file)
            .with_context(|| format!("reading {}", tenant_file.display()))?,
    )?;
    if let Err(e) =
        scenario::wait_printers(&admin, &ids.tenant, printers, Duration::from_secs(90)).await
    {
        // Say which printers the coordinator knows and in what state (ids, no addresses).
        let known = admin
            .get(&format!("/v1/tenants/{}/printers", ids.tenant))
            .await
            .ok()
            .and_then(|list| list.as_array().cloned())
            .unwrap_or_default();
        let states: Vec<String> = known
            .iter()
            .map(|p| {
                format!(
                    "{} verdict={} status={}",
                    p["id"].as_str().unwrap_or("?"),
                    p["verdict"].as_str().unwrap_or("?"),
                    p["status"].as_str().unwrap_or("?")
                )
            })
            .collect();
        bail!(
            "{printers} printers were not verified and ready ({e:#}); the coordinator knows \
             {}: [{}]",
            states.len(),
            states.join("; ")
        );
    }
    println!("{printers} printers verified");
    let mut jobs = Vec::with_capacity(count);
    for i in 0..count {
        let id = scenario::submit(
            &admin,
            &ids.tenant,
            json!({"pool": "outbound"}),
            &zpl_label(MARKER, i),
        )
        .await?;
        jobs.push(id);
    }
    let mut failed = 0;
    for id in &jobs {
        let job = scenario::wait_final(&admin, &ids.tenant, id, Duration::from_secs(120)).await?;
        let status = job["status"].as_str().unwrap_or("?");
        println!(
            "label {id}: {status} on printer {}",
            job["printer"].as_str().unwrap_or("-")
        );
        if status != "printed" {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {count} labels did not print");
    }
    println!("{count} labels printed end to end");
    Ok(())
}
