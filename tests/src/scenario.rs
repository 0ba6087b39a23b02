//! Building blocks shared by the demo and the end-to-end tests: a coordinator with a tenant
//! and a site, agents enrolled with one-time tokens, each with simulated printers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use base64::Engine as _;
use hyper::StatusCode;
use rand::RngCore;
use serde_json::{json, Value};

use crate::api_client::ApiClient;
use crate::cluster::{wait_for, AgentProc, CoordinatorProc};
use crate::printer_sim::{self, SimConfig, SimHandle, SimMode};

/// A tenant with one site on a fresh coordinator.
pub struct Site {
    /// Scratch directory holding every data directory and log.
    pub root: PathBuf,
    /// The coordinator process.
    pub coordinator: CoordinatorProc,
    /// An admin session.
    pub admin: ApiClient,
    /// Tenant id.
    pub tenant: String,
    /// Site id.
    pub site: String,
}

/// One agent with its simulated printers.
pub struct Station {
    /// The agent process.
    pub agent: AgentProc,
    /// Its printers (name, simulator).
    pub printers: Vec<(String, SimHandle)>,
}

impl Site {
    /// Starts a coordinator under `root` and creates a tenant and a site.
    pub async fn new(root: &Path) -> anyhow::Result<Site> {
        Self::new_with(root, &[]).await
    }

    /// Like [`Site::new`], with extra coordinator `serve` flags.
    pub async fn new_with(root: &Path, coordinator_args: &[String]) -> anyhow::Result<Site> {
        let coordinator = CoordinatorProc::start_new_with(root, coordinator_args).await?;
        let admin = coordinator.admin().await?;
        let (tenant, site) = new_tenant(&admin).await?;
        Ok(Site {
            root: root.to_owned(),
            coordinator,
            admin,
            tenant,
            site,
        })
    }

    /// A session of a new user of the tenant with `roles`, created by a new owner of the
    /// tenant (only an owner grants `pii_reader`; a platform admin may not).
    pub async fn tenant_user(&self, name: &str, roles: &[&str]) -> anyhow::Result<ApiClient> {
        const PASSWORD: &str = "Tenant-User-Pass-9";
        let users = format!("/v1/tenants/{}/users", self.tenant);
        let owner_email = format!("owner-{name}@acme.example");
        self.admin
            .post(
                &users,
                json!({"email": owner_email, "password": PASSWORD, "roles": ["owner"]}),
                StatusCode::CREATED,
            )
            .await?;
        let owner = self.admin.login(&owner_email, PASSWORD).await?;
        let email = format!("{name}@acme.example");
        owner
            .post(
                &users,
                json!({"email": email, "password": PASSWORD, "roles": roles}),
                StatusCode::CREATED,
            )
            .await?;
        self.admin.login(&email, PASSWORD).await
    }

    /// A fresh one-time enrollment token for this site.
    pub async fn token(&self) -> anyhow::Result<String> {
        enrollment_token(&self.admin, &self.tenant, &self.site).await
    }

    /// Enrolls and starts agent number `n` with `printers` simulated printers of `pool`
    /// (serials `SIM<n><k>`), plus `extra` agent flags.
    pub async fn station(
        &self,
        n: usize,
        printers: usize,
        pool: &str,
        extra: &[String],
    ) -> anyhow::Result<Station> {
        self.station_with_env(n, printers, pool, extra, &[]).await
    }

