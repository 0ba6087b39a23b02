//! Remote updates in the event loop: after each acknowledged heartbeat on the agent's own
//! uplink it asks for an offer, checks it ([`crate::update::plan`]), fetches the artifact in
//! chunks, checks the bytes, reports each step to the coordinator, drains (new jobs are
//! answered "not printed"), installs the binary, and ends the loop so that `run` starts the
//! trial (see [`crate::update`]). A relayed agent does not update (logged once).

use std::time::{Duration, Instant};

use sealprint_protocol::{
    Request, UpdateOffer, UpdateReport, UpdateRequest, UpdateResponse, UpdateStep, Version,
    MAX_CHUNK,
};
use tracing::{debug, info, warn};

use super::{EventLoop, Pending};
use crate::update::{self, BinaryPaths, Plan, Refusal, UpdateState, ACK_FILE};
use crate::VERSION;

/// Largest artifact the agent fetches into memory, whatever a manifest says.
pub const MAX_ARTIFACT: u64 = 1024 * 1024 * 1024;
/// How long after the coordinator recorded `applied` the loop keeps refusing jobs before it
/// stops (a job sent just before the coordinator held the agent still gets its answer).
const SETTLE: Duration = Duration::from_millis(500);

/// Where an update stands in this process.
pub(super) enum Progress {
    /// Nothing under way.
    Idle,
    /// An offer was asked for.
    Asking,
    /// Chunks are being fetched.
    Fetching { plan: Plan, bytes: Vec<u8> },
    /// The bytes are checked; waiting for the coordinator to record `fetched` (it then
    /// holds the agent out of dispatch) and for jobs in flight to finish.
    Draining {
        plan: Plan,
        bytes: Vec<u8>,
        recorded: bool,
    },
    /// The binary was replaced; waiting for the coordinator to record it.
    Applied {
        version: String,
        recorded: Option<Instant>,
    },
}

impl EventLoop {
    /// Whether jobs are refused because an update is about to restart the agent.
    pub(super) fn updating(&self) -> bool {
        matches!(
            self.update,
            Progress::Draining { .. } | Progress::Applied { .. }
        )
    }

    /// The version to restart into, once the loop may stop for it.
    pub(super) fn restart_due(&self) -> Option<String> {
        match &self.update {
            Progress::Applied {
                version,
                recorded: Some(at),
            } if at.elapsed() >= SETTLE && self.in_flight == 0 => Some(version.clone()),
            _ => None,
        }
    }

    fn report(&mut self, version: &str, step: UpdateStep, reason: &str) {
        let coordinator = self.coordinator;
        let report = UpdateReport {
            version: version.to_owned(),
            step,
            reason: reason
                .chars()
                .take(sealprint_protocol::update::MAX_REASON_LEN)
                .collect(),
        };
        self.request(
            coordinator,
            Request::Update(UpdateRequest::Report(report)),
            Pending::UpdateReport(step),
        );
    }

    fn refuse_update(&mut self, version: &str, refusal: &Refusal) {
        warn!(version, reason = %refusal, "update refused");
        self.update_refused.insert(version.to_owned());
        self.update = Progress::Idle;
        self.report(version, UpdateStep::Refused, &refusal.to_string());
    }

    /// After a heartbeat reply was applied: the trial's acknowledgement, a rollback still to
    /// report, and the question for an offer.
    pub(super) fn after_ack(&mut self, direct: bool) {
        if self.policy.on_trial.as_deref() == Some(VERSION) && !self.trial_acked {
            self.trial_acked = true;
            if let Err(e) = std::fs::write(self.data_dir.join(ACK_FILE), VERSION) {
                warn!(error = %e, "trial acknowledgement not written");
            }
            if direct {
                self.report(VERSION, UpdateStep::Running, "");
            }
        }
        if !direct {
            if !self.update_note_logged && self.policy.release_key.is_some() {
                self.update_note_logged = true;
                info!("heartbeats go through a site peer: remote updates are skipped on a relayed agent");
            }
            return;
        }
        if self.policy.on_trial.is_some() {
            // The guard decides this process's fate; it must not update again meanwhile.
            return;
        }
        if let Some((version, reason)) = self.update_state.unreported.clone() {
            self.report(&version, UpdateStep::RolledBack, &reason);
        }
        if self.policy.release_key.is_none() || self.policy.exe.is_none() {
            if !self.update_note_logged {
                self.update_note_logged = true;
                info!("remote updates off: no release key pinned at enrollment, or no binary path");
            }
            return;
        }
        if matches!(self.update, Progress::Idle) && !self.shutting_down {
            self.update = Progress::Asking;
            let coordinator = self.coordinator;
            self.request(
                coordinator,
                Request::Update(UpdateRequest::Offer {
                    version: VERSION.to_owned(),
                    platform: update::PLATFORM.to_owned(),
                }),
                Pending::UpdateOffer,
            );
        }
    }

    fn min_version(&self) -> Option<Version> {
        self.versions
            .as_ref()
            .and_then(|s| s.min_version.parse().ok())
    }

