//! The commands an operator reads the station with: `status` (the running agent's snapshot and
//! the certificate on disk), `printers` (probe the configured ones, or `--discover` candidates)
//! and `doctor`, each as a table or as JSON (`--json`, field names stable and documented in
//! the README). Output goes to stdout by design: ids, names, verdicts and times, no PII.

use std::path::Path;

use anyhow::bail;
use sealprint_agent::config::RunConfig;
use sealprint_agent::discover::{self, DiscoverOptions};
use sealprint_agent::printer::Timeouts;
use sealprint_agent::station::Station;
use sealprint_agent::status::{Link, Liveness, PrinterLine, Snapshot};
use sealprint_agent::{doctor, now_ms};
use sealprint_protocol::{Certificate, PrinterVerdict};
use serde::Serialize;

/// What `status --json` prints.
#[derive(Serialize)]
struct StatusView {
    /// `running`, `stale` (killed or stuck), `stopped` (clean stop) or `never_ran`.
    state: Liveness,
    snapshot_age_ms: Option<u64>,
    pid: Option<u32>,
    version: Option<String>,
    device_id: Option<String>,
    certificate: Option<CertificateView>,
    link: Option<Link>,
    last_ack_ms: Option<u64>,
    last_ack_age_ms: Option<u64>,
    clock_offset_ms: Option<i64>,
    /// The coordinator's minimum version, from the last reply (null before one).
    min_version: Option<String>,
    /// Whether this agent is below it: it gets no jobs until updated.
    outdated: bool,
    /// The next minimum announced, when this agent is below it, and from when (unix s).
    next_min_version: Option<String>,
    next_min_version_from_s: Option<u64>,
    /// What to install, when outdated or due before the next minimum.
    install: Option<String>,
    printers: Vec<PrinterLine>,
}

#[derive(Serialize)]
struct CertificateView {
    serial: u64,
    not_after_s: u64,
    expires_in_s: i64,
}

/// `sealprint-agent status`: fails (after printing) unless an agent is running.
pub fn status(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let now = now_ms();
    let snapshot = Snapshot::read(data_dir)?;
    let certificate = std::fs::read(data_dir.join("device.cert"))
        .ok()
        .and_then(|bytes| Certificate::decode(&bytes).ok());
    let state = snapshot.as_ref().map_or(Liveness::NeverRan, |s| {
        match s.liveness(now) {
            // A snapshot fresh in time whose process is gone: killed, not stopped.
            Liveness::Running if !process_alive(s.pid) => Liveness::Stale,
            other => other,
        }
    });
    let standing = snapshot.as_ref().and_then(|s| s.versions.clone());
    let standing = standing.as_ref();
    let own = snapshot
        .as_ref()
        .map_or(sealprint_agent::VERSION, |s| s.version.as_str())
        .to_owned();
    let view = StatusView {
        state,
        snapshot_age_ms: snapshot.as_ref().map(|s| s.age_ms(now)),
        pid: snapshot.as_ref().map(|s| s.pid),
        version: snapshot.as_ref().map(|s| s.version.clone()),
        device_id: certificate.as_ref().map(|c| c.body.device_id.clone()),
        certificate: certificate.as_ref().map(|c| CertificateView {
            serial: c.body.serial,
            not_after_s: c.body.not_after,
            expires_in_s: i64::try_from(c.body.not_after).unwrap_or(i64::MAX)
                - i64::try_from(now / 1000).unwrap_or(0),
        }),
        link: snapshot.as_ref().map(|s| s.link.clone()),
        last_ack_ms: snapshot.as_ref().and_then(|s| s.last_ack_ms),
        last_ack_age_ms: snapshot
            .as_ref()
            .and_then(|s| s.last_ack_ms)
            .map(|t| now.saturating_sub(t)),
        clock_offset_ms: snapshot.as_ref().and_then(|s| s.clock_offset_ms),
        min_version: standing.map(|v| v.min_version.clone()),
        outdated: standing.is_some_and(|v| v.outdated),
        next_min_version: standing.and_then(|v| v.next_min_version.clone()),
        next_min_version_from_s: standing.and_then(|v| v.next_min_version_from_s),
        install: standing.and_then(|v| v.advice(&own).or_else(|| v.notice(&own))),
        printers: snapshot.map(|s| s.printers).unwrap_or_default(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render_status(&view));
    }
    match view.state {
        Liveness::Running => Ok(()),
        Liveness::Stale => bail!("no agent is running for this data directory (stale status)"),
        Liveness::Stopped => bail!("the agent for this data directory has stopped"),
        Liveness::NeverRan => bail!("no agent has run with this data directory"),
    }
}

