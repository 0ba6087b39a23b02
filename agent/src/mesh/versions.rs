//! The coordinator's version requirement from a signed heartbeat reply: this agent's standing
//! is kept for the status snapshot, and a change is logged once (not on every heartbeat).

use tracing::{info, warn};

use super::EventLoop;
use crate::versions::Standing;
use crate::VERSION;

impl EventLoop {
    /// Applies the `min_version` text of a verified reply.
    pub(super) fn apply_requirement(&mut self, wire: &str) {
        if self.requirement_text.as_deref() == Some(wire) {
            return;
        }
        self.requirement_text = Some(wire.to_owned());
        let was_outdated = self.versions.as_ref().is_some_and(|s| s.outdated);
        self.versions = match Standing::judge(VERSION, wire) {
            Ok(s) => Some(s),
            Err(e) => {
                // A newer coordinator may speak a form this agent does not know.
                warn!(error = %e, "version requirement not understood");
                None
            }
        };
        let Some(standing) = &self.versions else {
            return;
        };
        if let Some(advice) = standing.advice(VERSION) {
            warn!(version = VERSION, min_version = %standing.min_version, "{advice}");
        } else if let Some(notice) = standing.notice(VERSION) {
            warn!(version = VERSION, "{notice}");
        } else if was_outdated {
            info!(version = VERSION, min_version = %standing.min_version, "agent version accepted by the coordinator again");
        }
    }
}
