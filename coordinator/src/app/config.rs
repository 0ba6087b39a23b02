//! Configuration of `sealprint-coordinator serve`: a TOML file and command-line flags.
//!
//! [`FileConfig`] is the TOML (`deny_unknown_fields`; keys in snake_case, the flags'
//! kebab-case spelling is accepted too); [`Overrides`] are the flags, which win over the file.
//! [`resolve`] merges and validates both and reports every problem at once. Parsing and
//! validation are pure (no files, no environment), so tests need neither;
//! [`ServeConfig::check_paths`] is the one check that looks at the disk, run before any port is
//! bound.
//!
//! What it does not do: read the master key (see [`crate::core::crypto::MasterKey::load`]) or bind
//! anything.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use serde::Deserialize;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::services::delivery_config::DeliveryConfig;

/// Default agent heartbeat period, seconds.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;
/// Default time in-flight requests get to finish on shutdown, seconds.
pub const DEFAULT_DRAIN_GRACE_SECS: u64 = 10;

/// Why the configuration was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("invalid configuration file: {0}")]
    Toml(String),
    /// One or more settings are missing or invalid; every problem is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// The TOML configuration file. Every key is optional here; [`resolve`] says which are
/// required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory made by `init` (required).
    #[serde(alias = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Master key file, outside the data directory, mode 0600 (required).
    #[serde(alias = "master-key-file")]
    pub master_key_file: Option<PathBuf>,
    /// HTTPS API address, `IP:PORT` (required; port 0 picks one).
    #[serde(alias = "api-listen")]
    pub api_listen: Option<String>,
    /// Mesh listen multiaddrs, `/ip4/…/tcp/PORT` (at least one required).
    #[serde(alias = "mesh-listen")]
    pub mesh_listen: Option<Vec<String>>,
    /// Multiaddrs put in enrollment tokens (default: the bound mesh addresses).
    #[serde(alias = "mesh-advertise")]
    pub mesh_advertise: Option<Vec<String>>,
    /// Agents' heartbeat period in seconds, 1..=3600 (default 10).
    #[serde(alias = "heartbeat-interval-secs")]
    pub heartbeat_interval_secs: Option<u64>,
    /// Grace period for in-flight work on shutdown in seconds, 0..=300 (default 10).
    #[serde(alias = "drain-grace-secs")]
    pub drain_grace_secs: Option<u64>,
    /// Validity of device certificates in seconds, 6..=31536000 (default 30 days); agents
    /// renew theirs over the uplink when a third is left.
    #[serde(alias = "device-cert-validity-secs")]
    pub device_cert_validity_secs: Option<u64>,
    /// `plain` (default) or `json`.
    #[serde(alias = "log-format")]
    pub log_format: Option<LogFormat>,
    /// File holding the billing webhook's HMAC secret, mode 0600 (default: none, the webhook
    /// answers 503).
    #[serde(alias = "billing-webhook-secret-file")]
    pub billing_webhook_secret_file: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for SP-API endpoint overrides (default: none;
    /// the system roots are always trusted).
    #[serde(alias = "spapi-ca-file")]
    pub spapi_ca_file: Option<PathBuf>,
    /// Whether SP-API connections may name their own `endpoint`/`lwa_endpoint` (default
    /// false: only Amazon's hosts). Even then, overrides that resolve to internal addresses
    /// are refused.
    #[serde(alias = "allow-spapi-endpoint-override")]
    pub allow_spapi_endpoint_override: Option<bool>,
    /// Days after a label's creation its PII (label bytes, shipment and tracking ids) is
    /// purged, 1..=30 (default 30: never longer).
    #[serde(alias = "pii-retention-days")]
    pub pii_retention_days: Option<u64>,
    /// Days audit entries are kept, 90..=3650 (default 365: never less than 90).
    #[serde(alias = "audit-retention-days")]
    pub audit_retention_days: Option<u64>,
    /// Period of the retention sweep in seconds, 60..=86400 (default 3600).
    #[serde(alias = "retention-interval-secs")]
    pub retention_interval_secs: Option<u64>,
    /// Period of signed audit checkpoints in seconds, 60..=86400 (default 3600).
    #[serde(alias = "audit-checkpoint-interval-secs")]
    pub audit_checkpoint_interval_secs: Option<u64>,
    /// Period of the monitoring sweep (agents offline or outdated) in seconds, 1..=3600
    /// (default 60).
    #[serde(alias = "monitor-interval-secs")]
    pub monitor_interval_secs: Option<u64>,
    /// How long an agent has to print one delivery attempt, in seconds, 2..=600 (default
    /// 30): no agent prints after it, and the job may go elsewhere after it plus the skew.
    #[serde(alias = "attempt-window-secs")]
    pub attempt_window_secs: Option<u64>,
    /// Clock difference allowed between the coordinator and an agent, in ms, 100..=60000
    /// (default 2000); an agent measured further off gets no jobs.
    #[serde(alias = "allowed-clock-skew-ms")]
    pub allowed_clock_skew_ms: Option<u64>,
    /// Most jobs waiting for a printer before new labels are refused with 429, 1..=1000000
    /// (default 10000).
    #[serde(alias = "max-queued-jobs")]
    pub max_queued_jobs: Option<u64>,
    /// Seconds a mesh peer has to show a valid hello (or enroll) before it is disconnected,
    /// 1..=60 (default 10).
    #[serde(alias = "mesh-hello-deadline-secs")]
    pub mesh_hello_deadline_secs: Option<u64>,
    /// Period of the audit summaries of unauthenticated failures (one entry per source and
    /// kind per period, with a count), in seconds, 1..=3600 (default 60).
    #[serde(alias = "failure-summary-interval-secs")]
    pub failure_summary_interval_secs: Option<u64>,
}

