//! Remote updates on the mesh: the release offered to an agent (its site's desired version,
//! else its tenant's, under the rollout percentage), slices of the artifact, and the steps the
//! agent reports, each audited (`update.offered` once per agent and version, then
//! `update.fetched`, `update.applied`, `update.refused`, `update.rolled_back`,
//! `update.running`).
//!
//! While an agent updates (from its `fetched` report until it heartbeats with the new version,
//! reports a refusal or a rollback, or ten minutes pass) it gets no new jobs: it drains and
//! restarts, and nothing is sent into the restart. The same from its trial process's
//! `running` report until the process it hands over to connects: the trial process is
//! stopped right after that report.
//!
//! Only an agent's own connection asks: an update request is never relayed.

use std::time::{Duration, Instant};

use sealprint_protocol::{
    ErrorCode, Response, UpdateReport, UpdateRequest, UpdateResponse, UpdateStep, Version,
    MAX_CHUNK,
};
use tracing::{info, warn};

use super::{refuse, EventLoop};
use crate::core::rollout::Desired;
use crate::store::AgentRecord;

/// Longest an agent is held out of dispatch for an update it announced.
const HOLD: Duration = Duration::from_secs(600);

impl EventLoop {
    pub(super) fn on_update(&mut self, record: &AgentRecord, req: UpdateRequest) -> Response {
        match req {
            UpdateRequest::Offer { version, platform } => self.offer(record, &version, &platform),
            UpdateRequest::Chunk {
                version,
                artifact,
                offset,
                len,
            } => {
                if len > MAX_CHUNK {
                    return refuse(ErrorCode::BadRequest, "chunk too large");
                }
                match self
                    .releases
                    .read_chunk(&self.store, &version, &artifact, offset, len)
                {
                    Ok(bytes) => Response::Update(UpdateResponse::Chunk(bytes)),
                    Err(e) => {
                        warn!(device = %record.device_id, error = %e, "artifact chunk not served");
                        refuse(ErrorCode::BadRequest, "unknown release artifact")
                    }
                }
            }
            UpdateRequest::Report(report) => {
                self.on_update_report(record, &report);
                Response::Update(UpdateResponse::Recorded)
            }
        }
    }

    /// The desired version that applies to the agent: its site's, else its tenant's.
    fn desired_for(&self, record: &AgentRecord) -> Option<Desired> {
        let site = self
            .store
            .desired_version(&record.tenant_id, Some(&record.site_id));
        let chosen = match site {
            Ok(Some(d)) => Some(d),
            Ok(None) => self
                .store
                .desired_version(&record.tenant_id, None)
                .ok()
                .flatten(),
            Err(e) => {
                warn!(error = %e, "desired version not readable");
                None
            }
        }?;
        Some(Desired {
            version: chosen.version.parse::<Version>().ok()?,
            rollout_percent: chosen.rollout_percent,
        })
    }

    fn offer(&mut self, record: &AgentRecord, version: &str, platform: &str) -> Response {
        let Some(desired) = self.desired_for(record) else {
            return Response::Update(UpdateResponse::None);
        };
        match self
            .releases
            .offer(&self.store, &desired, &record.device_id, version, platform)
        {
            Ok(Some(offer)) => {
                let key = (record.device_id.clone(), offer.version.clone());
                if self.offered.insert(key) {
                    info!(device = %record.device_id, from = %version, to = %offer.version, "update offered");
                    self.audit(
                        Some(&record.tenant_id),
                        &record.device_id,
                        "update.offered",
                        Some(&record.device_id),
                        &format!("ok from={version} to={}", offer.version),
                    );
                }
                Response::Update(UpdateResponse::Offer(offer))
            }
            Ok(None) => Response::Update(UpdateResponse::None),
            Err(e) => {
                warn!(error = %e, "update offer not built");
                Response::Update(UpdateResponse::None)
            }
        }
    }

    fn on_update_report(&mut self, record: &AgentRecord, report: &UpdateReport) {
        let reason: String = report.reason.chars().take(200).collect();
        match report.step {
            UpdateStep::Fetched | UpdateStep::Applied => {
                self.updating.insert(
                    record.device_id.clone(),
                    (report.version.clone(), Instant::now()),
                );
                self.fleet.set_outdated(&record.device_id, true);
            }
            UpdateStep::Refused | UpdateStep::RolledBack => {
                self.updating.remove(&record.device_id);
            }
            UpdateStep::Running => {
                self.updating.remove(&record.device_id);
                // Only a trial process reports it, right before its guard stops it and
                // restarts into the new version: a job sent to it now could be lost in
                // that restart and end in doubt.
                self.begin_handover(&record.device_id);
            }
        }
        if report.step == UpdateStep::Refused || report.step == UpdateStep::RolledBack {
            warn!(device = %record.device_id, version = %report.version, step = report.step.as_str(), %reason, "agent update did not happen");
        } else {
            info!(device = %record.device_id, version = %report.version, step = report.step.as_str(), "agent update step");
        }
        let outcome = if reason.is_empty() {
            format!("ok version={}", report.version)
        } else {
            format!("version={} reason={reason}", report.version)
        };
        self.audit(
            Some(&record.tenant_id),
            &record.device_id,
            &format!("update.{}", report.step.as_str()),
            Some(&record.device_id),
            &outcome,
        );
    }

    /// Holds `device_id` out of dispatch while its trial process hands over to the new one.
    pub(super) fn begin_handover(&mut self, device_id: &str) {
        self.handovers.insert(device_id.to_owned(), Instant::now());
        self.fleet.set_outdated(device_id, true);
    }

    /// A new connection of `device_id` said hello: a handover's new process is up, and its
    /// next heartbeat is judged as usual.
    pub(super) fn end_handover(&mut self, device_id: &str) {
        self.handovers.remove(device_id);
    }

    /// Whether the agent is held out of dispatch for an update it announced: until it
    /// reports `version` (the target), or the hold expires; during a handover, until a new
    /// connection says hello (or the hold expires).
    pub(super) fn update_hold(&mut self, device_id: &str, version: &str) -> bool {
        if let Some(since) = self.handovers.get(device_id) {
            if since.elapsed() <= HOLD {
                return true;
            }
            self.handovers.remove(device_id);
        }
        let Some((target, since)) = self.updating.get(device_id) else {
            return false;
        };
        if target == version || since.elapsed() > HOLD {
            self.updating.remove(device_id);
            return false;
        }
        true
    }
}