    /// Like [`Site::station`], with extra environment variables for the agent process.
    pub async fn station_with_env(
        &self,
        n: usize,
        printers: usize,
        pool: &str,
        extra: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Station> {
        let dir = self.root.join(format!("agent-{n}"));
        AgentProc::enroll(&dir, &self.token().await?).await?;
        let mut sims = Vec::new();
        let mut config = String::new();
        for k in 0..printers {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let sim = printer_sim::start(
                listener,
                SimConfig {
                    serial: format!("SIM{n}{k}"),
                    model: "ZD421-300dpi".into(),
                    mode: SimMode::Normal,
                },
                None,
            )
            .await;
            let name = format!("zebra-{n}-{k}");
            config.push_str(&format!(
                "[[printer]]\nname = \"{name}\"\nuri = \"raw://{}\"\npool = \"{pool}\"\n",
                sim.addr()
            ));
            sims.push((name, sim));
        }
        let config_path = self.root.join(format!("agent-{n}.toml"));
        std::fs::write(&config_path, config)?;
        let mut args = vec!["--config".to_owned(), config_path.display().to_string()];
        args.extend_from_slice(extra);
        let log = self.root.join(format!("agent-{n}.log"));
        let agent = AgentProc::start_with_env(&dir, &log, &args, env).await?;
        Ok(Station {
            agent,
            printers: sims,
        })
    }

    /// Waits until the coordinator lists `count` verified printers of the tenant.
    pub async fn wait_printers(&self, count: usize) -> anyhow::Result<()> {
        wait_printers(&self.admin, &self.tenant, count, Duration::from_secs(30)).await
    }

    /// Submits a ZPL label to `pool`; returns the job id.
    pub async fn submit(&self, target: Value, label: &[u8]) -> anyhow::Result<String> {
        submit(&self.admin, &self.tenant, target, label).await
    }

    /// The job's current JSON.
    pub async fn job(&self, id: &str) -> anyhow::Result<Value> {
        job(&self.admin, &self.tenant, id).await
    }

    /// Waits until the job reaches one of the final states; returns it.
    pub async fn wait_final(&self, id: &str, limit: Duration) -> anyhow::Result<Value> {
        wait_final(&self.admin, &self.tenant, id, limit).await
    }
}

/// Creates a tenant ("Acme Fulfilment") with one site ("Warehouse 1") through `admin`, and
/// opens the coordinator's two gates for it: an active subscription (provisioning) and a
/// complete security attestation (labels print as they are). Returns (tenant id, site id).
pub async fn new_tenant(admin: &ApiClient) -> anyhow::Result<(String, String)> {
    let tenant = admin
        .post(
            "/v1/tenants",
            json!({"name": "Acme Fulfilment"}),
            StatusCode::CREATED,
        )
        .await?["id"]
        .as_str()
        .context("tenant id")?
        .to_owned();
    let site = admin
        .post(
            &format!("/v1/tenants/{tenant}/sites"),
            json!({"name": "Warehouse 1"}),
            StatusCode::CREATED,
        )
        .await?["id"]
        .as_str()
        .context("site id")?
        .to_owned();
    for (what, body) in [
        ("subscription", json!({"state": "active"})),
        ("attestation", attestation()),
    ] {
        let path = format!("/v1/tenants/{tenant}/{what}");
        let (status, answer) = admin.call(hyper::Method::PUT, &path, Some(body)).await?;
        if status != StatusCode::OK {
            return Err(anyhow!("PUT {path}: {status} {answer}"));
        }
    }
    Ok((tenant, site))
}

/// A complete security attestation (every item of the checklist answered yes).
pub fn attestation() -> Value {
    json!({
        "supported_os": true,
        "os_updates_applied": true,
        "endpoint_protection": true,
        "screen_lock_minutes": 5,
        "wifi_wpa2_or_wpa3": true,
        "no_print_to_file_drivers": true,
        "authorized_personnel_only": true,
        "credentials_confidential": true,
    })
}

/// A fresh one-time enrollment token for `site`.
pub async fn enrollment_token(
    admin: &ApiClient,
    tenant: &str,
    site: &str,
) -> anyhow::Result<String> {
    let path = format!("/v1/tenants/{tenant}/sites/{site}/enrollment-tokens");
    Ok(
        admin.post(&path, json!({}), StatusCode::CREATED).await?["token"]
            .as_str()
            .context("token")?
            .to_owned(),
    )
}

/// Waits up to `limit` until the coordinator lists `count` verified, ready printers of
/// `tenant`.
pub async fn wait_printers(
    admin: &ApiClient,
    tenant: &str,
    count: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{tenant}/printers");
    wait_for("verified printers", limit, || async {
        let list = admin.get(&path).await?;
        let n = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["verified"] == json!(true) && p["status"] == json!("ready"))
                    .count()
            })
            .unwrap_or(0);
        Ok((n >= count).then_some(()))
    })
    .await
}