/// Settings given as flags; `None` / empty means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--master-key-file`.
    pub master_key_file: Option<PathBuf>,
    /// `--api-listen`.
    pub api_listen: Option<String>,
    /// `--mesh-listen` (repeatable).
    pub mesh_listen: Vec<String>,
    /// `--mesh-advertise` (repeatable).
    pub mesh_advertise: Vec<String>,
    /// `--heartbeat-interval-secs`.
    pub heartbeat_interval_secs: Option<u64>,
    /// `--drain-grace-secs`.
    pub drain_grace_secs: Option<u64>,
    /// `--device-cert-validity-secs`.
    pub device_cert_validity_secs: Option<u64>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--billing-webhook-secret-file`.
    pub billing_webhook_secret_file: Option<PathBuf>,
    /// `--spapi-ca-file`.
    pub spapi_ca_file: Option<PathBuf>,
    /// `--allow-spapi-endpoint-override`.
    pub allow_spapi_endpoint_override: bool,
    /// `--insecure-allow-loopback-outbound` (tests and development only; no file key).
    pub insecure_allow_loopback_outbound: bool,
    /// `--attempt-window-secs`.
    pub attempt_window_secs: Option<u64>,
    /// `--allowed-clock-skew-ms`.
    pub allowed_clock_skew_ms: Option<u64>,
    /// `--max-queued-jobs`.
    pub max_queued_jobs: Option<u64>,
    /// `--mesh-hello-deadline-secs`.
    pub mesh_hello_deadline_secs: Option<u64>,
    /// `--failure-summary-interval-secs`.
    pub failure_summary_interval_secs: Option<u64>,
}

/// The validated configuration of `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Master key file.
    pub master_key_file: PathBuf,
    /// HTTPS API address.
    pub api_listen: SocketAddr,
    /// Mesh listen addresses.
    pub mesh_listen: Vec<Multiaddr>,
    /// Addresses advertised in enrollment tokens (empty: the bound listen addresses).
    pub mesh_advertise: Vec<Multiaddr>,
    /// Agents' heartbeat period.
    pub heartbeat_interval: Duration,
    /// Grace period for in-flight work on shutdown.
    pub drain_grace: Duration,
    /// Validity of device certificates.
    pub cert_validity: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// The billing webhook's secret file, if the webhook is on.
    pub billing_webhook_secret_file: Option<PathBuf>,
    /// Extra trusted CA certificates for SP-API endpoint overrides.
    pub spapi_ca_file: Option<PathBuf>,
    /// Whether SP-API connections may carry endpoint overrides.
    pub allow_spapi_endpoint_override: bool,
    /// Whether outgoing calls may reach loopback addresses (tests and development only).
    pub allow_loopback_outbound: bool,
    /// PII and audit retention, and the periods of their sweeps.
    pub retention: crate::services::retention::RetentionConfig,
    /// Period of the monitoring sweep.
    pub monitor_interval: Duration,
    /// Delivery windows and the queue bound.
    pub delivery: DeliveryConfig,
    /// How long a mesh peer has to show a valid hello (or enroll).
    pub hello_deadline: Duration,
    /// Period of the summaries of unauthenticated failures.
    pub failure_summary_interval: Duration,
}

