//! `sealprint-coordinator`: `init` a data directory, or `serve` the API and the mesh.
//! Thin on purpose: parse, install tracing, validate, bind, call the library, map exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sealprint_coordinator::app::config::{self, LogFormat, Overrides};
use sealprint_coordinator::app::healthcheck::{healthcheck, HealthcheckOptions};
use sealprint_coordinator::app::init::{init, InitError, InitOptions};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sealprint-coordinator",
    version,
    about = "sealprint coordinator"
)]
struct Cli {
    /// Log format on stderr (filter from SEALPRINT_LOG, default info).
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a data directory: keys, TLS certificate, first admin.
    Init(InitArgs),
    /// Serve the HTTPS API and the mesh.
    Serve(Box<ServeArgs>),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Ask a running coordinator's API for `GET /healthz`; exit non-zero unless it answers
    /// 200 within 5 s (the container healthcheck: the image has no shell or curl).
    Healthcheck {
        /// The API's address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        addr: String,
        /// PEM certificates to trust: the data directory's `tls/cert.pem` for the
        /// self-signed certificate `init` makes.
        #[arg(long)]
        ca_file: PathBuf,
        /// The name the certificate carries.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the audit hash chain of a (stopped) coordinator's data directory; exits 1 and
    /// names the first bad entry when it is broken.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        master_key_file: PathBuf,
    },
}

#[derive(Args)]
struct InitArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    master_key_file: PathBuf,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    admin_password_file: PathBuf,
    /// When the data directory is already initialised, say so and succeed (a container
    /// one-shot that runs on every `up`).
    #[arg(long)]
    exist_ok: bool,
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Extra name (DNS or IP) for the self-signed certificate; repeatable.
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    #[arg(long)]
    api_listen: Option<String>,
    #[arg(long)]
    mesh_listen: Vec<String>,
    #[arg(long)]
    mesh_advertise: Vec<String>,
    #[arg(long)]
    heartbeat_interval_secs: Option<u64>,
    #[arg(long)]
    drain_grace_secs: Option<u64>,
    /// Validity of device certificates, seconds (default 30 days).
    #[arg(long)]
    device_cert_validity_secs: Option<u64>,
    /// File with the billing webhook's HMAC secret (mode 0600).
    #[arg(long, env = "SEALPRINT_BILLING_WEBHOOK_SECRET_FILE")]
    billing_webhook_secret_file: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for SP-API endpoint overrides.
    #[arg(long)]
    spapi_ca_file: Option<PathBuf>,
    /// Let SP-API connections name their own endpoint and LWA endpoint (default: only
    /// Amazon's hosts). Overrides resolving to internal addresses are refused even then.
    #[arg(long)]
    allow_spapi_endpoint_override: bool,
    /// TESTS AND DEVELOPMENT ONLY: let outgoing calls (webhooks, SP-API) reach loopback
    /// addresses, e.g. a stand-in on 127.0.0.1. Off by default; never set it in production.
    #[arg(long)]
    insecure_allow_loopback_outbound: bool,
    /// Seconds an agent has to print one delivery attempt (default 30).
    #[arg(long)]
    attempt_window_secs: Option<u64>,
    /// Clock difference allowed with an agent, ms (default 2000); further off, no jobs.
    #[arg(long)]
    allowed_clock_skew_ms: Option<u64>,
    /// Jobs waiting for a printer before labels get 429 (default 10000).
    #[arg(long)]
    max_queued_jobs: Option<u64>,
    /// Seconds a mesh peer has to show a valid hello or enroll (default 10).
    #[arg(long)]
    mesh_hello_deadline_secs: Option<u64>,
    /// Period of the audit summaries of unauthenticated failures, seconds (default 60).
    #[arg(long)]
    failure_summary_interval_secs: Option<u64>,
    /// Oldest agent version served, MAJOR.MINOR.PATCH (default 0.1.0): older agents stay
    /// connected but get no jobs.
    #[arg(long)]
    min_agent_version: Option<String>,
    /// Next minimum agent version, announced to agents until --next-min-agent-version-from.
    #[arg(long)]
    next_min_agent_version: Option<String>,
    /// When --next-min-agent-version takes effect, unix seconds.
    #[arg(long)]
    next_min_agent_version_from: Option<u64>,
    /// Serve Prometheus `/metrics` over plain HTTP on IP:PORT (default: off). No PII, no
    /// authentication: bind it to a private interface.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// The release public key file (hex): release manifests must verify against it, and
    /// enrollment tokens carry it to agents for remote updates (default: none).
    #[arg(long)]
    release_public_key: Option<PathBuf>,
}

