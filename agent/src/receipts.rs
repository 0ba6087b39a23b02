//! What the agent did with each job it received, kept in memory for heartbeats.
//!
//! The coordinator settles a job whose answer was lost from these receipts, and it relies on
//! their completeness: a job the agent received is always in the list (until it ages out),
//! whatever became of it. Receipts hold job ids and outcomes, never label bytes.

use std::collections::{HashMap, VecDeque};

use sealprint_protocol::{JobOutcome, PrintReceipt};

/// How many receipts are kept and reported.
pub const MAX_RECEIPTS: usize = 2048;

/// Where a job stands on this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Received and being printed.
    InProgress {
        /// The delivery attempt.
        attempt: u32,
    },
    /// Finished with this outcome.
    Done {
        /// The delivery attempt.
        attempt: u32,
        /// What happened.
        outcome: JobOutcome,
    },
}

/// Recent jobs and their outcomes.
#[derive(Debug, Default)]
pub struct Receipts {
    states: HashMap<String, JobState>,
    order: VecDeque<PrintReceipt>,
}

impl Receipts {
    /// The state of `job_id`, if this agent has seen it.
    pub fn state(&self, job_id: &str) -> Option<&JobState> {
        self.states.get(job_id)
    }

    /// Marks a job as received and being printed.
    pub fn start(&mut self, job_id: &str, attempt: u32) {
        self.states
            .insert(job_id.to_owned(), JobState::InProgress { attempt });
    }

    /// Records a job's outcome.
    pub fn finish(&mut self, attempt: u32, outcome: JobOutcome, at_ms: u64) {
        let job_id = outcome.job_id().to_owned();
        self.order.push_back(PrintReceipt {
            job_id: job_id.clone(),
            outcome: outcome.clone(),
            at_ms,
        });
        self.states
            .insert(job_id, JobState::Done { attempt, outcome });
        while self.order.len() > MAX_RECEIPTS {
            if let Some(old) = self.order.pop_front() {
                if matches!(self.states.get(&old.job_id), Some(JobState::Done { .. })) {
                    self.states.remove(&old.job_id);
                }
            }
        }
    }

    /// The receipts to report, oldest first, then the jobs still being printed as in doubt:
    /// a heartbeat built after a job's deadline must never look as if the agent had not
    /// received a job it is still writing (the coordinator would send it elsewhere).
    pub fn report(&self, now_ms: u64) -> Vec<PrintReceipt> {
        let mut out: Vec<PrintReceipt> = self.order.iter().cloned().collect();
        for (job_id, state) in &self.states {
            if let JobState::InProgress { .. } = state {
                out.push(PrintReceipt {
                    job_id: job_id.clone(),
                    outcome: JobOutcome::InDoubt {
                        job_id: job_id.clone(),
                        reason: "still printing".into(),
                    },
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

    #[test]
    fn bounded_and_tracked() {
        let mut r = Receipts::default();
        r.start("job-a", 1);
        assert_eq!(r.state("job-a"), Some(&JobState::InProgress { attempt: 1 }));
        for i in 0..(MAX_RECEIPTS + 10) {
            let job_id = format!("job-{i}");
            r.finish(
                1,
                JobOutcome::Printed {
                    job_id,
                    printer: "p".into(),
                },
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
            .any(|p| p.job_id == "job-a" && matches!(p.outcome, JobOutcome::InDoubt { .. })));
        assert!(r.state("job-0").is_none());
        assert!(r.state(&format!("job-{}", MAX_RECEIPTS + 9)).is_some());
        assert_eq!(r.state("job-a"), Some(&JobState::InProgress { attempt: 1 }));
    }
}