/// Parses the TOML text of a configuration file.
///
/// # Errors
/// [`ConfigError::Toml`] on bad syntax, unknown keys or wrong types.
pub fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Toml(e.message().to_owned()))
}

/// Reads and parses a configuration file.
///
/// # Errors
/// [`ConfigError::Read`], [`ConfigError::Toml`].
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_file(&text)
}

fn multiaddrs(key: &str, raw: &[String], problems: &mut Vec<String>) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    for s in raw {
        match s.parse::<Multiaddr>() {
            Ok(a) if a.iter().any(|p| matches!(p, Protocol::Tcp(_))) => out.push(a),
            Ok(_) => problems.push(format!("{key}: {s:?} has no /tcp/PORT part")),
            Err(e) => problems.push(format!("{key}: {s:?} is not a multiaddr ({e})")),
        }
    }
    out
}

/// Merges flags over the file and validates the result; lists every problem.
///
/// # Errors
/// [`ConfigError::Invalid`] with one line per problem.
pub fn resolve(file: FileConfig, flags: Overrides) -> Result<ServeConfig, ConfigError> {
    let mut problems = Vec::new();
    let retention = compliance_periods(&file, &mut problems);
    let delivery = delivery_settings(&file, &flags, &mut problems);
    let data_dir = flags.data_dir.or(file.data_dir);
    let master_key_file = flags.master_key_file.or(file.master_key_file);
    let api_listen = flags.api_listen.or(file.api_listen);
    let pick = |flag: Vec<String>, file: Option<Vec<String>>| {
        if flag.is_empty() {
            file.unwrap_or_default()
        } else {
            flag
        }
    };
    let mesh_listen = pick(flags.mesh_listen, file.mesh_listen);
    let mesh_advertise = pick(flags.mesh_advertise, file.mesh_advertise);
    let heartbeat = flags
        .heartbeat_interval_secs
        .or(file.heartbeat_interval_secs)
        .unwrap_or(DEFAULT_HEARTBEAT_SECS);
    let grace = flags
        .drain_grace_secs
        .or(file.drain_grace_secs)
        .unwrap_or(DEFAULT_DRAIN_GRACE_SECS);
    let cert_validity = flags
        .device_cert_validity_secs
        .or(file.device_cert_validity_secs)
        .unwrap_or(crate::services::ca::CERT_VALIDITY_S);

    if data_dir.is_none() {
        problems.push("data_dir (--data-dir) is required".to_owned());
    }
    if master_key_file.is_none() {
        problems.push("master_key_file (--master-key-file) is required".to_owned());
    }
    let api = match api_listen.as_deref().map(str::parse::<SocketAddr>) {
        None => {
            problems.push("api_listen (--api-listen) is required".to_owned());
            None
        }
        Some(Err(_)) => {
            problems.push(format!(
                "api_listen: {:?} is not IP:PORT",
                api_listen.unwrap_or_default()
            ));
            None
        }
        Some(Ok(a)) => Some(a),
    };
    if mesh_listen.is_empty() {
        problems.push("mesh_listen (--mesh-listen) needs at least one multiaddr".to_owned());
    }
    let listen = multiaddrs("mesh_listen", &mesh_listen, &mut problems);
    let advertise = multiaddrs("mesh_advertise", &mesh_advertise, &mut problems);
    if !(1..=3600).contains(&heartbeat) {
        problems.push(format!(
            "heartbeat_interval_secs: {heartbeat} is outside 1..=3600"
        ));
    }
    if grace > 300 {
        problems.push(format!("drain_grace_secs: {grace} is over 300"));
    }
    if !(6..=365 * 24 * 3600).contains(&cert_validity) {
        problems.push(format!(
            "device_cert_validity_secs: {cert_validity} is outside 6..=31536000"
        ));
    }
    let monitor = file.monitor_interval_secs.unwrap_or(60);
    if !(1..=3600).contains(&monitor) {
        problems.push(format!(
            "monitor_interval_secs: {monitor} is outside 1..=3600"
        ));
    }
    let hello_deadline = in_range(
        &mut problems,
        "mesh_hello_deadline_secs",
        flags
            .mesh_hello_deadline_secs
            .or(file.mesh_hello_deadline_secs)
            .unwrap_or(10),
        1..=60,
    );
    let failure_interval = in_range(
        &mut problems,
        "failure_summary_interval_secs",
        flags
            .failure_summary_interval_secs
            .or(file.failure_summary_interval_secs)
            .unwrap_or(60),
        1..=3600,
    );
    match (data_dir, master_key_file, api) {
        (Some(data_dir), Some(master_key_file), Some(api_listen)) if problems.is_empty() => {
            Ok(ServeConfig {
                data_dir,
                master_key_file,
                api_listen,
                mesh_listen: listen,
                mesh_advertise: advertise,
                heartbeat_interval: Duration::from_secs(heartbeat),
                drain_grace: Duration::from_secs(grace),
                cert_validity: Duration::from_secs(cert_validity),
                log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
                billing_webhook_secret_file: flags
                    .billing_webhook_secret_file
                    .or(file.billing_webhook_secret_file),
                spapi_ca_file: flags.spapi_ca_file.or(file.spapi_ca_file),
                allow_spapi_endpoint_override: flags.allow_spapi_endpoint_override
                    || file.allow_spapi_endpoint_override.unwrap_or(false),
                allow_loopback_outbound: flags.insecure_allow_loopback_outbound,
                retention,
                monitor_interval: Duration::from_secs(monitor),
                delivery,
                hello_deadline: Duration::from_secs(hello_deadline),
                failure_summary_interval: Duration::from_secs(failure_interval),
            })
        }
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// `v` when it is within `range`; else the problem is added to `problems`.
fn in_range(problems: &mut Vec<String>, key: &str, v: u64, range: RangeInclusive<u64>) -> u64 {
    if !range.contains(&v) {
        problems.push(format!(
            "{key}: {v} is outside {}..={}",
            range.start(),
            range.end()
        ));
    }
    v
}

/// The delivery settings of `flags` over `file`, every problem added to `problems`.
fn delivery_settings(
    file: &FileConfig,
    flags: &Overrides,
    problems: &mut Vec<String>,
) -> DeliveryConfig {
    let mut check = |key: &str, v: Option<u64>, default: u64, range: RangeInclusive<u64>| {
        in_range(problems, key, v.unwrap_or(default), range)
    };
    let d = DeliveryConfig::default();
    let window = check(
        "attempt_window_secs",
        flags.attempt_window_secs.or(file.attempt_window_secs),
        d.attempt_window.as_secs(),
        2..=600,
    );
    let skew = check(
        "allowed_clock_skew_ms",
        flags.allowed_clock_skew_ms.or(file.allowed_clock_skew_ms),
        d.allowed_skew.as_millis() as u64,
        100..=60_000,
    );
    let queued = check(
        "max_queued_jobs",
        flags.max_queued_jobs.or(file.max_queued_jobs),
        d.max_queued_jobs as u64,
        1..=1_000_000,
    );
    DeliveryConfig {
        attempt_window: Duration::from_secs(window),
        allowed_skew: Duration::from_millis(skew),
        max_queued_jobs: usize::try_from(queued).unwrap_or(usize::MAX),
    }
}

/// The retention settings of `file`, every problem added to `problems`.
fn compliance_periods(
    file: &FileConfig,
    problems: &mut Vec<String>,
) -> crate::services::retention::RetentionConfig {
    use crate::services::retention::{MAX_PII_RETENTION_DAYS, MIN_AUDIT_RETENTION_DAYS};
    const DAY: u64 = 24 * 3600;
    let mut check = |key: &str, v: Option<u64>, default: u64, range: RangeInclusive<u64>| {
        in_range(problems, key, v.unwrap_or(default), range)
    };
    let pii = check(
        "pii_retention_days",
        file.pii_retention_days,
        MAX_PII_RETENTION_DAYS,
        1..=MAX_PII_RETENTION_DAYS,
    );
    let audit = check(
        "audit_retention_days",
        file.audit_retention_days,
        365,
        MIN_AUDIT_RETENTION_DAYS..=3650,
    );
    let every = check(
        "retention_interval_secs",
        file.retention_interval_secs,
        3600,
        60..=86_400,
    );
    let checkpoint_every = check(
        "audit_checkpoint_interval_secs",
        file.audit_checkpoint_interval_secs,
        3600,
        60..=86_400,
    );
    crate::services::retention::RetentionConfig {
        pii: Duration::from_secs(pii * DAY),
        audit: Duration::from_secs(audit * DAY),
        every: Duration::from_secs(every),
        checkpoint_every: Duration::from_secs(checkpoint_every),
    }
}

/// Shortest billing webhook secret accepted, bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Reads a secret file (surrounding whitespace trimmed): private (no group or other access)
/// and at least [`MIN_SECRET_LEN`] bytes. `None` reads nothing.
///
/// # Errors
/// [`ConfigError::Read`] when unreadable, [`ConfigError::Invalid`] when too open or short.
pub fn load_secret(path: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = path else {
        return Ok(None);
    };
    let read = |source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Invalid(vec![format!(
            "{} has mode {mode:o}; it must be 0600 or stricter",
            path.display()
        )]));
    }
    let raw = Zeroizing::new(std::fs::read(path).map_err(read)?);
    let secret = Zeroizing::new(raw.trim_ascii().to_vec());
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::Invalid(vec![format!(
            "{} must hold at least {MIN_SECRET_LEN} bytes",
            path.display()
        )]));
    }
    Ok(Some(secret))
}