    fn on_offer(&mut self, offer: UpdateOffer) {
        if self.update_refused.contains(&offer.version)
            || self.update_state.rolled_back.contains(&offer.version)
        {
            self.update = Progress::Idle;
            return;
        }
        let plan = match update::plan(&offer, VERSION, self.min_version().as_ref(), &self.policy) {
            Ok(p) => p,
            Err(refusal) => return self.refuse_update(&offer.version.clone(), &refusal),
        };
        if plan.artifact.size > MAX_ARTIFACT || plan.artifact.size == 0 {
            let version = plan.version.clone();
            return self.refuse_update(
                &version,
                &Refusal::Malformed(format!("artifact size {}", plan.artifact.size)),
            );
        }
        info!(from = VERSION, to = %plan.version, size = plan.artifact.size, "update offered; fetching");
        let cap = usize::try_from(plan.artifact.size.min(64 * 1024 * 1024)).unwrap_or(0);
        self.update = Progress::Fetching {
            plan,
            bytes: Vec::with_capacity(cap),
        };
        self.next_chunk();
    }

    fn next_chunk(&mut self) {
        let Progress::Fetching { plan, bytes } = &self.update else {
            return;
        };
        let offset = bytes.len() as u64;
        let len = (plan.artifact.size - offset).min(u64::from(MAX_CHUNK)) as u32;
        let req = UpdateRequest::Chunk {
            version: plan.version.clone(),
            artifact: plan.artifact.name.clone(),
            offset,
            len,
        };
        let coordinator = self.coordinator;
        self.request(coordinator, Request::Update(req), Pending::UpdateChunk(len));
    }

    fn on_chunk(&mut self, asked: u32, chunk: Vec<u8>) {
        let progress = std::mem::replace(&mut self.update, Progress::Idle);
        let Progress::Fetching { plan, mut bytes } = progress else {
            return;
        };
        if chunk.is_empty() || chunk.len() > asked as usize {
            // A short or long answer is the coordinator's fault or the network's: try again
            // from scratch on a later heartbeat (the signed digest decides in the end).
            warn!(version = %plan.version, got = chunk.len(), asked, "artifact chunk of the wrong size; fetch abandoned");
            return;
        }
        bytes.extend_from_slice(&chunk);
        if (bytes.len() as u64) < plan.artifact.size {
            self.update = Progress::Fetching { plan, bytes };
            return self.next_chunk();
        }
        let Some(key) = self.policy.release_key else {
            return;
        };
        if let Err(refusal) = plan.check_bytes(&key, &bytes) {
            return self.refuse_update(&plan.version.clone(), &refusal);
        }
        info!(version = %plan.version, "update fetched and verified; draining before the restart");
        self.report(&plan.version, UpdateStep::Fetched, "");
        self.update = Progress::Draining {
            plan,
            bytes,
            recorded: false,
        };
    }

    /// Installs the fetched binary once no job is in flight.
    pub(super) fn apply_when_drained(&mut self) {
        if self.in_flight != 0 || !matches!(self.update, Progress::Draining { recorded: true, .. })
        {
            return;
        }
        let Progress::Draining { plan, bytes, .. } =
            std::mem::replace(&mut self.update, Progress::Idle)
        else {
            return;
        };
        let Some(exe) = self.policy.exe.clone() else {
            return;
        };
        let paths = BinaryPaths::of(&exe);
        if let Err(e) = update::install(&paths, &bytes) {
            return self.refuse_update(&plan.version.clone(), &Refusal::Install(e.to_string()));
        }
        info!(from = VERSION, to = %plan.version, "binary replaced; restarting into the new version");
        self.report(&plan.version, UpdateStep::Applied, "");
        self.update = Progress::Applied {
            version: plan.version,
            recorded: None,
        };
    }

    pub(super) fn on_update_response(&mut self, pending: Pending, resp: UpdateResponse) {
        match (pending, resp) {
            (Pending::UpdateOffer, UpdateResponse::Offer(offer)) => self.on_offer(offer),
            (Pending::UpdateOffer, _) => self.update = Progress::Idle,
            (Pending::UpdateChunk(asked), UpdateResponse::Chunk(bytes)) => {
                self.on_chunk(asked, bytes)
            }
            (Pending::UpdateReport(step), _) => self.on_report_done(step),
            (_, other) => {
                debug!(?other, "unexpected update answer");
                if matches!(self.update, Progress::Asking | Progress::Fetching { .. }) {
                    self.update = Progress::Idle;
                }
            }
        }
    }

    /// A report was answered (or lost: the coordinator's audit misses a step, the update
    /// goes on).
    pub(super) fn on_report_done(&mut self, step: UpdateStep) {
        match step {
            UpdateStep::Fetched => {
                if let Progress::Draining { recorded, .. } = &mut self.update {
                    *recorded = true;
                }
            }
            UpdateStep::Applied => {
                if let Progress::Applied { recorded, .. } = &mut self.update {
                    *recorded = Some(Instant::now());
                }
            }
            UpdateStep::RolledBack => {
                self.update_state.unreported = None;
                if let Err(e) = self.update_state.save(&self.data_dir) {
                    warn!(error = %e, "update state not saved");
                }
            }
            _ => {}
        }
    }

    /// An update request failed or was refused: fetching starts over on a later heartbeat.
    pub(super) fn on_update_failed(&mut self, pending: Pending) {
        match pending {
            Pending::UpdateReport(step) => self.on_report_done(step),
            _ => {
                if matches!(self.update, Progress::Asking | Progress::Fetching { .. }) {
                    self.update = Progress::Idle;
                }
            }
        }
    }
}

/// The update state at start: rolled-back versions and a rollback to report.
pub(super) fn load_state(data_dir: &std::path::Path) -> UpdateState {
    UpdateState::load(data_dir)
}
