//! Job handling: a sealed job is opened in memory, checked against the receipts (never printed
//! twice), handed to one printer, and its outcome signed, kept as a receipt and answered.

use libp2p::request_response::ResponseChannel;
use sealprint_protocol::{
    open, ErrorCode, JobOutcome, OutcomeStatement, Response, SealedJob, SignedOutcome,
};
use tracing::{debug, info, info_span, warn, Instrument};

use super::{refuse, EventLoop, Finished};
use crate::now_ms;
use crate::printer::PrintError;
use crate::receipts::JobState;

impl EventLoop {
    pub(super) fn accept_job(&mut self, sealed: SealedJob, channel: ResponseChannel<Response>) {
        let header = sealed.header.clone();
        let _span = info_span!("job", job = %header.job_id, attempt = header.attempt).entered();
        let now = now_ms();
        // Only an envelope that opens says anything about a job: its header (job, attempt,
        // device, printer, deadline) is then the coordinator's. Anything else is refused and
        // leaves no receipt, so a peer cannot settle, or crowd out, another job's receipt.
        let label = match open(
            &sealed,
            &self.id.keys.x25519_secret,
            &self.id.coordinator_x25519,
            self.id.device_id(),
            now,
        ) {
            Ok(label) => label,
            Err(e) => {
                warn!(error = %e, "sealed job refused");
                return self.respond(
                    channel,
                    refuse(ErrorCode::BadRequest, &format!("envelope refused: {e}")),
                );
            }
        };
        let envelope = match sealed.digest() {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "sealed job refused");
                return self.respond(channel, refuse(ErrorCode::BadRequest, "envelope refused"));
            }
        };
        drop(sealed);
        match self.receipts.state(&header.job_id) {
            Some(JobState::InProgress { .. }) => {
                return self.respond(
                    channel,
                    refuse(ErrorCode::BadRequest, "job already in progress"),
                );
            }
            Some(JobState::Done { attempt, signed }) => {
                let retry_allowed =
                    matches!(signed.statement.outcome, JobOutcome::NotPrinted { .. })
                        && header.attempt > *attempt;
                if !retry_allowed {
                    // A repeat (replay or lost answer): answer what happened, never print again.
                    let signed = signed.clone();
                    return self.respond(channel, Response::Outcome(signed));
                }
            }
            None => {}
        }
        if self.shutting_down || self.updating() {
            let outcome = not_printed(&header.job_id, "agent is shutting down");
            return self.settle(channel, header.attempt, envelope, outcome);
        }
        let Some(printer) = self.station.get(&header.printer) else {
            let outcome = not_printed(&header.job_id, "no printer of that name on this station");
            return self.settle(channel, header.attempt, envelope, outcome);
        };
        self.receipts.start(&header.job_id, header.attempt);
        self.in_flight += 1;
        let tx = self.finished_tx.clone();
        let station = self.station.clone();
        let span = info_span!("print", job = %header.job_id, printer = %header.printer);
        tokio::spawn(
            async move {
                let outcome = {
                    let mut printer = printer.lock().await;
                    let started = std::time::Instant::now();
                    let result = printer
                        .print_before(label.format, &label.data, header.deadline_ms)
                        .await;
                    crate::metrics::get().written(
                        started.elapsed(),
                        result.as_ref().err().map(PrintError::kind),
                    );
                    station.update(printer.last_report().clone());
                    match result {
                        Ok(()) => {
                            info!(bytes = label.data.len(), "printed");
                            JobOutcome::Printed {
                                job_id: header.job_id.clone(),
                                printer: header.printer.clone(),
                            }
                        }
                        Err(PrintError::NotPrinted(reason)) => {
                            warn!(%reason, "not printed");
                            not_printed(&header.job_id, &reason)
                        }
                        Err(PrintError::InDoubt(reason)) => {
                            warn!(%reason, "print in doubt");
                            JobOutcome::InDoubt {
                                job_id: header.job_id.clone(),
                                reason,
                            }
                        }
                    }
                };
                // The label's bytes are wiped here (Zeroizing), before the answer goes out.
                drop(label);
                let done = Finished {
                    channel,
                    attempt: header.attempt,
                    envelope,
                    outcome,
                };
                if tx.send(done).await.is_err() {
                    debug!("event loop gone before the outcome was recorded");
                }
            }
            .instrument(span),
        );
    }

    pub(super) fn on_finished(&mut self, done: Finished) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.settle(done.channel, done.attempt, done.envelope, done.outcome);
    }

    /// Signs the outcome of an attempt whose envelope opened, keeps it as the receipt, and
    /// answers it.
    pub(super) fn settle(
        &mut self,
        channel: ResponseChannel<Response>,
        attempt: u32,
        envelope: [u8; 32],
        outcome: JobOutcome,
    ) {
        let statement = OutcomeStatement {
            attempt,
            device_id: self.id.device_id().to_owned(),
            outcome,
            envelope,
        };
        match SignedOutcome::sign(statement, &self.id.keys.signing_key()) {
            Ok(signed) => {
                self.receipts.finish(signed.clone(), now_ms());
                self.respond(channel, Response::Outcome(signed));
            }
            Err(e) => {
                warn!(error = %e, "outcome not signed");
                self.respond(channel, refuse(ErrorCode::Internal, "outcome not signed"));
            }
        }
    }
}

pub(super) fn not_printed(job_id: &str, reason: &str) -> JobOutcome {
    JobOutcome::NotPrinted {
        job_id: job_id.to_owned(),
        reason: reason.to_owned(),
    }
}
