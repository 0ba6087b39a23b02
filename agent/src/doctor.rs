//! The station self-check (`sealprint-agent doctor`): what software can see of the customer
//! security checklist on this Print Station.
//!
//! # Checks
//! - **version**: the agent's version, against a minimum when one is given (`--min-version`,
//!   else the coordinator's from the running agent's status snapshot); **version (next)** warns
//!   when the coordinator announced a next minimum this agent is below.
//! - **data dir**: the data directory is `0700` and every file in it (keys, certificate, pins)
//!   `0600` or stricter (unix; on Windows ACLs are not judged and the check warns).
//! - **virtual queues**: no print-to-file, PDF or XPS queue is configured on the station: CUPS
//!   queues whose `device-uri` is `file:`, `/dev/null`, `cups-pdf:`… (asked from the scheduler
//!   over IPP, as `cups://` printers are), and on Windows spooler printers on `FILE:`,
//!   `PORTPROMPT:`, `NUL:`, `XPSPort:`, `SHRFAX:` or with PDF/XPS/OneNote/fax drivers.
//! - **cups job files**: what the CUPS scheduler keeps after printing (`PreserveJobFiles`,
//!   `PreserveJobHistory`, `RequestRoot`, CUPS' defaults where unset); a warning unless job
//!   files are not kept. sealprint never prints through the scheduler.
//! - **windows printer NAME**: for every spooler printer, whether it prints directly and
//!   whether it keeps printed documents (either would leave a label in the spool directory;
//!   sealprint refuses such a printer).
//! - **printer NAME**: each configured printer's verdict and status (probed read-only: no
//!   identity is recorded).
//!
//! [`findings`] turns the failed and warned checks into short strings for heartbeats.
//!
//! # What it does not do
//! It cannot check the clock against the coordinator, nor learn the coordinator's minimum
//! version by itself (that needs the mesh: the caller passes `min_version`, from the flag or
//! the snapshot of the running agent), and it fixes nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sealprint_protocol::{PrinterStatus, PrinterVerdict};

use crate::printer::inventory::{self, Device};
use crate::printer::{Printer, PrinterConfig, Timeouts};

mod spoolers;

/// Where CUPS keeps its configuration unless told otherwise.
const CUPS_CONFIG_DIR: &str = "/etc/cups";

/// The result of one check (`pass`, `warn` or `fail` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Nothing to report.
    Pass,
    /// Worth a look, not a failure (for example a printer out of paper).
    Warn,
    /// Against the security checklist: `doctor` exits non-zero.
    Fail,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
        })
    }
}

/// One line of the self-check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked (`version`, `data dir`, `cups queue NAME`, `printer NAME`…).
    pub name: String,
    /// The result.
    pub outcome: Outcome,
    /// Why, for a person (no PII: queue names, ports, drivers and paths only).
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, outcome: Outcome, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            outcome,
            detail: detail.into(),
        }
    }
}

/// What `doctor` checks.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The agent's data directory.
    pub data_dir: PathBuf,
    /// The configured printers.
    pub printers: Vec<PrinterConfig>,
    /// The CUPS scheduler (socket path or `HOST[:PORT]`); `None`: the local default.
    pub cups_server: Option<String>,
    /// CUPS' configuration directory (cupsd.conf, cups-files.conf); `None`: `/etc/cups`.
    pub cups_config_dir: Option<PathBuf>,
    /// The oldest agent version accepted, when known (the coordinator's minimum: given, or
    /// from the running agent's status snapshot).
    pub min_version: Option<String>,
    /// The next minimum the coordinator announced and when it takes effect (unix seconds),
    /// from the status snapshot; a warning when this agent is below it.
    pub next_min_version: Option<(String, u64)>,
    /// Printer timeouts.
    pub timeouts: Timeouts,
}

