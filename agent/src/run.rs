//! Wires the agent for each command of the binary: enrollment, the running agent (self-check,
//! station, mesh), the printer table and the station self-check. `main` parses the command
//! line and calls these; they own the process's output on stdout (operator-facing, no PII).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sealprint_agent::config::{self, Flags, RunConfig};
use sealprint_agent::mesh::{self, MeshOptions};
use sealprint_agent::printer::Timeouts;
use sealprint_agent::station::Station;
use sealprint_agent::{doctor, enroll, identity::DeviceIdentity};
use sealprint_protocol::{EnrollmentToken, PrinterVerdict};
use tokio_util::sync::CancellationToken;

/// How long a stopping agent lets its jobs finish.
const DRAIN_GRACE: Duration = Duration::from_secs(20);

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
pub async fn enroll(data_dir: &Path, token: &str, timeout: Duration) -> anyhow::Result<()> {
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
    let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "station".into());
    let id = enroll::enroll(data_dir, &token, &hostname, timeout).await?;
    // The operator's confirmation, on stdout by design.
    println!("enrolled as {}", id.device_id());
    Ok(())
}

/// Runs the agent until `shutdown`: the station's own checks, its printers, the mesh.
pub async fn agent(cfg: RunConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let identity = DeviceIdentity::load(&cfg.data_dir)?;
    // The station's own compliance checks (no printer probes: the station does those),
    // reported to the coordinator in every heartbeat.
    let checks = doctor::run(&doctor::DoctorOptions {
        data_dir: cfg.data_dir.clone(),
        printers: Vec::new(),
        cups_server: None,
        cups_config_dir: None,
        min_version: None,
        timeouts: Timeouts::default(),
    })
    .await;
    let findings = doctor::findings(&checks);
    let station = Station::new(cfg.printers, Some(&cfg.data_dir), Timeouts::default())?;
    station.probe_all().await;
    let opts = MeshOptions {
        findings,
        listen: cfg.listen,
        peers: cfg.peers,
        uplink: cfg.uplink,
        mdns: cfg.mdns,
        heartbeat_interval: cfg.heartbeat_interval,
        drain_grace: DRAIN_GRACE,
        data_dir: cfg.data_dir.clone(),
    };
    let (ready, event_loop) = mesh::start(identity, station, opts, shutdown).await?;
    // Harnesses and operators read this line to learn the bound addresses.
    println!("READY {}", serde_json::to_string(&ready)?);
    event_loop.await;
    Ok(())
}

/// Probes the configured printers and prints the table; fails when one is not verified.
pub async fn printers(cfg: RunConfig) -> anyhow::Result<()> {
    let station = Station::new(cfg.printers, Some(&cfg.data_dir), Timeouts::default())?;
    station.probe_all().await;
    let mut failed = false;
    // The operator's table, on stdout by design (names, serials and verdicts; no PII).
    println!(
        "{:<16} {:<10} {:<12} {:<10} {:<20} reason",
        "printer", "pool", "verdict", "status", "identity"
    );
    for r in station.reports() {
        failed |= r.verdict != PrinterVerdict::Verified;
        println!(
            "{:<16} {:<10} {:<12} {:<10} {:<20} {}",
            r.name,
            r.pool,
            format!("{:?}", r.verdict).to_lowercase(),
            format!("{:?}", r.status).to_lowercase(),
            r.identity.as_deref().unwrap_or("-"),
            r.reason
        );
    }
    if failed {
        bail!("some printers are not verified");
    }
    Ok(())
}

/// The station self-check; fails when a check fails.
pub async fn doctor(
    cfg: RunConfig,
    cups_server: Option<String>,
    min_version: Option<String>,
) -> anyhow::Result<()> {
    let options = doctor::DoctorOptions {
        data_dir: cfg.data_dir,
        printers: cfg.printers,
        cups_server,
        cups_config_dir: None,
        min_version,
        timeouts: Timeouts::default(),
    };
    let checks = doctor::run(&options).await;
    // The operator's report, on stdout by design.
    print!("{}", doctor::render(&checks));
    if doctor::failed(&checks) {
        bail!("the station fails the self-check");
    }
    Ok(())
}