impl ServeConfig {
    /// Checks what can be checked on disk before binding: the data directory is initialised,
    /// the master key file is readable, private and 32 bytes, the TLS files exist.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.data_dir.is_dir() {
            problems.push(format!(
                "data_dir: {} is not a directory",
                self.data_dir.display()
            ));
        } else if !crate::core::paths::db_path(&self.data_dir).is_dir() {
            problems.push(format!(
                "data_dir: {} is not initialised (run `sealprint-coordinator init`)",
                self.data_dir.display()
            ));
        } else {
            for f in [crate::core::paths::TLS_CERT, crate::core::paths::TLS_KEY] {
                if !self.data_dir.join(f).is_file() {
                    problems.push(format!("data_dir: {f} is missing"));
                }
            }
        }
        if let Err(e) = crate::core::crypto::MasterKey::load(&self.master_key_file) {
            problems.push(format!("master_key_file: {e}"));
        }
        if let Err(e) = load_secret(self.billing_webhook_secret_file.as_deref()) {
            problems.push(format!("billing_webhook_secret_file: {e}"));
        }
        if let Some(p) = &self.spapi_ca_file {
            if let Err(e) = crate::outbound::client::read_ca_file(p) {
                problems.push(format!("spapi_ca_file: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Overrides {
        Overrides {
            data_dir: Some("/var/lib/sealprint".into()),
            master_key_file: Some("/etc/sealprint/master.key".into()),
            api_listen: Some("127.0.0.1:0".into()),
            mesh_listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Overrides::default()
        }
    }

    #[test]
    fn flags_alone_suffice_with_defaults() {
        let c = resolve(FileConfig::default(), flags()).expect("valid");
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.drain_grace, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Plain);
        assert!(c.mesh_advertise.is_empty());
    }

    #[test]
    fn flags_override_file() {
        let file = parse_file(
            r#"
            data_dir = "/srv/a"
            master-key-file = "/etc/k"
            api_listen = "0.0.0.0:8443"
            mesh_listen = ["/ip4/0.0.0.0/tcp/4001"]
            mesh_advertise = ["/dns4/coord.example/tcp/4001"]
            heartbeat_interval_secs = 5
            log_format = "json"
            "#,
        )
        .expect("parses");
        let c = resolve(
            file,
            Overrides {
                api_listen: Some("127.0.0.1:9000".into()),
                ..Overrides::default()
            },
        )
        .expect("valid");
        assert_eq!(c.data_dir, PathBuf::from("/srv/a"));
        assert_eq!(c.api_listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.mesh_advertise.len(), 1);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(matches!(
            parse_file("data_dirr = \"/x\""),
            Err(ConfigError::Toml(_))
        ));
    }

    #[test]
    fn every_problem_is_reported() {
        let err = resolve(
            FileConfig::default(),
            Overrides {
                api_listen: Some("nope".into()),
                mesh_listen: vec!["/ip4/1.2.3.4".into(), "garbage".into()],
                heartbeat_interval_secs: Some(0),
                drain_grace_secs: Some(301),
                ..Overrides::default()
            },
        )
        .expect_err("invalid");
        let ConfigError::Invalid(problems) = err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn retention_is_bounded() {
        let c = resolve(FileConfig::default(), flags()).expect("valid");
        assert_eq!(c.retention.pii, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.retention.audit, Duration::from_secs(365 * 24 * 3600));
        let file = parse_file("pii_retention_days = 7\naudit-retention-days = 90").expect("toml");
        let c = resolve(file, flags()).expect("valid");
        assert_eq!(c.retention.pii, Duration::from_secs(7 * 24 * 3600));
        let file = parse_file(
            "pii_retention_days = 31\naudit_retention_days = 89\nmonitor_interval_secs = 0",
        )
        .expect("toml");
        let Err(ConfigError::Invalid(problems)) = resolve(file, flags()) else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    #[test]
    fn check_paths_reports_missing_things() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = resolve(FileConfig::default(), flags()).expect("valid");
        c.data_dir = dir.path().join("absent");
        c.master_key_file = dir.path().join("absent.key");
        let Err(ConfigError::Invalid(problems)) = c.check_paths() else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 2, "{problems:#?}");
    }

    #[test]
    fn webhook_secret_must_be_private_and_long() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        std::fs::write(&p, "whsec_0123456789abcdef\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_secret(Some(&p)),
            Err(ConfigError::Invalid(_))
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let s = load_secret(Some(&p)).expect("ok").expect("some");
        assert_eq!(s.as_slice(), b"whsec_0123456789abcdef");
        std::fs::write(&p, "short").expect("write");
        assert!(matches!(
            load_secret(Some(&p)),
            Err(ConfigError::Invalid(_))
        ));
        assert!(load_secret(None).expect("none").is_none());
    }
}
