//! Wires the agent for the commands that change the station: enrollment and the running agent
//! (self-check, station, mesh); the commands that read it are in `operator`. `main` parses the
//! command line and calls these; they own the process's output on stdout (no PII).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sealprint_agent::config::{self, Flags, RunConfig};
use sealprint_agent::mesh::{self, MeshOptions};
use sealprint_agent::printer::Timeouts;
use sealprint_agent::station::Station;
use sealprint_agent::{doctor, enroll, host, identity::DeviceIdentity, update};
use sealprint_protocol::EnrollmentToken;
use sealprint_release::ReleasePublicKey;
use tokio_util::sync::CancellationToken;

/// How long a stopping agent lets its jobs finish.
const DRAIN_GRACE: Duration = sealprint_agent::service::DRAIN_GRACE;

/// Reads the TOML file (if any) and resolves it with the flags, reporting every problem.
pub fn load(config: Option<&Path>, flags: Flags) -> anyhow::Result<RunConfig> {
    let file = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            config::parse_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => config::FileConfig::default(),
    };
    config::resolve(file, flags).map_err(|problems| {
        anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
    })
}

/// Enrolls this device with a token (`-` reads it from standard input).
/// `name` is the station's name in the coordinator; default: this machine's host name.
pub async fn enroll(
    data_dir: &Path,
    token: &str,
    name: Option<String>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let token = if token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_line(&mut s)
            .context("reading the token")?;
        s
    } else {
        token.to_owned()
    };
    let token: EnrollmentToken = token.parse().context("enrollment token")?;
    let hostname = name.unwrap_or_else(host::name);
    let id = enroll::enroll(data_dir, &token, &hostname, timeout).await?;
    // The operator's confirmation, on stdout by design.
    println!("enrolled as {}", id.device_id());
    Ok(())
}

/// `run --enroll-token-file`: enrolls `data_dir` with the token in `file` unless it is
/// enrolled already (it has a device certificate), so a container can start the same way
/// every time. The station's name is the host name.
pub async fn enroll_once(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    if data_dir.join("device.cert").exists() {
        return Ok(());
    }
    let token = std::fs::read_to_string(file)
        .with_context(|| format!("reading the enrollment token file {}", file.display()))?;
    enroll(data_dir, token.trim(), None, Duration::from_secs(30)).await
}

/// Runs the agent until `shutdown`: the station's own checks, its printers, the mesh.
/// `started` is called once the agent is up (keys loaded, printers probed, mesh listening,
/// the READY line printed): the Windows service reports Running only then.
pub async fn agent(
    cfg: RunConfig,
    shutdown: CancellationToken,
    started: impl FnOnce(),
) -> anyhow::Result<()> {
    let identity = DeviceIdentity::load(&cfg.data_dir)?;
    // The station's own compliance checks (no printer probes: the station does those),
    // reported to the coordinator in every heartbeat.
    let checks = doctor::run(&doctor::DoctorOptions {
        data_dir: cfg.data_dir.clone(),
        printers: Vec::new(),
        cups_server: None,
        cups_config_dir: None,
        min_version: None,
        next_min_version: None,
        timeouts: Timeouts::default(),
    })
    .await;
    let findings = doctor::findings(&checks);
    let update = update_policy(&identity, &cfg);
    let station = Station::new(cfg.printers, Some(&cfg.data_dir), Timeouts::default())?;
    station.probe_all().await;
    let opts = MeshOptions {
        update: update.clone(),
        findings,
        listen: cfg.listen,
        peers: cfg.peers,
        uplink: cfg.uplink,
        mdns: cfg.mdns,
        heartbeat_interval: cfg.heartbeat_interval,
        drain_grace: DRAIN_GRACE,
        data_dir: cfg.data_dir.clone(),
    };
    let metrics = match cfg.metrics_listen {
        Some(addr) => Some(
            sealprint_agent::metrics::listen(addr, shutdown.clone())
                .await
                .with_context(|| format!("binding the metrics listener on {addr}"))?,
        ),
        None => None,
    };
    let (mut ready, event_loop) = mesh::start(identity, station, opts, shutdown.clone()).await?;
    ready.metrics = metrics.map(|a| a.to_string());
    // Harnesses and operators read this line to learn the bound addresses.
    println!("READY {}", serde_json::to_string(&ready)?);
    started();
    if let Some(version) = event_loop.await {
        restart_into(&update, &cfg.data_dir, &version, shutdown).await?;
    }
    Ok(())
}

/// The update policy: the release key pinned at enrollment, this binary's path and
/// arguments (taken now, before any swap), the trial's length.
fn update_policy(identity: &DeviceIdentity, cfg: &RunConfig) -> update::UpdatePolicy {
    let release_key = identity
        .coordinator
        .release_public
        .as_deref()
        .and_then(|hex| match ReleasePublicKey::from_hex(hex) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, "pinned release key unreadable; remote updates off");
                None
            }
        });
    update::UpdatePolicy {
        release_key,
        allow_downgrade: cfg.allow_update_downgrade,
        trial: cfg.update_trial,
        exe: std::env::current_exe().ok(),
        args: std::env::args_os().skip(1).collect(),
        on_trial: std::env::var(update::TRIAL_ENV).ok(),
    }
}

/// After the mesh stopped for an update: on Linux, the trial of the new binary (this process
/// re-executes into it or, on failure, into the restored previous one); on Windows, an exit
/// code that makes the service manager start the new binary.
async fn restart_into(
    policy: &update::UpdatePolicy,
    data_dir: &Path,
    version: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let exe = policy.exe.as_deref().context("no binary path")?;
    if cfg!(windows) {
        tracing::info!(
            version,
            "binary replaced; exiting for the service manager to restart"
        );
        std::process::exit(update::RESTART_EXIT_CODE);
    }
    let paths = update::BinaryPaths::of(exe);
    match update::trial(
        &paths,
        &policy.args,
        data_dir,
        version,
        policy.trial,
        DRAIN_GRACE,
        shutdown,
    )
    .await
    {
        update::TrialOutcome::Stopped => Ok(()),
        update::TrialOutcome::ExecFailed(e) => Err(anyhow::anyhow!("restarting the agent: {e}")),
    }
}
