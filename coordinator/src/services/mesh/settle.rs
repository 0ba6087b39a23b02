//! Settling deliveries from an agent's receipts: attempts whose answer was lost and jobs in
//! doubt are judged by pure functions over the heartbeat, and the loop applies the verdicts.

use std::collections::HashMap;

use sealprint_protocol::{Heartbeat, JobOutcome, ReceiptState};
use tracing::info;

use super::{now_ms, Attempt, Doubt, EventLoop, Waiting};
use crate::core::dispatch::{judge_lost_answer, DispatchConfig, LostAnswer};
use crate::store::JobStatus;

/// The receipts of a heartbeat by (job, attempt): a receipt counts only for the attempt it
/// names.
type Receipts<'a> = HashMap<(&'a str, u32), &'a ReceiptState>;

fn receipts_of(hb: &Heartbeat) -> Receipts<'_> {
    hb.receipts
        .iter()
        .map(|r| ((r.job_id.as_str(), r.attempt), &r.state))
        .collect()
}

/// The outcomes that `hb` gives to the attempts out on `device_id`: a receipt's outcome, or a
/// lost answer judged by [`judge_lost_answer`] (reassign, or in doubt). An attempt the agent
/// still holds (`Printing`), or that may still reach it, gets none.
fn judge_attempts(
    device_id: &str,
    hb: &Heartbeat,
    attempts: &HashMap<String, Attempt>,
    cfg: &DispatchConfig,
) -> Vec<(String, JobOutcome)> {
    let receipts = receipts_of(hb);
    let mut out = Vec::new();
    // An answer still awaited counts too: a request into a cut link fails only at its
    // timeout, but a heartbeat built after the deadline already settles it.
    for (job_id, a) in attempts.iter().filter(|(_, a)| a.device_id == device_id) {
        match receipts.get(&(job_id.as_str(), a.attempt)) {
            Some(ReceiptState::Done(outcome)) => {
                out.push((job_id.clone(), outcome.clone()));
                continue;
            }
            // The agent holds it: its answer will come in a later heartbeat.
            Some(ReceiptState::Printing) => continue,
            None => {}
        }
        match judge_lost_answer(hb, a.dispatched_at_ms, a.deadline_ms, cfg) {
            LostAnswer::Wait => {}
            LostAnswer::Reassign => out.push((job_id.clone(), never_received(job_id))),
            LostAnswer::InDoubt => out.push((
                job_id.clone(),
                JobOutcome::InDoubt {
                    job_id: job_id.clone(),
                    reason: "agent restarted while the job was out".into(),
                },
            )),
        }
    }
    out
}

/// The jobs in doubt on `device_id` that `hb` settles, with their outcome: a receipt that
/// says printed or not printed, or (when the doubt is only that the agent went silent) a
/// heartbeat of the same process built after the deadline that does not list the job. A
/// doubt whose agent restarted since can no longer be settled that way: its `unheard` is
/// cleared.
fn judge_doubts(
    device_id: &str,
    hb: &Heartbeat,
    in_doubt: &mut HashMap<String, Doubt>,
    cfg: &DispatchConfig,
) -> Vec<(String, JobOutcome)> {
    let receipts = receipts_of(hb);
    let mut settled = Vec::new();
    for (job_id, d) in in_doubt
        .iter_mut()
        .filter(|(_, d)| d.device_id == device_id)
    {
        match receipts.get(&(job_id.as_str(), d.attempt)) {
            Some(ReceiptState::Done(
                o @ (JobOutcome::Printed { .. } | JobOutcome::NotPrinted { .. }),
            )) => settled.push((job_id.clone(), o.clone())),
            Some(_) => {}
            None => {
                let Some((sent, deadline)) = d.unheard else {
                    continue;
                };
                match judge_lost_answer(hb, sent, deadline, cfg) {
                    LostAnswer::Wait => {}
                    LostAnswer::Reassign => settled.push((job_id.clone(), never_received(job_id))),
                    // It restarted since: nobody can know any more.
                    LostAnswer::InDoubt => d.unheard = None,
                }
            }
        }
    }
    settled
}

fn never_received(job_id: &str) -> JobOutcome {
    JobOutcome::NotPrinted {
        job_id: job_id.to_owned(),
        reason: "agent never received the job before its deadline".into(),
    }
}

