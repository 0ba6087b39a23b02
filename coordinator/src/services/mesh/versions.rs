//! The version requirement a heartbeat is judged against: the global policy raised by the
//! tenant's own minimum ([`crate::core::agents::VersionPolicy::requirement`]). An agent below it
//! is marked outdated in the fleet (dispatch then sends it no job) and told in the reply what
//! is required; the change either way is logged once, with ids and versions only.

use sealprint_protocol::{Heartbeat, Requirement};
use tracing::{info, warn};

use super::EventLoop;
use crate::store::AgentRecord;

impl EventLoop {
    /// The requirement for `record`'s tenant now, after marking the agent outdated or not
    /// from `hb`'s version. A tenant minimum that cannot be read counts as none: the global
    /// minimum still holds.
    pub(super) fn judge_version(&mut self, record: &AgentRecord, hb: &Heartbeat) -> Requirement {
        let tenant_min = self
            .store
            .tenant_min_agent_version(&record.tenant_id)
            .unwrap_or_else(|e| {
                warn!(tenant = %record.tenant_id, error = %e, "tenant agent policy not readable");
                None
            });
        let now_s = super::now_ms() / 1000;
        let requirement = self.versions.requirement(tenant_min, now_s);
        // An agent updating is held like an outdated one: no jobs into its restart.
        let outdated =
            requirement.outdated(&hb.version) | self.update_hold(&record.device_id, &hb.version);
        if self.fleet.set_outdated(&record.device_id, outdated) {
            if outdated {
                warn!(
                    device = %record.device_id,
                    version = %hb.version,
                    min_version = %requirement.min,
                    "agent below the minimum version: it gets no jobs until it is updated"
                );
            } else {
                info!(device = %record.device_id, version = %hb.version, "agent version accepted again");
            }
        }
        requirement
    }
}