fn secs(ms: u64) -> String {
    format!("{} s", ms / 1000)
}

fn render_status(v: &StatusView) -> String {
    let mut out = String::new();
    let mut line = |k: &str, val: String| out.push_str(&format!("{k:<14}{val}\n"));
    let agent = match (v.state, v.snapshot_age_ms, v.pid) {
        (Liveness::NeverRan, ..) => "not running (no status snapshot: never ran here)".into(),
        (Liveness::Running, Some(age), Some(pid)) => {
            format!("running (pid {pid}, snapshot {} old)", secs(age))
        }
        (Liveness::Stopped, Some(age), _) => format!("stopped ({} ago)", secs(age)),
        (_, age, _) => format!(
            "NOT RUNNING (last snapshot {} old; the agent was killed or is stuck)",
            age.map_or("?".into(), secs)
        ),
    };
    line("agent", agent);
    line(
        "device",
        v.device_id.clone().unwrap_or("not enrolled".into()),
    );
    if let Some(link) = &v.link {
        let shown = match link {
            Link::Uplink => "uplink (direct to the coordinator)".to_owned(),
            Link::Relay { peer_device_id } => format!("relay via site peer {peer_device_id}"),
            Link::None => "none (no uplink, no relaying peer)".to_owned(),
        };
        line("link", shown);
    }
    let ack = v
        .last_ack_age_ms
        .map_or("never".into(), |age| format!("{} ago", secs(age)));
    line("last ack", ack);
    let offset = v.clock_offset_ms.map_or("unknown".into(), |o| {
        format!("{o:+} ms (coordinator minus station)")
    });
    line("clock offset", offset);
    if let Some(min) = &v.min_version {
        let shown = match &v.install {
            Some(install) if v.outdated => format!("OUTDATED (minimum {min}; no jobs): {install}"),
            Some(install) => format!("ok (minimum {min}); {install}"),
            None => format!("ok (minimum {min})"),
        };
        line("version", shown);
    }
    let cert = v.certificate.as_ref().map_or("none".into(), |c| {
        if c.expires_in_s < 0 {
            format!(
                "serial {}, EXPIRED {} h ago",
                c.serial,
                -c.expires_in_s / 3600
            )
        } else {
            format!(
                "serial {}, expires in {} d {} h",
                c.serial,
                c.expires_in_s / 86_400,
                c.expires_in_s % 86_400 / 3600
            )
        }
    });
    line("certificate", cert);
    out.push_str(&printer_table(&v.printers));
    out
}

fn printer_table(printers: &[PrinterLine]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<12} {:<10} {:<20} reason\n",
        "printer", "pool", "verdict", "status", "identity"
    );
    for p in printers {
        out.push_str(&format!(
            "{:<16} {:<10} {:<12} {:<10} {:<20} {}\n",
            p.name,
            p.pool,
            p.verdict,
            p.status,
            p.identity.as_deref().unwrap_or("-"),
            p.reason
        ));
    }
    out
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// `printers`: probes the configured printers; fails when one is not verified.
pub async fn printers(cfg: RunConfig, json: bool) -> anyhow::Result<()> {
    let station = Station::new(cfg.printers, Some(&cfg.data_dir), Timeouts::default())?;
    station.probe_all().await;
    let reports = station.reports();
    let failed = reports
        .iter()
        .any(|r| r.verdict != PrinterVerdict::Verified);
    let lines: Vec<PrinterLine> = reports.iter().map(PrinterLine::from).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "printers": lines }))?
        );
    } else {
        print!("{}", printer_table(&lines));
    }
    if failed {
        bail!("some printers are not verified");
    }
    Ok(())
}

/// `printers --discover`: the candidates as config TOML (or JSON), and why a source gave
/// nothing on stderr.
pub async fn discover(opts: DiscoverOptions, json: bool) -> anyhow::Result<()> {
    let found = discover::discover(&opts).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", discover::to_toml(&found.candidates));
        for note in &found.notes {
            eprintln!("note: {note}");
        }
    }
    Ok(())
}

/// `doctor`: the station self-check; fails when a check fails.
pub async fn doctor(options: doctor::DoctorOptions, json: bool) -> anyhow::Result<()> {
    let checks = doctor::run(&options).await;
    let failed = doctor::failed(&checks);
    if json {
        let doc = serde_json::json!({ "ok": !failed, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", doctor::render(&checks));
    }
    if failed {
        bail!("the station fails the self-check");
    }
    Ok(())
}