impl EventLoop {
    /// Settles attempts whose answer was lost, and jobs in doubt, from the receipts in an
    /// agent's heartbeat. A receipt counts only for the attempt it names.
    pub(super) fn settle_from_receipts(&mut self, device_id: &str, hb: &Heartbeat) {
        for (job_id, outcome) in judge_attempts(device_id, hb, &self.attempts, &self.cfg) {
            self.finish_attempt(&job_id, Ok(outcome));
        }
        for (job_id, outcome) in judge_doubts(device_id, hb, &mut self.in_doubt, &self.cfg) {
            if let Some(d) = self.in_doubt.remove(&job_id) {
                self.resolve_in_doubt(&d.tenant_id, &job_id, outcome);
            }
        }
    }

    /// Ends a job in doubt with the outcome its agent's receipt gives (printed, or not
    /// printed and back in the queue).
    pub(super) fn resolve_in_doubt(&mut self, tenant_id: &str, job_id: &str, outcome: JobOutcome) {
        let Ok(Some(mut job)) = self.store.job(tenant_id, job_id) else {
            return;
        };
        if job.status != JobStatus::InDoubt {
            return;
        }
        match outcome {
            JobOutcome::Printed { .. } => {
                info!(job = %job_id, "in-doubt job settled by receipt: printed");
                self.mark_printed(&mut job);
            }
            JobOutcome::NotPrinted { reason, .. } => {
                info!(job = %job_id, "in-doubt job settled by receipt: not printed; requeued");
                job.status = JobStatus::Queued;
                job.error = Some(reason);
                job.updated_at_ms = now_ms();
                if self.store.update_job(&job).is_ok() {
                    self.queue.push_back(Waiting::of(&job));
                }
            }
            JobOutcome::InDoubt { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use sealprint_protocol::PrintReceipt;

    use super::*;

    const SENT: u64 = 100_000;
    const DEADLINE: u64 = 130_000;

    fn attempt(device_id: &str, attempt: u32) -> Attempt {
        Attempt {
            tenant_id: "tnt-1".into(),
            printer_id: format!("{device_id}.zebra"),
            device_id: device_id.into(),
            expect: None,
            direct: true,
            attempt,
            dispatched_at_ms: SENT,
            deadline_ms: DEADLINE,
            request: None,
            counted: false,
        }
    }

    fn doubt(device_id: &str, attempt: u32, unheard: Option<(u64, u64)>) -> Doubt {
        Doubt {
            tenant_id: "tnt-1".into(),
            device_id: device_id.into(),
            attempt,
            unheard,
        }
    }

    fn receipt(job_id: &str, attempt: u32, state: ReceiptState) -> PrintReceipt {
        PrintReceipt {
            job_id: job_id.into(),
            attempt,
            state,
            at_ms: 0,
        }
    }

    /// A heartbeat of `dev-1` built at `clock_ms` by a process up for `uptime_s`.
    fn heartbeat(clock_ms: u64, uptime_s: u64, receipts: Vec<PrintReceipt>) -> Heartbeat {
        Heartbeat {
            device_id: "dev-1".into(),
            seq: 1,
            version: "0".into(),
            uptime_s,
            clock_ms,
            printers: Vec::new(),
            peers: Vec::new(),
            receipts,
            findings: Vec::new(),
        }
    }

    /// Built before the deadline by the process that got the job.
    fn before_deadline(receipts: Vec<PrintReceipt>) -> Heartbeat {
        heartbeat(120_000, 1_000, receipts)
    }

    /// Built after the deadline by the process that was running when the job was sent.
    fn after_deadline_same_process(receipts: Vec<PrintReceipt>) -> Heartbeat {
        heartbeat(200_000, 1_000, receipts)
    }

    /// Built after the deadline by a process started after the send.
    fn after_restart(receipts: Vec<PrintReceipt>) -> Heartbeat {
        heartbeat(200_000, 10, receipts)
    }

    fn printed(job_id: &str) -> JobOutcome {
        JobOutcome::Printed {
            job_id: job_id.into(),
            printer: "zebra".into(),
        }
    }

    #[test]
    fn a_receipt_settles_only_the_attempt_it_names() {
        let cfg = DispatchConfig::default();
        let attempts = HashMap::from([("job-a".to_owned(), attempt("dev-1", 2))]);
        let old = before_deadline(vec![receipt(
            "job-a",
            1,
            ReceiptState::Done(printed("job-a")),
        )]);
        assert!(judge_attempts("dev-1", &old, &attempts, &cfg).is_empty());
        let own = before_deadline(vec![receipt(
            "job-a",
            2,
            ReceiptState::Done(printed("job-a")),
        )]);
        assert_eq!(
            judge_attempts("dev-1", &own, &attempts, &cfg),
            vec![("job-a".to_owned(), printed("job-a"))]
        );
    }

    #[test]
    fn an_attempt_the_agent_holds_waits_even_past_its_deadline() {
        let cfg = DispatchConfig::default();
        let attempts = HashMap::from([("job-a".to_owned(), attempt("dev-1", 1))]);
        let hb = after_deadline_same_process(vec![receipt("job-a", 1, ReceiptState::Printing)]);
        assert!(judge_attempts("dev-1", &hb, &attempts, &cfg).is_empty());
    }

    #[test]
    fn a_lost_answer_is_reassigned_or_in_doubt_by_the_agents_process() {
        let cfg = DispatchConfig::default();
        let attempts = HashMap::from([
            ("job-a".to_owned(), attempt("dev-1", 1)),
            ("job-other".to_owned(), attempt("dev-2", 1)),
        ]);
        assert!(judge_attempts("dev-1", &before_deadline(vec![]), &attempts, &cfg).is_empty());
        let same = judge_attempts(
            "dev-1",
            &after_deadline_same_process(vec![]),
            &attempts,
            &cfg,
        );
        assert_eq!(same, vec![("job-a".to_owned(), never_received("job-a"))]);
        let restarted = judge_attempts("dev-1", &after_restart(vec![]), &attempts, &cfg);
        assert!(
            matches!(restarted.as_slice(), [(j, JobOutcome::InDoubt { .. })] if j == "job-a"),
            "{restarted:?}"
        );
    }

    #[test]
    fn a_doubt_is_settled_by_a_final_receipt_of_its_attempt_only() {
        let cfg = DispatchConfig::default();
        let mut in_doubt = HashMap::from([
            ("job-a".to_owned(), doubt("dev-1", 3, None)),
            ("job-b".to_owned(), doubt("dev-1", 1, None)),
            ("job-c".to_owned(), doubt("dev-2", 1, None)),
        ]);
        let not_printed = JobOutcome::NotPrinted {
            job_id: "job-b".into(),
            reason: "media out".into(),
        };
        let hb = after_restart(vec![
            receipt("job-a", 2, ReceiptState::Done(printed("job-a"))),
            receipt("job-b", 1, ReceiptState::Done(not_printed.clone())),
            receipt("job-c", 1, ReceiptState::Done(printed("job-c"))),
        ]);
        assert_eq!(
            judge_doubts("dev-1", &hb, &mut in_doubt, &cfg),
            vec![("job-b".to_owned(), not_printed)]
        );
        let in_doubt_again = after_restart(vec![receipt(
            "job-a",
            3,
            ReceiptState::Done(JobOutcome::InDoubt {
                job_id: "job-a".into(),
                reason: "printer silent".into(),
            }),
        )]);
        assert!(judge_doubts("dev-1", &in_doubt_again, &mut in_doubt, &cfg).is_empty());
        let settled = after_restart(vec![receipt(
            "job-a",
            3,
            ReceiptState::Done(printed("job-a")),
        )]);
        assert_eq!(
            judge_doubts("dev-1", &settled, &mut in_doubt, &cfg),
            vec![("job-a".to_owned(), printed("job-a"))]
        );
    }

    #[test]
    fn a_silent_agents_doubt_is_settled_by_the_same_process_only() {
        let cfg = DispatchConfig::default();
        let mut in_doubt = HashMap::from([(
            "job-a".to_owned(),
            doubt("dev-1", 1, Some((SENT, DEADLINE))),
        )]);
        // Only a receipt settles a doubt whose cause was not kept (after a restart of ours).
        let mut unknown = HashMap::from([("job-b".to_owned(), doubt("dev-1", 1, None))]);
        let hb = after_deadline_same_process(vec![]);
        assert!(judge_doubts("dev-1", &hb, &mut unknown, &cfg).is_empty());
        assert_eq!(
            judge_doubts("dev-1", &hb, &mut in_doubt, &cfg),
            vec![("job-a".to_owned(), never_received("job-a"))]
        );
        // A new process cannot say: the doubt stays, and no later heartbeat settles it
        // without a receipt.
        assert!(judge_doubts("dev-1", &after_restart(vec![]), &mut in_doubt, &cfg).is_empty());
        assert_eq!(in_doubt["job-a"].unheard, None);
        assert!(judge_doubts("dev-1", &hb, &mut in_doubt, &cfg).is_empty());
    }
}
