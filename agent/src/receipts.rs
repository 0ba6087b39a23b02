//! What the agent did with each job it received, kept in memory for heartbeats.
//!
//! The coordinator settles a job whose answer was lost from these receipts, and it relies on
//! their completeness: a job the agent received is always in the list (until it ages out),
//! whatever became of it. Receipts hold job ids and outcomes, never label bytes.
//!
//! Only a job whose envelope opened gets a receipt, keyed by the job id and attempt the
//! coordinator sealed (authenticated: the header is the envelope's Noise prologue). A peer
//! that sends envelopes that do not open gets a refusal and leaves no trace here, so it can
//! neither forge a receipt for another device's job nor push real receipts out of the
//! bounded list: only the coordinator's own jobs fill it.

use std::collections::{HashMap, VecDeque};

use sealprint_protocol::{PrintReceipt, ReceiptState, SignedOutcome};

/// How many finished attempts are remembered (oldest forgotten first). At a label a second
/// this covers over half an hour, far longer than any delivery window.
pub const MAX_RECEIPTS: usize = 2048;

/// Where a job stands on this agent: its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Received; the printer has it or is about to.
    InProgress {
        /// The attempt being printed.
        attempt: u32,
    },
    /// Finished.
    Done {
        /// The attempt that finished.
        attempt: u32,
        /// What happened, as this device signed it (the answer to a repeat).
        signed: SignedOutcome,
    },
}

/// The receipts of this agent's jobs, bounded.
#[derive(Debug, Default)]
pub struct Receipts {
    states: HashMap<String, JobState>,
    order: VecDeque<PrintReceipt>,
}

impl Receipts {
    /// The latest state of `job_id`, if it is remembered.
    pub fn state(&self, job_id: &str) -> Option<&JobState> {
        self.states.get(job_id)
    }

    /// Records that `attempt` of `job_id` is being printed.
    pub fn start(&mut self, job_id: &str, attempt: u32) {
        self.states
            .insert(job_id.to_owned(), JobState::InProgress { attempt });
    }

    /// Records how an attempt ended, as signed.
    pub fn finish(&mut self, signed: SignedOutcome, at_ms: u64) {
        let attempt = signed.statement.attempt;
        let job_id = signed.job_id().to_owned();
        self.order.push_back(PrintReceipt {
            job_id: job_id.clone(),
            attempt,
            state: ReceiptState::Done(signed.statement.outcome.clone()),
            at_ms,
        });
        self.states
            .insert(job_id, JobState::Done { attempt, signed });
        while self.order.len() > MAX_RECEIPTS {
            if let Some(old) = self.order.pop_front() {
                let latest = matches!(
                    self.states.get(&old.job_id),
                    Some(JobState::Done { attempt, .. }) if *attempt == old.attempt
                );
                if latest {
                    self.states.remove(&old.job_id);
                }
            }
        }
    }

    /// Every remembered receipt, oldest first, then the attempts still being printed (so a
    /// coordinator that lost the answer knows the agent holds them).
    pub fn report(&self, now_ms: u64) -> Vec<PrintReceipt> {
        let mut out: Vec<PrintReceipt> = self.order.iter().cloned().collect();
        for (job_id, state) in &self.states {
            if let JobState::InProgress { attempt } = state {
                out.push(PrintReceipt {
                    job_id: job_id.clone(),
                    attempt: *attempt,
                    state: ReceiptState::Printing,
                    at_ms: now_ms,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use sealprint_protocol::{JobOutcome, OutcomeStatement};

    fn signed(attempt: u32, outcome: JobOutcome) -> SignedOutcome {
        let statement = OutcomeStatement {
            attempt,
            device_id: "dev-1".into(),
            outcome,
            envelope: [0u8; 32],
        };
        SignedOutcome::sign(statement, &SigningKey::from_bytes(&[4u8; 32])).expect("signs")
    }

    #[test]
    fn each_attempt_has_its_own_receipt() {
        let mut r = Receipts::default();
        r.start("job-a", 1);
        r.finish(
            signed(
                1,
                JobOutcome::NotPrinted {
                    job_id: "job-a".into(),
                    reason: "paper out".into(),
                },
            ),
            10,
        );
        r.start("job-a", 2);
        let report = r.report(20);
        assert_eq!(report.len(), 2);
        assert_eq!((report[0].attempt, report[1].attempt), (1, 2));
        assert!(matches!(
            report[0].state,
            ReceiptState::Done(JobOutcome::NotPrinted { .. })
        ));
        assert_eq!(report[1].state, ReceiptState::Printing);
    }

    #[test]
    fn bounded_and_tracked() {
        let mut r = Receipts::default();
        r.start("job-a", 1);
        assert_eq!(r.state("job-a"), Some(&JobState::InProgress { attempt: 1 }));
        for i in 0..(MAX_RECEIPTS + 10) {
            let job_id = format!("job-{i}");
            r.finish(
                signed(
                    1,
                    JobOutcome::Printed {
                        job_id,
                        printer: "p".into(),
                    },
                ),
                i as u64,
            );
        }
        assert_eq!(
            r.report(0).len(),
            MAX_RECEIPTS + 1,
            "job-a is reported as still printing"
        );
        assert!(r
            .report(0)
            .iter()
            .any(|p| p.job_id == "job-a" && p.attempt == 1 && p.state == ReceiptState::Printing));
        assert!(r.state("job-0").is_none());
        assert!(r.state(&format!("job-{}", MAX_RECEIPTS + 9)).is_some());
        assert_eq!(r.state("job-a"), Some(&JobState::InProgress { attempt: 1 }));
    }
}
