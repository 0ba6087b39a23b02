//! Outcomes of delivery attempts: answers and lost answers, the device's signature over the
//! outcome, and the job's next state (printed, queued again, failed, or in doubt).

use libp2p::request_response::{OutboundFailure, OutboundRequestId};
use sealprint_protocol::{ErrorCode, JobOutcome, OutcomeExpectation, Response, SignedOutcome};
use tracing::{debug, info, warn};

use super::{now_ms, Doubt, EventLoop, Waiting};
use crate::core::dispatch::printer_id;
use crate::services::events::Event;
use crate::store::{JobRecord, JobStatus, NotificationKind};

impl EventLoop {
    /// An answer (or a failure) for a job request.
    pub(super) fn on_answer(
        &mut self,
        request: OutboundRequestId,
        answer: Result<Response, OutboundFailure>,
    ) {
        let Some(job_id) = self.requests.remove(&request) else {
            return;
        };
        let Some(a) = self.attempts.get(&job_id) else {
            return;
        };
        let direct = a.direct;
        let outcome = match answer {
            Ok(Response::Outcome(signed)) => self.check_outcome(&job_id, &signed),
            // The device's own refusal over its own authenticated connection: it did not
            // take the job. The same words from a relay prove nothing (it may have delivered
            // the job): the answer is then lost, and the device's receipts settle it.
            Ok(Response::Error {
                code: ErrorCode::Unreachable | ErrorCode::Unavailable,
                message,
            }) if direct => Ok(JobOutcome::NotPrinted {
                job_id: job_id.clone(),
                reason: message,
            }),
            Err(OutboundFailure::DialFailure | OutboundFailure::UnsupportedProtocols) => {
                Ok(JobOutcome::NotPrinted {
                    job_id: job_id.clone(),
                    reason: "not delivered: agent unreachable".into(),
                })
            }
            Ok(other) => Err(format!(
                "unexpected answer {:?}",
                std::mem::discriminant(&other)
            )),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = &outcome {
            // Delivery unknown: wait for the agent's receipts (see `dispatch`).
            debug!(job = %job_id, %reason, "answer lost; waiting for receipts");
            if let Some(a) = self.attempts.get_mut(&job_id) {
                a.request = None;
                if a.counted {
                    a.counted = false;
                    self.fleet.end(&a.printer_id);
                }
            }
            return;
        }
        self.finish_attempt(&job_id, outcome);
    }

    /// The outcome of an attempt when it is signed by the device the job was sealed to, over
    /// the envelope sent; otherwise why not (the answer then counts as lost).
    pub(super) fn check_outcome(
        &self,
        job_id: &str,
        signed: &SignedOutcome,
    ) -> Result<JobOutcome, String> {
        let Some(a) = self.attempts.get(job_id) else {
            return Err("no attempt out".into());
        };
        let Some((device_key, envelope)) = &a.expect else {
            return Err("attempt of a previous process".into());
        };
        let expect = OutcomeExpectation {
            job_id,
            attempt: a.attempt,
            device_id: &a.device_id,
            device_key,
            envelope,
        };
        match signed.verify(&expect) {
            Ok(outcome) => Ok(outcome.clone()),
            Err(e) => {
                warn!(job = %job_id, device = %a.device_id, error = %e, "outcome refused: not signed by the device for this attempt");
                self.audit(
                    Some(&a.tenant_id),
                    &a.device_id,
                    "label.outcome_refused",
                    Some(job_id),
                    &e.to_string(),
                );
                Err(e.to_string())
            }
        }
    }

    pub(super) fn finish_attempt(&mut self, job_id: &str, outcome: Result<JobOutcome, String>) {
        let Ok(outcome) = outcome else {
            return;
        };
        let Some(attempt) = self.attempts.remove(job_id) else {
            return;
        };
        if let Some(r) = attempt.request {
            self.requests.remove(&r);
        }
        if attempt.counted {
            self.fleet.end(&attempt.printer_id);
        }
        let mut job = match self.store.job(&attempt.tenant_id, job_id) {
            Ok(Some(j)) => j,
            _ => return,
        };
        if job.status != JobStatus::Dispatched {
            return;
        }
        let now = now_ms();
        match outcome {
            JobOutcome::Printed { printer, .. } => {
                job.printer = Some(printer_id(&attempt.device_id, &printer));
                self.mark_printed(&mut job);
            }
            JobOutcome::NotPrinted { reason, .. } => {
                info!(job = %job_id, printer = %attempt.printer_id, %reason, "not printed; choosing another printer");
                job.status = JobStatus::Queued;
                job.excluded_printers.retain(|p| p != &attempt.printer_id);
                job.excluded_printers.push(attempt.printer_id);
                job.error = Some(reason);
                job.updated_at_ms = now;
                if let Err(e) = self.store.update_job(&job) {
                    warn!(error = %e, "job state not stored");
                }
                self.queue.push_front(Waiting::of(&job));
            }
            JobOutcome::InDoubt { reason, .. } => {
                warn!(job = %job_id, %reason, "job in doubt; an operator decides");
                job.status = JobStatus::InDoubt;
                job.error = Some(reason.clone());
                job.updated_at_ms = now;
                if let Err(e) = self.store.update_job(&job) {
                    warn!(error = %e, "job state not stored");
                }
                self.audit(
                    Some(&job.tenant_id),
                    "coordinator",
                    "label.in_doubt",
                    Some(&job.id),
                    &format!("{reason}{}", reprint_flag(&job)),
                );
                self.emit(Event::of_job(NotificationKind::LabelInDoubt, &job, now));
                self.in_doubt.insert(
                    job.id.clone(),
                    Doubt {
                        tenant_id: job.tenant_id.clone(),
                        device_id: attempt.device_id,
                        attempt: attempt.attempt,
                        unheard: None,
                    },
                );
            }
        }
    }

    pub(super) fn mark_printed(&mut self, job: &mut JobRecord) {
        job.status = JobStatus::Printed;
        job.error = None;
        job.updated_at_ms = now_ms();
        crate::core::metrics::get().printed(job.created_at_ms, job.updated_at_ms);
        if let Err(e) = self.store.update_job(job) {
            warn!(error = %e, "job state not stored");
        }
        if let Err(e) = self.store.delete_label(&job.tenant_id, &job.id) {
            warn!(error = %e, "printed label not deleted");
        }
        info!(job = %job.id, printer = ?job.printer, attempts = job.attempts, "printed");
        let actor = job.agent.clone().unwrap_or_else(|| "coordinator".into());
        self.audit(
            Some(&job.tenant_id),
            &actor,
            "label.printed",
            Some(&job.id),
            &format!("ok{}", reprint_flag(job)),
        );
        self.emit(Event::of_job(
            NotificationKind::LabelPrinted,
            job,
            job.updated_at_ms,
        ));
    }

    pub(super) fn fail(&mut self, mut job: JobRecord, reason: &str) {
        warn!(job = %job.id, %reason, "job failed");
        job.status = JobStatus::Failed;
        job.error = Some(reason.to_owned());
        job.updated_at_ms = now_ms();
        if let Err(e) = self.store.update_job(&job) {
            warn!(error = %e, "job state not stored");
        }
        if let Err(e) = self.store.delete_label(&job.tenant_id, &job.id) {
            warn!(error = %e, "failed job's label not deleted");
        }
        self.audit(
            Some(&job.tenant_id),
            "coordinator",
            "label.failed",
            Some(&job.id),
            &format!("{reason}{}", reprint_flag(&job)),
        );
        self.emit(Event::of_job(
            NotificationKind::LabelFailed,
            &job,
            job.updated_at_ms,
        ));
    }
}

/// What a reprint's audit outcomes add (` reprint=true`), so a reprint is flagged everywhere
/// it appears; nothing for other jobs.
pub(super) fn reprint_flag(job: &JobRecord) -> &'static str {
    if job.reprint {
        " reprint=true"
    } else {
        ""
    }
}
