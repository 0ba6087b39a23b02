//! Configuration of `sealprint-coordinator serve`: a TOML file and command-line flags.
//!
//! [`FileConfig`] is the TOML (`deny_unknown_fields`; keys in snake_case, the flags'
//! kebab-case spelling is accepted too); [`Overrides`] are the flags, which win over the file.
//! [`resolve()`] merges and validates both and reports every problem at once. Parsing and
//! validation are pure (no files, no environment), so tests need neither;
//! [`ServeConfig::check_paths`] is the one check that looks at the disk, run before any port is
//! bound.
//!
//! What it does not do: read the master key (see [`crate::core::crypto::MasterKey::load`]) or bind
//! anything.
//!
//! # Layout
//! This file holds the types (the file, the flags, the result, the error); `resolve` merges
//! and validates them; `disk` holds the checks that read files.

mod disk;
mod resolve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use serde::Deserialize;
use thiserror::Error;

pub use disk::{load_release_key, load_secret, MIN_SECRET_LEN};
pub use resolve::resolve;

use crate::core::agents::VersionPolicy;
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

/// The TOML configuration file. Every key is optional here; [`resolve()`] says which are
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
    /// The oldest agent version served, `MAJOR.MINOR.PATCH` (default 0.1.0): an agent below
    /// it stays on the mesh but gets no jobs, is listed `outdated` and raises an alert.
    #[serde(alias = "min-agent-version")]
    pub min_agent_version: Option<String>,
    /// The next minimum agent version, announced to agents in heartbeat replies until
    /// `next_min_agent_version_from`, and the minimum from then on (default: none).
    #[serde(alias = "next-min-agent-version")]
    pub next_min_agent_version: Option<String>,
    /// When `next_min_agent_version` takes effect, unix seconds (required with it).
    #[serde(alias = "next-min-agent-version-from")]
    pub next_min_agent_version_from: Option<u64>,
    /// Prometheus `/metrics` over plain HTTP on this `IP:PORT` (default: off). No PII and no
    /// authentication: bind it to a private interface.
    #[serde(alias = "metrics-listen")]
    pub metrics_listen: Option<String>,
    /// The release public key file (64 hex digits, as `sealprint-release keygen` writes it):
    /// release manifests are accepted only when it verifies them, and enrollment tokens carry
    /// it to agents (default: none; uploads refused, agents not updated).
    #[serde(alias = "release-public-key")]
    pub release_public_key: Option<PathBuf>,
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
    /// `--min-agent-version`.
    pub min_agent_version: Option<String>,
    /// `--next-min-agent-version`.
    pub next_min_agent_version: Option<String>,
    /// `--next-min-agent-version-from`.
    pub next_min_agent_version_from: Option<u64>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// `--release-public-key`.
    pub release_public_key: Option<PathBuf>,
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
    /// The agent version policy (minimum, next minimum announced).
    pub agent_versions: VersionPolicy,
    /// Where `/metrics` is served (plain HTTP), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The release public key file, if remote updates are on.
    pub release_public_key: Option<PathBuf>,
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

#[cfg(test)]
mod tests;
