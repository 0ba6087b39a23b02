//! `sealprint-printer-sim`: a Zebra-like raw TCP printer for tests and demos (see
//! `sealprint_testkit::printer_sim`).
//!
//! Prints `listening on IP:PORT` once bound, then reads commands from stdin, one per line:
//! `mode <mode>`, `serial <serial>`, `count` (answers `jobs N`). Only `count` answers, so send
//! it after other commands as a fence. Exits on end of stdin, SIGTERM or Ctrl-C. Logs go to
//! stderr (filter from `SEALPRINT_LOG`), never with label content.
//!
//! In a container (the compose demo, `deploy/compose.yaml`): `--no-stdin` runs until SIGTERM
//! whatever stdin does, and `--probe HOST:PORT` is the healthcheck (the image has no shell): it
//! asks the simulator there for its host status (`~HS`) and exits non-zero without an answer.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Parser;
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle, SimMode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "sealprint-printer-sim",
    version,
    about = "Zebra-like raw TCP printer simulator"
)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Serial answered to `getvar "device.unique_id"`.
    #[arg(long, required_unless_present = "probe")]
    serial: Option<String>,
    /// Model answered in `~HI`.
    #[arg(long, default_value = "ZD421-203dpi")]
    model: String,
    /// normal, paper-out, head-open, paused, impostor or silent-when-faulted.
    #[arg(long, default_value = "normal")]
    mode: SimMode,
    /// Directory to write each printed job to (`job-000001.bin`, …); must exist.
    #[arg(long)]
    record_dir: Option<PathBuf>,
    /// Ignore stdin and run until SIGTERM or Ctrl-C (containers, where stdin is closed).
    #[arg(long)]
    no_stdin: bool,
    /// Do not simulate: ask the printer at HOST:PORT for its host status and exit 0 when it
    /// answers within 5 s (a container healthcheck).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["record_dir", "no_stdin"])]
    probe: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("SEALPRINT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    if let Some(addr) = &cli.probe {
        return probe(addr).await;
    }
    if let Some(dir) = &cli.record_dir {
        if !dir.is_dir() {
            bail!("record dir {} is not a directory", dir.display());
        }
    }
    let listener = TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let config = SimConfig {
        serial: cli.serial.context("--serial is required")?,
        model: cli.model,
        mode: cli.mode,
    };
    let sim = printer_sim::start(listener, config, cli.record_dir).await;
    say(&format!("listening on {addr}"))?;

    if cli.no_stdin {
        terminated().await;
    } else {
        tokio::select! {
            result = commands(&sim) => result?,
            _ = terminated() => {}
        }
    }
    sim.shutdown().await;
    Ok(())
}

/// Sends `~HS` to the printer at `addr` and waits up to 5 s for the start of its answer.
async fn probe(addr: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ask = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.write_all(b"~HS").await.context("sending ~HS")?;
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).await.context("reading the answer")?;
        if n == 0 {
            bail!("{addr} closed the connection without answering ~HS");
        }
        Ok(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), ask).await {
        Ok(result) => result,
        Err(_) => bail!("{addr} did not answer ~HS within 5 s"),
    }
}

/// Handles stdin commands until end of input.
async fn commands(sim: &SimHandle) -> anyhow::Result<()> {
    let mut lines = stdin_lines();
    while let Some(line) = lines.recv().await {
        let line = line.context("reading stdin")?;
        let line = line.trim();
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        match command {
            "" => {}
            "mode" => match arg.parse::<SimMode>() {
                Ok(mode) => sim.set_mode(mode),
                Err(e) => eprintln!("{e}"),
            },
            "serial" if !arg.is_empty() => sim.set_serial(arg.to_owned()),
            "count" => say(&format!("jobs {}", sim.job_count()))?,
            _ => eprintln!("unknown command {line:?} (expected mode M, serial S or count)"),
        }
    }
    Ok(())
}

/// Reads stdin on a plain thread. Tokio's stdin reads on its blocking pool, and the runtime
/// waits for that read at shutdown: on SIGTERM the process would hang until a line came. A
/// thread of our own is simply abandoned when `main` returns.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Prints one line on stdout and flushes it, so a parent reading lines sees it at once.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing stdout")?;
    out.flush().context("flushing stdout")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
