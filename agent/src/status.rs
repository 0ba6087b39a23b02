//! The running agent's status snapshot: written by the mesh event loop into the data directory
//! on every heartbeat, read by `sealprint-agent status` (a separate process).
//!
//! Why a file: the agent and `status` are separate processes, and the agent opens no local
//! control socket (one more listener to secure). The snapshot is small, holds no PII (ids,
//! printer names, verdicts and times only), is written atomically (temporary file, then rename)
//! with mode 0600, and carries the time it was written and the heartbeat period, so the reader
//! can tell a live agent from a stopped or stuck one. It also says whether the coordinator
//! requires a newer agent ([`Standing`]). A clean stop writes a last snapshot
//! marked `running: false`.

use std::path::Path;

use sealprint_protocol::PrinterReport;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::identity::{write_private, IdentityError};
use crate::versions::Standing;

/// The snapshot's file name in the data directory.
pub const FILE: &str = "status.json";

/// A snapshot older than this many heartbeat periods (and at least [`STALE_MIN_MS`]) is stale:
/// the agent is stopped, stuck or killed.
pub const STALE_PERIODS: u64 = 3;

/// The least age at which a snapshot is stale, whatever the heartbeat period.
pub const STALE_MIN_MS: u64 = 15_000;

/// How this agent reaches the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Link {
    /// Directly, over its own uplink.
    Uplink,
    /// Through a site peer that has an uplink.
    Relay {
        /// The relaying peer's device id.
        peer_device_id: String,
    },
    /// Not at all: no uplink and no relaying peer.
    None,
}

/// One printer as the agent last probed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterLine {
    /// The printer's configured name.
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Its URI (scheme, host and port; never credentials).
    pub uri: String,
    /// `verified`, `refused`, `unreachable`… (lowercase).
    pub verdict: String,
    /// `ready`, `paused`, … (lowercase).
    pub status: String,
    /// The identity (serial or device id) it answered, when any.
    pub identity: Option<String>,
    /// Why the verdict is what it is.
    pub reason: String,
}

impl From<&PrinterReport> for PrinterLine {
    fn from(r: &PrinterReport) -> Self {
        PrinterLine {
            name: r.name.clone(),
            pool: r.pool.clone(),
            uri: r.uri.clone(),
            verdict: format!("{:?}", r.verdict).to_lowercase(),
            status: format!("{:?}", r.status).to_lowercase(),
            identity: r.identity.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// What the running agent writes on every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was written (unix ms, the agent's clock).
    pub written_ms: u64,
    /// The agent's process id.
    pub pid: u32,
    /// False in the last snapshot of an agent that stopped cleanly.
    pub running: bool,
    /// The agent's version.
    pub version: String,
    /// This station's device id.
    pub device_id: String,
    /// The heartbeat period (ms): the snapshot is rewritten at least this often.
    pub heartbeat_interval_ms: u64,
    /// How heartbeats reach the coordinator now.
    pub link: Link,
    /// When the coordinator last acknowledged a heartbeat (a signed reply applied), unix ms.
    pub last_ack_ms: Option<u64>,
    /// The coordinator's clock minus this station's at that reply (ms, within one round trip).
    pub clock_offset_ms: Option<i64>,
    /// The printers as last probed.
    pub printers: Vec<PrinterLine>,
    /// Where this agent stands against the coordinator's minimum version, from the last
    /// reply (absent before one, and in snapshots of older agents).
    #[serde(default)]
    pub versions: Option<Standing>,
}

/// What reading a snapshot can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a snapshot.
    #[error("{path} is not a status snapshot: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Whether an agent is running, judged from its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// A fresh snapshot from a running agent.
    Running,
    /// The last snapshot is too old: the agent was killed or is stuck.
    Stale,
    /// The agent stopped cleanly.
    Stopped,
    /// No snapshot: no agent has run with this data directory.
    NeverRan,
}

impl Snapshot {
    /// Writes the snapshot into `data_dir` atomically, readable by its owner only.
    ///
    /// # Errors
    /// [`IdentityError::Io`] when the file cannot be written.
    pub fn write(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec_pretty(self).expect("a snapshot always serializes");
        write_private(&data_dir.join(FILE), &bytes)
    }

    /// Reads the snapshot in `data_dir`; `None` when there is none.
    ///
    /// # Errors
    /// [`StatusError`] when the file exists but cannot be read or parsed.
    pub fn read(data_dir: &Path) -> Result<Option<Snapshot>, StatusError> {
        let path = data_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StatusError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StatusError::Read { path, source }),
        }
    }

    /// How old the snapshot is at `now_ms` (0 when written in the reader's future).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.written_ms)
    }

    /// Whether the agent that wrote it is still running at `now_ms`.
    pub fn liveness(&self, now_ms: u64) -> Liveness {
        let limit = (STALE_PERIODS * self.heartbeat_interval_ms).max(STALE_MIN_MS);
        if !self.running {
            Liveness::Stopped
        } else if self.age_ms(now_ms) > limit {
            Liveness::Stale
        } else {
            Liveness::Running
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(written_ms: u64, running: bool) -> Snapshot {
        Snapshot {
            written_ms,
            pid: 1,
            running,
            version: "0".into(),
            device_id: "dev".into(),
            heartbeat_interval_ms: 10_000,
            link: Link::Relay {
                peer_device_id: "peer".into(),
            },
            last_ack_ms: Some(written_ms),
            clock_offset_ms: Some(-3),
            printers: Vec::new(),
            versions: Some(Standing {
                min_version: "99.0.0".into(),
                outdated: true,
                next_min_version: None,
                next_min_version_from_s: None,
            }),
        }
    }

    #[test]
    fn liveness_follows_age_and_clean_stop() {
        let s = snapshot(100_000, true);
        assert_eq!(s.liveness(100_000 + 30_000), Liveness::Running);
        assert_eq!(s.liveness(100_000 + 30_001), Liveness::Stale);
        assert_eq!(s.liveness(50_000), Liveness::Running);
        assert_eq!(
            snapshot(100_000, false).liveness(100_001),
            Liveness::Stopped
        );
    }

    #[test]
    fn round_trips_through_the_data_dir_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Snapshot::read(dir.path()).expect("read").is_none());
        let s = snapshot(5, true);
        s.write(dir.path()).expect("write");
        assert_eq!(Snapshot::read(dir.path()).expect("read"), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
