//! An operator's settlement of a job, decided inside the event loop: resolving a job in doubt
//! (`printed` or `not_printed`) and cancelling a queued job.
//!
//! The loop is the one place that also applies the agents' receipts and sends jobs, and it
//! handles one thing at a time, so a late receipt and an operator's resolve cannot both
//! settle a job: whichever reaches the loop first settles it, and the other finds the job no
//! longer in doubt (a resolve then answers 409 with the job's status; a receipt for a job
//! already resolved is ignored, and one for an attempt made after a `not_printed` resolve
//! names a new attempt number). Likewise a cancel removes the job from the queue before any
//! dispatch pass can send it, or finds it already dispatched (409).

use tracing::{info, warn};

use super::outcome::reprint_flag;
use super::{now_ms, EventLoop, Waiting};
use crate::core::dispatcher::{SettleAction, SettleAnswer, SettleRequest};
use crate::services::events::Event;
use crate::store::{JobStatus, NotificationKind};

impl EventLoop {
    /// Decides `request` now.
    pub(super) fn settle(&mut self, request: &SettleRequest) -> SettleAnswer {
        let mut job = match self.store.job(&request.tenant_id, &request.job_id) {
            Ok(Some(job)) => job,
            Ok(None) => return SettleAnswer::NotFound,
            Err(e) => {
                warn!(job = %request.job_id, error = %e, "job not readable for an operator's settlement");
                return SettleAnswer::Failed;
            }
        };
        let now = now_ms();
        let action = request.action;
        match action {
            SettleAction::Cancel => {
                if job.status != JobStatus::Queued {
                    return SettleAnswer::WrongState(job.status.as_str());
                }
                self.queue.retain(|w| w.job_id != job.id);
                job.status = JobStatus::Cancelled;
                job.error = Some("cancelled by an operator".into());
                job.updated_at_ms = now;
                if let Err(e) = self.store.update_job(&job) {
                    warn!(job = %job.id, error = %e, "cancelled job not stored");
                    // Still queued in the store: back in the queue, as it was.
                    self.queue.push_front(Waiting::of(&job));
                    return SettleAnswer::Failed;
                }
                if let Err(e) = self.store.delete_label(&job.tenant_id, &job.id) {
                    warn!(job = %job.id, error = %e, "cancelled job's label not deleted");
                }
                info!(job = %job.id, "cancelled by an operator");
                self.audit(
                    Some(&job.tenant_id),
                    &request.actor,
                    "label.cancelled",
                    Some(&job.id),
                    &format!("ok{}", reprint_flag(&job)),
                );
            }
            SettleAction::Printed | SettleAction::NotPrinted => {
                if job.status != JobStatus::InDoubt {
                    return SettleAnswer::WrongState(job.status.as_str());
                }
                // From here on no receipt settles it: the doubt is gone.
                self.in_doubt.remove(&job.id);
                self.audit(
                    Some(&job.tenant_id),
                    &request.actor,
                    "label.resolved",
                    Some(&job.id),
                    &format!("ok outcome={}{}", action.as_str(), reprint_flag(&job)),
                );
                if action == SettleAction::Printed {
                    info!(job = %job.id, "in-doubt job resolved by an operator: printed");
                    self.mark_printed(&mut job);
                } else {
                    info!(job = %job.id, "in-doubt job resolved by an operator: not printed; requeued");
                    job.status = JobStatus::Queued;
                    job.error = Some("resolved not printed by an operator; requeued".into());
                    job.updated_at_ms = now;
                    // A person may answer long after the job's window closed: it gets its
                    // whole time to live again, from now, rather than failing at once.
                    let ttl = job.expires_at_ms.saturating_sub(job.created_at_ms);
                    job.expires_at_ms = job.expires_at_ms.max(now.saturating_add(ttl));
                    if let Err(e) = self.store.update_job(&job) {
                        warn!(job = %job.id, error = %e, "requeued job not stored");
                        return SettleAnswer::Failed;
                    }
                    self.queue.push_front(Waiting::of(&job));
                }
                let mut event = Event::of_job(NotificationKind::LabelResolved, &job, now);
                event.data.outcome = Some(action.as_str().to_owned());
                event.data.resolved_by = Some(request.actor.clone());
                self.emit(event);
            }
        }
        SettleAnswer::Settled(job.status.as_str())
    }
}