/// Submits a ZPL label for `target` (e.g. `{"pool": "outbound"}`); returns the job id.
pub async fn submit(
    admin: &ApiClient,
    tenant: &str,
    target: Value,
    label: &[u8],
) -> anyhow::Result<String> {
    let mut body = target;
    body["format"] = json!("zpl");
    body["content_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(label));
    let path = format!("/v1/tenants/{tenant}/labels");
    let answer = admin.post(&path, body, StatusCode::ACCEPTED).await?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no job id in {answer}"))
}

/// A job's current JSON.
pub async fn job(admin: &ApiClient, tenant: &str, id: &str) -> anyhow::Result<Value> {
    admin
        .get(&format!("/v1/tenants/{tenant}/labels/{id}"))
        .await
}

/// Waits up to `limit` until the job reaches one of the final states; returns it.
pub async fn wait_final(
    admin: &ApiClient,
    tenant: &str,
    id: &str,
    limit: Duration,
) -> anyhow::Result<Value> {
    wait_for("a final job state", limit, || async {
        let job = job(admin, tenant, id).await?;
        let done = matches!(
            job["status"].as_str(),
            Some("printed" | "failed" | "in_doubt")
        );
        Ok(done.then_some(job))
    })
    .await
}

/// Files under `dir` (recursively) that hold `needle` raw, in base64 or inside a gzip
/// stream (see [`crate::leak_scan`]): where a label's text would be on disk. Run it once the
/// processes have stopped, so every log line and store write is on disk.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    crate::leak_scan::leaks(dir, needle)
}

/// A ZPL label carrying a made-up buyer's name and address with a unique marker, so tests
/// can look for its text on disk and in logs.
pub fn zpl_label(marker: &str, n: usize) -> Vec<u8> {
    format!(
        "^XA^CF0,30^FO50,50^FDShip to: Jane {marker} Doe^FS^FO50,90^FD{n} Elm Street {marker}^FS\
         ^FO50,130^FDSpringfield IL 62704^FS^BY3^FO50,200^BCN,100,Y,N,N^FD1Z999AA1{n:08}^FS^XZ"
    )
    .into_bytes()
}

/// Which label of [`zpl_label`] `bytes` is (its `n`), if it carries `marker`: the first one
/// when `bytes` hold several.
pub fn label_index(bytes: &[u8], marker: &str) -> Option<usize> {
    label_indices(bytes, marker).first().copied()
}

/// Every label of [`zpl_label`] with `marker` in `bytes` (a connection can carry several),
/// in order, by their `n`; a marked label whose number cannot be read counts as `usize::MAX`,
/// so a mangled copy is never missed.
pub fn label_indices(bytes: &[u8], marker: &str) -> Vec<usize> {
    let text = String::from_utf8_lossy(bytes);
    let needle = format!(" Elm Street {marker}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        let end = from + at;
        let n = text[..end]
            .rfind("^FD")
            .and_then(|start| text[start + 3..end].parse().ok())
            .unwrap_or(usize::MAX);
        found.push(n);
        from = end + needle.len();
    }
    found
}

/// A random marker of 16 hex characters.
pub fn marker() -> String {
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("PII{}", hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_index_finds_n() {
        assert_eq!(label_index(&zpl_label("PIIab", 42), "PIIab"), Some(42));
        assert_eq!(label_index(&zpl_label("PIIab", 42), "PIIcd"), None);
    }

    #[test]
    fn label_indices_finds_every_label_of_a_connection() {
        let mut two = zpl_label("PIIab", 7);
        two.extend(zpl_label("PIIab", 7));
        two.extend(zpl_label("PIIab", 9));
        assert_eq!(label_indices(&two, "PIIab"), [7, 7, 9]);
        assert_eq!(
            label_indices(b"^FDx Elm Street PIIab", "PIIab"),
            [usize::MAX]
        );
    }
}
