//! Routing requests and answers: what a peer or the coordinator asks (hello, job, forward,
//! relay), and what becomes of the answers to this agent's own requests.

use libp2p::request_response::{OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use sealprint_protocol::{ErrorCode, RelayReply, Request, Response};
use std::time::Instant;
use tracing::{debug, info, warn};

use super::{refuse, EventLoop, Peer, Pending};

impl EventLoop {
    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        req: Request,
        channel: ResponseChannel<Response>,
    ) {
        let from_coordinator = peer == self.coordinator;
        if let Request::Hello(hello) = &req {
            if from_coordinator || self.accept_hello(peer, hello) {
                let own = self.own_hello();
                self.respond(channel, Response::Hello(own));
            } else {
                self.respond(
                    channel,
                    refuse(ErrorCode::Unauthenticated, "certificate refused"),
                );
            }
            return;
        }
        if !from_coordinator {
            match self.verified_peer(&peer) {
                Some((device_id, _)) if !self.revocations.contains(device_id) => {}
                _ => {
                    warn!(%peer, "message from an unverified peer refused; disconnecting");
                    self.respond(
                        channel,
                        refuse(ErrorCode::Unauthenticated, "send hello first"),
                    );
                    self.swarm.behaviour_mut().admission.refuse(peer);
                    return;
                }
            }
        }
        match req {
            Request::Job(sealed) => self.accept_job(sealed, channel),
            Request::Forward(fwd) if from_coordinator => {
                let target = self.peers.iter().find_map(|(p, s)| match s {
                    Peer::Verified { device_id, .. } if *device_id == fwd.device_id => Some(*p),
                    _ => None,
                });
                match target {
                    Some(p) if fwd.job.header.device_id == fwd.device_id => {
                        debug!(job = %fwd.job.header.job_id, device = %fwd.device_id, "forwarding job");
                        self.request(p, Request::Job(fwd.job), Pending::Forward(channel));
                    }
                    _ => self.respond(
                        channel,
                        refuse(
                            ErrorCode::Unreachable,
                            "destination is not a connected site peer",
                        ),
                    ),
                }
            }
            Request::Relay(relayed) if !from_coordinator => {
                if self.uplink_ready {
                    let coordinator = self.coordinator;
                    self.request(
                        coordinator,
                        Request::Relay(relayed),
                        Pending::Relay(channel),
                    );
                } else {
                    self.respond(channel, refuse(ErrorCode::Unreachable, "no uplink here"));
                }
            }
            _ => self.respond(channel, refuse(ErrorCode::BadRequest, "unexpected request")),
        }
    }

    pub(super) fn on_response(&mut self, id: OutboundRequestId, resp: Response) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match (pending, resp) {
            (Pending::Hello(peer), Response::Hello(hello)) => {
                if peer == self.coordinator {
                    if !self.uplink_ready {
                        info!("uplink to the coordinator is up");
                    }
                    self.uplink_ready = true;
                    self.uplink_heard = Instant::now();
                    self.send_heartbeat();
                    self.announce_uplink();
                } else {
                    self.accept_hello(peer, &hello);
                }
            }
            (Pending::Hello(peer), Response::Error { code, message }) => {
                warn!(%peer, ?code, %message, "hello refused");
            }
            (Pending::Heartbeat, Response::HeartbeatReply(reply)) => {
                self.uplink_heard = Instant::now();
                if self.apply_reply(reply) {
                    self.after_ack(true);
                }
            }
            (Pending::RelayedHeartbeat, Response::Relayed(RelayReply::HeartbeatReply(reply))) => {
                if self.apply_reply(reply) {
                    self.after_ack(false);
                }
            }
            (
                p @ (Pending::UpdateOffer | Pending::UpdateChunk(_) | Pending::UpdateReport(_)),
                Response::Update(resp),
            ) => self.on_update_response(p, resp),
            (
                p @ (Pending::UpdateOffer | Pending::UpdateChunk(_) | Pending::UpdateReport(_)),
                other,
            ) => {
                debug!(?other, "update request refused");
                self.on_update_failed(p);
            }
            (Pending::Forward(ch), resp) | (Pending::Relay(ch), resp) => self.respond(ch, resp),
            (_, Response::Error { code, message }) => {
                warn!(?code, %message, "request refused");
            }
            (_, other) => debug!(?other, "unexpected response"),
        }
    }

    pub(super) fn on_failure(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match pending {
            Pending::Forward(ch) => {
                let resp = match error {
                    OutboundFailure::DialFailure | OutboundFailure::UnsupportedProtocols => refuse(
                        ErrorCode::Unreachable,
                        "job not delivered to the destination",
                    ),
                    _ => refuse(
                        ErrorCode::Internal,
                        "relay lost the answer; delivery unknown",
                    ),
                };
                self.respond(ch, resp);
            }
            Pending::Relay(ch) => {
                self.respond(
                    ch,
                    refuse(ErrorCode::Unreachable, "coordinator did not answer"),
                );
            }
            p @ (Pending::UpdateOffer | Pending::UpdateChunk(_) | Pending::UpdateReport(_)) => {
                debug!(%peer, %error, "update request failed");
                self.on_update_failed(p);
            }
            _ => debug!(%peer, %error, "request failed"),
        }
    }
}