/// Runs every check. Never fails: problems are checks with [`Outcome::Fail`].
///
/// Cancel safe: it only reads.
pub async fn run(options: &DoctorOptions) -> Vec<Check> {
    let mut checks = vec![check_version(
        crate::VERSION,
        options.min_version.as_deref(),
    )];
    checks.extend(check_next_version(
        crate::VERSION,
        options.next_min_version.as_ref(),
    ));
    checks.extend(check_data_dir(&options.data_dir));
    checks.extend(check_cups(options).await);
    checks.extend(check_cups_retention(
        options
            .cups_config_dir
            .as_deref()
            .unwrap_or(Path::new(CUPS_CONFIG_DIR)),
    ));
    checks.extend(check_spooler().await);
    checks.extend(check_printers(options).await);
    checks
}

/// Whether any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.outcome == Outcome::Fail)
}

/// The failed and warned checks as short lines (`FAIL cups queue PDF: …`), for heartbeats'
/// `findings`.
pub fn findings(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| format!("{} {}: {}", c.outcome, c.name, c.detail))
        .collect()
}

/// The checks as a table for a terminal.
pub fn render(checks: &[Check]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}  {:<6} detail\n", "check", "result");
    for c in checks {
        out.push_str(&format!(
            "{:<width$}  {:<6} {}\n",
            c.name,
            c.outcome.to_string(),
            c.detail
        ));
    }
    out
}

fn version_numbers(v: &str) -> Vec<u64> {
    v.trim()
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

fn check_version(version: &str, min: Option<&str>) -> Check {
    match min {
        None => Check::new(
            "version",
            Outcome::Pass,
            format!("sealprint-agent {version} (minimum not known offline)"),
        ),
        Some(min) if version_numbers(version) < version_numbers(min) => Check::new(
            "version",
            Outcome::Fail,
            format!(
                "sealprint-agent {version} is older than the minimum {min}: install \
                 sealprint-agent {min} or later"
            ),
        ),
        Some(min) => Check::new(
            "version",
            Outcome::Pass,
            format!("sealprint-agent {version} (minimum {min})"),
        ),
    }
}

fn check_next_version(version: &str, next: Option<&(String, u64)>) -> Option<Check> {
    let (next, from) = next?;
    (version_numbers(version) < version_numbers(next)).then(|| {
        Check::new(
            "version (next)",
            Outcome::Warn,
            format!(
                "the coordinator will require {next} from {from} (unix seconds): install \
                 sealprint-agent {next} or later before then"
            ),
        )
    })
}

fn check_data_dir(dir: &Path) -> Vec<Check> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            return vec![Check::new(
                "data dir",
                Outcome::Fail,
                format!("{} is not a directory", dir.display()),
            )]
        }
        Err(e) => {
            return vec![Check::new(
                "data dir",
                Outcome::Fail,
                format!("{}: {}", dir.display(), e.kind()),
            )]
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mut checks = Vec::new();
        let mode = meta.permissions().mode() & 0o777;
        checks.push(if mode & 0o077 == 0 {
            Check::new(
                "data dir",
                Outcome::Pass,
                format!("{} is {mode:04o}", dir.display()),
            )
        } else {
            Check::new(
                "data dir",
                Outcome::Fail,
                format!("{} is {mode:04o}; it must be 0700", dir.display()),
            )
        });
        let mut loose = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let mode = meta.permissions().mode() & 0o777;
                if meta.is_file() && mode & 0o077 != 0 {
                    loose.push(format!(
                        "{} ({mode:04o})",
                        entry.file_name().to_string_lossy()
                    ));
                }
            }
        }
        loose.sort();
        checks.push(if loose.is_empty() {
            Check::new("data files", Outcome::Pass, "keys and certificate are 0600")
        } else {
            Check::new(
                "data files",
                Outcome::Fail,
                format!("readable by others, must be 0600: {}", loose.join(", ")),
            )
        });
        checks
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        vec![Check::new(
            "data dir",
            Outcome::Warn,
            "permissions (ACLs) are not checked on this system",
        )]
    }
}

