//! # sealprint-agent
//!
//! The Print Station agent. It enrolls with a one-time token (keys generated on the device),
//! joins its site's Noise-encrypted libp2p mesh, accepts only peers with valid device
//! certificates, verifies that its printers are physical devices, and delivers each label,
//! held only in memory, to exactly one verified printer. It heartbeats to the coordinator,
//! directly or through a site peer.
//!
//! # Layout
//! - [`config`]: the TOML file and flags, validated together.
//! - [`host`]: this machine's host name (the default enrollment name).
//! - [`identity`]: keys, certificate and coordinator pin in the data directory.
//! - [`data_dir`]: the default data directory (Windows) and who may read it.
//! - [`secret_file`]: private key files sealed at rest (DPAPI on Windows).
//! - [`service`]: the agent as a Windows service (the SCM calls are Windows-only).
//! - [`enroll`]: the enrollment exchange.
//! - [`mesh`]: the event loop that owns the libp2p swarm.
//! - [`station`]: this station's printers, locked and probed.
//! - [`printer`]: talking to one printer (verification, status, delivery).
//! - [`receipts`]: what became of each job received, for heartbeats.
//! - [`revocations`]: the coordinator-signed list of revoked devices, kept on disk.
//! - [`sequence`]: the heartbeat counter that grows across restarts.
//! - [`status`]: the running agent's status snapshot (`sealprint-agent status`).
//! - [`update`]: remote updates: checking an offered release, replacing the binary, the
//!   trial of the new version and the rollback.
//! - [`versions`]: this agent against the coordinator's minimum version (and the next one).
//! - [`discover`]: finding candidate printers (`sealprint-agent printers --discover`).
//! - [`doctor`]: the station self-check (`sealprint-agent doctor`).
//! - [`metrics`]: the agent's Prometheus metrics (`run --metrics-listen`).
//!
//! Label bytes never touch the agent's disk and are wiped from memory after printing.

pub mod config;
pub mod data_dir;
pub mod discover;
pub mod doctor;
pub mod enroll;
pub mod host;
pub mod identity;
pub mod mesh;
pub mod metrics;
pub mod printer;
pub mod receipts;
pub mod revocations;
pub mod secret_file;
pub mod sequence;
pub mod service;
pub mod station;
pub mod status;
pub mod update;
pub mod versions;

use thiserror::Error;

/// The agent's version, reported in heartbeats: the package version, unless the build set
/// `SEALPRINT_VERSION_OVERRIDE` (the update tests build a second copy with a bumped version).
pub const VERSION: &str = match option_env!("SEALPRINT_VERSION_OVERRIDE") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// What can stop the agent.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The identity files are missing or broken.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Enrollment failed.
    #[error("enrollment failed: {0}")]
    Enroll(String),
    /// The mesh endpoint could not start.
    #[error("mesh: {0}")]
    Mesh(String),
    /// A printer is misconfigured.
    #[error(transparent)]
    Printer(#[from] printer::PrinterError),
}

/// The wall clock in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
