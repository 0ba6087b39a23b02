//! The mesh event loop itself: owns the swarm, takes in revocations, API commands, swarm
//! events and the tick, and hands each to its handler (admission, heartbeats, delivery).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::PeerId;
use sealprint_mesh::BehaviourEvent;
use sealprint_protocol::{Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{now_ms, Attempt, Command, Doubt, EventLoop, Waiting};
use crate::services::events::Event;
use crate::store::{AuditEntry, JobStatus};

impl EventLoop {
    /// Picks up where a previous process stopped: queued jobs go back to the queue; jobs that
    /// were out for delivery, or in doubt, wait for their agent's receipts.
    pub(super) fn reload(&mut self) -> anyhow::Result<()> {
        let jobs = self.store.unfinished_jobs()?;
        let (mut queued, mut out, mut doubt) = (0, 0, 0);
        for job in jobs {
            match job.status {
                JobStatus::Queued => {
                    queued += 1;
                    self.queue.push_back(Waiting::of(&job));
                }
                JobStatus::Dispatched => {
                    out += 1;
                    self.attempts.insert(
                        job.id.clone(),
                        Attempt {
                            tenant_id: job.tenant_id,
                            printer_id: job.printer.unwrap_or_default(),
                            device_id: job.agent.unwrap_or_default(),
                            expect: None,
                            direct: false,
                            attempt: job.attempts,
                            // `updated_at_ms` is set when the attempt is sent.
                            dispatched_at_ms: job.updated_at_ms,
                            deadline_ms: job.attempt_deadline_ms.unwrap_or(0),
                            request: None,
                            counted: false,
                        },
                    );
                }
                JobStatus::InDoubt => {
                    doubt += 1;
                    self.in_doubt.insert(
                        job.id,
                        Doubt {
                            tenant_id: job.tenant_id,
                            device_id: job.agent.unwrap_or_default(),
                            attempt: job.attempts,
                            // Why it is in doubt was not kept: only a receipt settles it.
                            unheard: None,
                        },
                    );
                }
                _ => {}
            }
        }
        info!(
            queued,
            out_for_delivery = out,
            in_doubt = doubt,
            "unfinished jobs reloaded"
        );
        Ok(())
    }

    /// Puts back in the queue every queued job of the store that is not in it (after a
    /// submission overflowed the command channel).
    pub(super) fn rescan(&mut self) {
        let known: HashSet<String> = self.queue.iter().map(|w| w.job_id.clone()).collect();
        match self.store.unfinished_jobs() {
            Ok(jobs) => {
                for job in jobs {
                    if job.status == JobStatus::Queued && !known.contains(&job.id) {
                        self.queue.push_back(Waiting::of(&job));
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "queued jobs not rescanned; retrying");
                self.backlog.overflowed.store(true, Ordering::Relaxed);
            }
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let signal = self.signal.clone();
        loop {
            tokio::select! {
                // First: a revocation is taken in before any other event is handled.
                biased;
                _ = signal.notified() => {
                    for device_id in self.signal.take() {
                        self.on_revoked(device_id);
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(cmd) = self.commands.recv() => {
                    self.on_command(cmd);
                    // Take every command already waiting before dispatching once.
                    while let Ok(cmd) = self.commands.try_recv() {
                        self.on_command(cmd);
                    }
                    self.dispatch();
                }
                _ = tick.tick() => {
                    if self.backlog.overflowed.swap(false, Ordering::Relaxed) {
                        self.rescan();
                    }
                    self.on_tick();
                }
                _ = shutdown.cancelled() => break,
            }
        }
        info!("mesh endpoint stopped");
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submitted { tenant_id, job_id } => match self.store.job(&tenant_id, &job_id) {
                Ok(Some(job)) if job.status == JobStatus::Queued => {
                    self.queue.push_back(Waiting::of(&job));
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(job = %job_id, error = %e, "submitted job not readable; rescanning later");
                    self.backlog.overflowed.store(true, Ordering::Relaxed);
                }
            },
            Command::Settle { request, reply } => reply(self.settle(&request)),
        }
    }

    /// A device was revoked: forget it, cut it off, and sign a new list for its tenant at the
    /// next heartbeat.
    pub(super) fn on_revoked(&mut self, device_id: String) {
        self.revocations.clear();
        self.fleet.remove(&device_id);
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, v)| v.device_id == device_id)
            .map(|(p, _)| *p)
            .collect();
        for p in peers {
            warn!(device = %device_id, peer = %p, "revoked device disconnected");
            self.peers.remove(&p);
            self.swarm.behaviour_mut().admission.refuse(p);
            let _ = self.swarm.disconnect_peer_id(p);
        }
        self.revoked_devices.insert(device_id);
    }

    /// Whether `device_id` is revoked as far as this loop knows (taken in, or signalled and
    /// not taken in yet). The store is the authority; this is what the send path checks.
    pub(super) fn is_revoked(&self, device_id: &str) -> bool {
        self.revoked_devices.contains(device_id) || self.signal.contains(device_id)
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(v) = self.peers.remove(&peer_id) {
                    info!(device = %v.device_id, "agent disconnected");
                    self.fleet.disconnected(&v.device_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rr(ev)) => self.on_rr(ev),
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "mesh listening"),
            _ => {}
        }
    }

    pub(super) fn on_rr(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => {
                    let resp = self.on_request(peer, request);
                    if self
                        .swarm
                        .behaviour_mut()
                        .rr
                        .send_response(channel, resp)
                        .is_err()
                    {
                        debug!(%peer, "response not sent: connection closed");
                    }
                    self.dispatch();
                }
                Message::Response {
                    request_id,
                    response,
                } => {
                    self.on_answer(request_id, Ok(response));
                    self.dispatch();
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                self.on_answer(request_id, Err(error));
                self.dispatch();
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Hands a job or fleet event to the event writer (never waits on the store).
    pub(super) fn emit(&self, event: Event) {
        self.events.send(event);
    }

    /// Queues an audit entry for the writer task (the loop never waits on the store; the
    /// API and the other services write theirs with `Store::audit`).
    pub(super) fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
    ) {
        let entry = AuditEntry::new(tenant_id, actor, action, object, outcome, now_ms());
        self.audit_writer.send(entry);
    }
}