/// Why a CUPS queue is a virtual printer, from its device-uri and make-and-model.
fn queue_problem(device_uri: Option<&str>, make_and_model: Option<&str>) -> Option<String> {
    if let Some(Device::Virtual(why)) = device_uri.map(inventory::judge_device_uri) {
        return Some(why);
    }
    let model = make_and_model?;
    inventory::names_a_writer(model).then(|| format!("its model is a document writer ({model})"))
}

async fn check_cups(options: &DoctorOptions) -> Vec<Check> {
    let server = options
        .cups_server
        .as_deref()
        .and_then(inventory::Server::parse)
        .unwrap_or_else(inventory::Server::local);
    let queues = match inventory::all_queues(&server, options.timeouts).await {
        Ok(queues) => queues,
        Err(why) => {
            let outcome = if cfg!(windows) {
                Outcome::Pass
            } else {
                Outcome::Warn
            };
            return vec![Check::new(
                "cups queues",
                outcome,
                format!("not checked: {why}"),
            )];
        }
    };
    let mut checks: Vec<Check> = queues
        .iter()
        .filter_map(|(name, facts)| {
            let why = queue_problem(facts.device_uri.as_deref(), facts.make_and_model.as_deref())?;
            Some(Check::new(
                format!("cups queue {name}"),
                Outcome::Fail,
                format!("print-to-file/PDF queue on the station: {why}; delete it (lpadmin -x)"),
            ))
        })
        .collect();
    if checks.is_empty() {
        checks.push(Check::new(
            "cups queues",
            Outcome::Pass,
            format!(
                "{} queue(s), none prints to a file, PDF or XPS",
                queues.len()
            ),
        ));
    }
    checks
}

async fn check_spooler() -> Vec<Check> {
    if !cfg!(windows) {
        return Vec::new();
    }
    match inventory::spooler_printers().await {
        Err(why) => vec![Check::new("windows printers", Outcome::Warn, why)],
        Ok(printers) if printers.is_empty() => vec![Check::new(
            "windows printers",
            Outcome::Pass,
            "no printer installed",
        )],
        Ok(printers) => printers.iter().map(spoolers::spooler_check).collect(),
    }
}

/// CUPS' job file and history retention, from its configuration files (Linux and other
/// unix systems with CUPS; nothing on Windows).
fn check_cups_retention(config_dir: &Path) -> Vec<Check> {
    if cfg!(windows) {
        return Vec::new();
    }
    let cupsd = std::fs::read_to_string(config_dir.join("cupsd.conf"));
    let files = std::fs::read_to_string(config_dir.join("cups-files.conf")).unwrap_or_default();
    match cupsd {
        Ok(cupsd) => vec![spoolers::cups_check(&spoolers::cups_retention(
            &cupsd, &files,
        ))],
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![Check::new(
            "cups job files",
            Outcome::Pass,
            format!(
                "no {} (CUPS is not installed)",
                config_dir.join("cupsd.conf").display()
            ),
        )],
        Err(e) => vec![Check::new(
            "cups job files",
            Outcome::Warn,
            format!(
                "cannot read {}: {}",
                config_dir.join("cupsd.conf").display(),
                e.kind()
            ),
        )],
    }
}

