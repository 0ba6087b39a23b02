//! `sealprint-agent`: enroll a Print Station, run it, list its printers, or self-check it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use sealprint_agent::config::{self, Flags};
use sealprint_agent::mesh::{self, MeshOptions};
use sealprint_agent::printer::Timeouts;
use sealprint_agent::station::Station;
use sealprint_agent::{doctor, enroll, identity::DeviceIdentity};
use sealprint_protocol::{EnrollmentToken, PrinterVerdict};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sealprint-agent",
    version,
    about = "sealprint Print Station agent"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "plain", value_parser = ["plain", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate this device's keys and enroll it with a one-time token.
    Enroll {
        /// Data directory for keys and certificate.
        #[arg(long)]
        data_dir: PathBuf,
        /// The enrollment token (sptok1.…); `-` reads it from standard input.
        token: String,
        /// Seconds to wait for the coordinator.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Run the agent.
    Run {
        #[command(flatten)]
        common: Common,
        /// Multiaddr to listen on for site peers (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// Static site peer multiaddr (repeatable).
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Seconds between heartbeats (default 10).
        #[arg(long)]
        heartbeat_interval_secs: Option<u64>,
        /// Do not dial the coordinator; reach it through a site peer.
        #[arg(long)]
        no_uplink: bool,
        /// Do not discover site peers with mDNS.
        #[arg(long)]
        no_mdns: bool,
    },
    /// Probe the configured printers and show each verdict with its reason.
    Printers {
        #[command(flatten)]
        common: Common,
    },
    /// Check this station against the security checklist; exits non-zero on a failure.
    Doctor {
        #[command(flatten)]
        common: Common,
        /// CUPS scheduler: a unix socket path or HOST[:PORT] (default: CUPS_SERVER, then
        /// /run/cups/cups.sock, then localhost:631).
        #[arg(long)]
        cups_server: Option<String>,
        /// The oldest agent version accepted (the coordinator's minimum, when known).
        #[arg(long)]
        min_version: Option<String>,
    },
}

#[derive(clap::Args)]
struct Common {
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A printer as NAME=URI, pool `default` (repeatable).
    #[arg(long = "printer")]
    printers: Vec<String>,
}

fn load(common: Common, mut flags: Flags) -> anyhow::Result<config::RunConfig> {
    let file = match &common.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            config::parse_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => config::FileConfig::default(),
    };
    flags.data_dir = common.data_dir;
    flags.printers = common.printers;
    config::resolve(file, flags).map_err(|problems| {
        anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
    })
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALPRINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match cli.command {
        Command::Enroll {
            data_dir,
            token,
            timeout_secs,
        } => {
            let token = if token == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_line(&mut s)
                    .context("reading the token")?;
                s
            } else {
                token
            };
            let token: EnrollmentToken = token.parse().context("enrollment token")?;
            let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "station".into());
            let id = enroll::enroll(
                &data_dir,
                &token,
                &hostname,
                Duration::from_secs(timeout_secs),
            )
            .await?;
            // The operator's confirmation, on stdout by design.
            println!("enrolled as {}", id.device_id());
        }
        Command::Run {
            common,
            listen,
            peers,
            heartbeat_interval_secs,
            no_uplink,
            no_mdns,
        } => {
            let flags = Flags {
                listen,
                peers,
                heartbeat_interval_secs,
                no_uplink,
                no_mdns,
                ..Flags::default()
            };
            let cfg = load(common, flags)?;
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
                drain_grace: Duration::from_secs(20),
                data_dir: cfg.data_dir.clone(),
            };
            let (ready, event_loop) = mesh::start(identity, station, opts, shutdown).await?;
            // Harnesses and operators read this line to learn the bound addresses.
            println!("READY {}", serde_json::to_string(&ready)?);
            event_loop.await;
        }
        Command::Printers { common } => {
            let cfg = load(common, Flags::default())?;
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
        }
        Command::Doctor {
            common,
            cups_server,
            min_version,
        } => {
            let cfg = load(common, Flags::default())?;
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
        }
    }
    Ok(())
}

async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}
