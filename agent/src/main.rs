//! `sealprint-agent`: enroll a Print Station, run it, show its status, list or discover its
//! printers, or self-check it. This file parses the command line, installs tracing and the
//! signal handler, and hands each command to [`run`] (enroll, run) or [`operator`] (status,
//! printers, doctor).

mod operator;
mod run;
mod service_command;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sealprint_agent::config::Flags;
use sealprint_agent::discover::DiscoverOptions;
use sealprint_agent::doctor::DoctorOptions;
use sealprint_agent::printer::Timeouts;
use sealprint_agent::status::Snapshot;
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
        /// Data directory for keys and certificate (default on Windows: %ProgramData%\sealprint).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The enrollment token (sptok1.…); `-` reads it from standard input.
        token: String,
        /// The station's name in the coordinator (default: this machine's host name).
        #[arg(long)]
        name: Option<String>,
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
        /// Serve Prometheus `/metrics` over plain HTTP on IP:PORT (default: off); bind it to
        /// loopback or a private interface.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// When the data directory is not enrolled yet, enroll first with the one-time token
        /// in this file (containers: the token comes through a volume, never the command
        /// line or the environment). Ignored once enrolled.
        #[arg(long, value_name = "FILE")]
        enroll_token_file: Option<PathBuf>,
        /// Seconds a remotely updated version has to get a heartbeat acknowledged before the
        /// previous binary is restored (default 120).
        #[arg(long)]
        update_trial_secs: Option<u64>,
        /// Let a remote update install a version not above this one (never one below the
        /// fleet minimum).
        #[arg(long)]
        allow_update_downgrade: bool,
    },
    /// Show the running agent's status: link, last acknowledged heartbeat, certificate,
    /// clock offset, printers. Exits non-zero when no agent is running.
    Status {
        #[command(flatten)]
        common: Common,
        /// Print JSON (fields documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Probe the configured printers and show each verdict with its reason; or, with
    /// --discover, find candidate printers and print them as config TOML.
    Printers {
        #[command(flatten)]
        common: Common,
        /// Print JSON (fields documented in the README).
        #[arg(long)]
        json: bool,
        /// Find candidate printers (CUPS queues, DNS-SD on the LAN, USB nodes, Windows
        /// printers) instead of probing the configured ones.
        #[arg(long)]
        discover: bool,
        /// CUPS scheduler for --discover (as for doctor).
        #[arg(long)]
        cups_server: Option<String>,
        /// Where --discover looks for USB printer nodes (for tests; the URIs always name
        /// /dev/usb/lpN).
        #[arg(long, default_value = "/dev/usb", hide = true)]
        usb_dir: PathBuf,
        /// Milliseconds --discover waits for DNS-SD answers (0: do not ask the LAN).
        #[arg(long, default_value_t = 3000)]
        dns_sd_wait_ms: u64,
    },
    /// Check this station against the security checklist; exits non-zero on a failure.
    Doctor {
        #[command(flatten)]
        common: Common,
        /// CUPS scheduler: a unix socket path or HOST[:PORT] (default: CUPS_SERVER, then
        /// /run/cups/cups.sock, then localhost:631).
        #[arg(long)]
        cups_server: Option<String>,
        /// The oldest agent version accepted (default: the coordinator's minimum from the
        /// running agent's status snapshot, when there is one).
        #[arg(long)]
        min_version: Option<String>,
        /// Print JSON (fields documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// The agent as a Windows service: install, uninstall, start, stop, and its entry point.
    Service {
        #[command(subcommand)]
        action: service_command::Action,
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

impl Common {
    /// The configuration file (if any) and flags, validated together.
    fn load(self, mut flags: Flags) -> anyhow::Result<sealprint_agent::config::RunConfig> {
        flags.data_dir = self.data_dir;
        flags.printers = self.printers;
        run::load(self.config.as_deref(), flags)
    }
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
    match &cli.command {
        Command::Service { action } if service_command::init_file_tracing(action) => {}
        _ => init_tracing(&cli.log_format),
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match cli.command {
        Command::Enroll {
            data_dir,
            token,
            name,
            timeout_secs,
        } => {
            let data_dir = data_dir
                .or_else(sealprint_agent::data_dir::default_dir)
                .ok_or_else(|| anyhow::anyhow!("--data-dir is required"))?;
            run::enroll(&data_dir, &token, name, Duration::from_secs(timeout_secs)).await
        }
        Command::Run {
            common,
            listen,
            peers,
            heartbeat_interval_secs,
            no_uplink,
            no_mdns,
            metrics_listen,
            enroll_token_file,
            update_trial_secs,
            allow_update_downgrade,
        } => {
            let flags = Flags {
                listen,
                peers,
                heartbeat_interval_secs,
                no_uplink,
                no_mdns,
                metrics_listen,
                update_trial_secs,
                allow_update_downgrade,
                ..Flags::default()
            };
            let cfg = common.load(flags)?;
            if let Some(file) = enroll_token_file {
                run::enroll_once(&cfg.data_dir, &file).await?;
            }
            run::agent(cfg, shutdown, || {}).await
        }
        Command::Status { common, json } => {
            operator::status(&common.load(Flags::default())?.data_dir, json)
        }
        Command::Printers {
            discover: true,
            json,
            cups_server,
            usb_dir,
            dns_sd_wait_ms,
            ..
        } => {
            let opts = DiscoverOptions {
                cups_server,
                usb_dir,
                dns_sd_wait: Duration::from_millis(dns_sd_wait_ms),
                ..DiscoverOptions::default()
            };
            operator::discover(opts, json).await
        }
        Command::Printers { common, json, .. } => {
            operator::printers(common.load(Flags::default())?, json).await
        }
        Command::Doctor {
            common,
            cups_server,
            min_version,
            json,
        } => {
            let cfg = common.load(Flags::default())?;
            // Unless given, the minimum is what the running agent last heard from the
            // coordinator (its status snapshot).
            let heard = Snapshot::read(&cfg.data_dir)
                .ok()
                .flatten()
                .and_then(|s| s.versions);
            let next_min_version = heard
                .as_ref()
                .and_then(|v| v.next_min_version.clone().zip(v.next_min_version_from_s));
            let options = DoctorOptions {
                min_version: min_version.or(heard.map(|v| v.min_version)),
                next_min_version,
                data_dir: cfg.data_dir,
                printers: cfg.printers,
                cups_server,
                cups_config_dir: None,
                timeouts: Timeouts::default(),
            };
            operator::doctor(options, json).await
        }
        Command::Service { action } => service_command::run(action).await,
    }
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