async fn check_printers(options: &DoctorOptions) -> Vec<Check> {
    // The identities the agent recorded (station.rs writes printers.json); read only.
    let recorded: BTreeMap<String, String> = std::fs::read(options.data_dir.join("printers.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut checks = Vec::new();
    for config in &options.printers {
        let name = format!("printer {}", config.name);
        let printer = Printer::new(
            config.clone(),
            recorded.get(&config.name).cloned(),
            options.timeouts,
        );
        let mut printer = match printer {
            Ok(p) => p,
            Err(e) => {
                checks.push(Check::new(name, Outcome::Fail, e.to_string()));
                continue;
            }
        };
        if let Some(server) = &options.cups_server {
            printer = printer.with_cups_server(server);
        }
        let report = printer.probe().await;
        let outcome = match (report.verdict, report.status) {
            (PrinterVerdict::Verified, PrinterStatus::Ready) => Outcome::Pass,
            (PrinterVerdict::Refused, _) => Outcome::Fail,
            _ => Outcome::Warn,
        };
        let status = format!("{:?}", report.status).to_lowercase();
        let verdict = format!("{:?}", report.verdict).to_lowercase();
        checks.push(Check::new(
            name,
            outcome,
            format!("{verdict}, {status}: {}", report.reason),
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_versions() {
        assert_eq!(check_version("0.1.0", None).outcome, Outcome::Pass);
        assert_eq!(check_version("0.1.0", Some("0.1.0")).outcome, Outcome::Pass);
        assert_eq!(
            check_version("0.10.0", Some("0.9.3")).outcome,
            Outcome::Pass
        );
        assert_eq!(check_version("0.1.0", Some("0.2.0")).outcome, Outcome::Fail);
        assert_eq!(
            check_version("1.0.0-rc1", Some("v1.0.1")).outcome,
            Outcome::Fail
        );
        let fail = check_version("0.1.0", Some("99.0.0"));
        assert!(
            fail.detail
                .contains("install sealprint-agent 99.0.0 or later"),
            "{}",
            fail.detail
        );
        let next = ("0.2.0".to_owned(), 1_767_225_600);
        let warn = check_next_version("0.1.0", Some(&next)).expect("warned");
        assert_eq!(
            (warn.name.as_str(), warn.outcome),
            ("version (next)", Outcome::Warn)
        );
        assert!(warn.detail.contains("0.2.0"), "{}", warn.detail);
        assert_eq!(check_next_version("0.2.0", Some(&next)), None);
        assert_eq!(check_next_version("0.1.0", None), None);
    }

    #[test]
    fn judges_queues() {
        assert!(queue_problem(Some("cups-pdf:/"), None).is_some());
        assert!(queue_problem(Some("file:///tmp/x.prn"), None).is_some());
        assert!(
            queue_problem(Some("socket://1.2.3.4"), Some("Generic CUPS-PDF Printer")).is_some()
        );
        assert!(queue_problem(Some("socket://1.2.3.4"), Some("Zebra ZPL Label Printer")).is_none());
        assert!(queue_problem(Some("usb://Zebra/ZD421?serial=1"), None).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn checks_data_dir_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("device.key");
        std::fs::write(&key, b"k").expect("write");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let checks = check_data_dir(dir.path());
        assert!(!failed(&checks), "{checks:?}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let checks = check_data_dir(dir.path());
        assert!(failed(&checks));
        let lines = findings(&checks);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("device.key (0644)"), "{lines:?}");
        assert!(render(&checks).contains("FAIL"));
        assert!(failed(&check_data_dir(&dir.path().join("missing"))));
    }

    #[tokio::test]
    async fn reports_refused_printers_and_unreachable_cups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unused = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("addr");
        let options = DoctorOptions {
            data_dir: dir.path().to_owned(),
            printers: vec![
                PrinterConfig::from_flag("w=winspool://Microsoft Print to PDF").expect("valid"),
            ],
            cups_server: Some(unused.to_string()),
            cups_config_dir: Some(dir.path().join("no-cups")),
            min_version: None,
            next_min_version: None,
            timeouts: Timeouts::default(),
        };
        let checks = run(&options).await;
        let cups = checks
            .iter()
            .find(|c| c.name == "cups queues")
            .expect("cups check");
        assert_ne!(cups.outcome, Outcome::Fail);
        if !cfg!(windows) {
            let retention = checks
                .iter()
                .find(|c| c.name == "cups job files")
                .expect("cups retention check");
            assert_eq!(retention.outcome, Outcome::Pass, "{}", retention.detail);
            assert!(retention.detail.contains("not installed"));
        }
        if !cfg!(windows) {
            let printer = checks
                .iter()
                .find(|c| c.name == "printer w")
                .expect("printer check");
            assert_eq!(printer.outcome, Outcome::Fail);
            assert!(failed(&checks));
        }
    }
}
