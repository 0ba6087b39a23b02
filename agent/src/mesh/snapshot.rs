//! The status snapshot the event loop leaves in the data directory for `sealprint-agent
//! status` (see [`crate::status`]): how it reaches the coordinator, the last acknowledged
//! heartbeat, the clock offset, the version standing and the printers.

use tracing::warn;

use super::EventLoop;
use crate::status::{Link, PrinterLine, Snapshot};
use crate::{now_ms, VERSION};

impl EventLoop {
    /// Writes the snapshot; `running` is false only for the last one of a clean stop.
    pub(super) fn write_status(&self, running: bool) {
        let link = if self.uplink_ready {
            Link::Uplink
        } else if let Some(peer) = &self.relay {
            Link::Relay {
                peer_device_id: peer.clone(),
            }
        } else {
            Link::None
        };
        let snapshot = Snapshot {
            written_ms: now_ms(),
            pid: std::process::id(),
            running,
            version: VERSION.to_owned(),
            device_id: self.id.device_id().to_owned(),
            heartbeat_interval_ms: u64::try_from(self.opts.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            link,
            last_ack_ms: self.last_ack_ms,
            clock_offset_ms: self.clock_offset_ms,
            printers: self
                .station
                .reports()
                .iter()
                .map(PrinterLine::from)
                .collect(),
            versions: self.versions.clone(),
        };
        if let Err(e) = snapshot.write(&self.data_dir) {
            warn!(error = %e, "status snapshot not written");
        }
    }
}