fn install_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALPRINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(a: ServeArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let file = match &a.config {
        Some(p) => config::read_file(p)?,
        None => config::FileConfig::default(),
    };
    let flags = Overrides {
        data_dir: a.data_dir,
        master_key_file: a.master_key_file,
        api_listen: a.api_listen,
        mesh_listen: a.mesh_listen,
        mesh_advertise: a.mesh_advertise,
        heartbeat_interval_secs: a.heartbeat_interval_secs,
        drain_grace_secs: a.drain_grace_secs,
        device_cert_validity_secs: a.device_cert_validity_secs,
        log_format,
        billing_webhook_secret_file: a.billing_webhook_secret_file,
        spapi_ca_file: a.spapi_ca_file,
        allow_spapi_endpoint_override: a.allow_spapi_endpoint_override,
        insecure_allow_loopback_outbound: a.insecure_allow_loopback_outbound,
        attempt_window_secs: a.attempt_window_secs,
        allowed_clock_skew_ms: a.allowed_clock_skew_ms,
        max_queued_jobs: a.max_queued_jobs,
        mesh_hello_deadline_secs: a.mesh_hello_deadline_secs,
        failure_summary_interval_secs: a.failure_summary_interval_secs,
        min_agent_version: a.min_agent_version,
        next_min_agent_version: a.next_min_agent_version,
        next_min_agent_version_from: a.next_min_agent_version_from,
        metrics_listen: a.metrics_listen,
        release_public_key: a.release_public_key,
    };
    let cfg = config::resolve(file, flags)?;
    install_tracing(cfg.log_format);
    cfg.check_paths()?;
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.api_listen)
            .await
            .with_context(|| format!("binding the api on {}", cfg.api_listen))?;
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            on_signal.cancel();
        });
        sealprint_coordinator::run(cfg, listener, shutdown).await?;
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Init(a) => {
            install_tracing(cli.log_format.unwrap_or_default());
            let opts = InitOptions {
                data_dir: a.data_dir,
                master_key_file: a.master_key_file,
                admin_email: a.admin_email,
                admin_password_file: a.admin_password_file,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
                tls_names: a.tls_names,
            };
            match init(&opts, sealprint_coordinator::now_ms()) {
                Ok(r) => {
                    // The operator's record of what init made (ids and fingerprints, no
                    // secrets), on stdout by design.
                    println!("admin_user_id: {}", r.admin_user_id);
                    println!("ca_fingerprint: {}", r.ca_fingerprint);
                    println!("peer_id: {}", r.peer_id);
                    Ok(())
                }
                Err(InitError::AlreadyInitialised(dir)) if a.exist_ok => {
                    println!("{dir} is already initialised: nothing to do");
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Serve(a) => serve(*a, cli.log_format),
        Cmd::Healthcheck {
            addr,
            ca_file,
            server_name,
        } => {
            let opts = HealthcheckOptions {
                addr,
                ca_file,
                server_name,
                timeout: std::time::Duration::from_secs(5),
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")
                .and_then(|rt| rt.block_on(healthcheck(&opts)))
        }
        Cmd::Audit(AuditCmd::Verify {
            data_dir,
            master_key_file,
        }) => {
            match sealprint_coordinator::app::verify::verify_data_dir(&data_dir, &master_key_file) {
                Ok(Ok(n)) => {
                    // The command's answer, on stdout by design.
                    println!("audit chain intact: {n} entries");
                    Ok(())
                }
                Ok(Err(e)) => Err(anyhow::anyhow!(
                    "audit chain broken at entry {}: {e}",
                    e.seq()
                )),
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
