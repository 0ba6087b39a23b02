//! The mesh's connections: dialling the coordinator and site peers, watching the uplink,
//! mDNS discovery, and sending requests and answers over the swarm.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{mdns, Multiaddr, PeerId};
use sealprint_mesh::BehaviourEvent;
use sealprint_protocol::{Request, Response};
use tracing::{debug, info, warn};

use super::{EventLoop, Peer, Pending};

impl EventLoop {
    /// A cut uplink can leave its TCP connection open for minutes: when the coordinator has
    /// answered nothing for three heartbeats (at least 5 s), the uplink counts as lost, the
    /// connection is dropped and redialled, and heartbeats go through a site peer meanwhile.
    pub(super) fn check_uplink(&mut self) {
        let limit = (3 * self.opts.heartbeat_interval).max(Duration::from_secs(5));
        if self.uplink_ready && self.uplink_heard.elapsed() > limit {
            warn!(
                silent_ms = self.uplink_heard.elapsed().as_millis() as u64,
                "coordinator silent over the uplink; treating it as lost"
            );
            self.uplink_ready = false;
            let _ = self.swarm.disconnect_peer_id(self.coordinator);
            self.announce_uplink();
        }
    }

    pub(super) fn dial_missing(&mut self) {
        if self.opts.uplink && !self.swarm.is_connected(&self.coordinator) {
            let opts = DialOpts::peer_id(self.coordinator)
                .addresses(self.coordinator_addrs.clone())
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(error = %e, "coordinator dial not started");
            }
        }
        let missing: Vec<Multiaddr> = self
            .static_peers
            .iter()
            .filter(|(_, p)| p.is_none_or(|p| !self.swarm.is_connected(&p)))
            .map(|(a, _)| a.clone())
            .collect();
        for addr in missing {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "peer dial not started");
            }
        }
        let unconnected: Vec<(PeerId, Vec<Multiaddr>)> = self
            .discovered
            .iter()
            .filter(|(p, _)| !self.swarm.is_connected(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (peer, addrs) in unconnected {
            let opts = DialOpts::peer_id(peer).addresses(addrs).build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, error = %e, "discovered peer dial not started");
            }
        }
    }

    pub(super) fn request(&mut self, peer: PeerId, req: Request, pending: Pending) {
        let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
        self.pending.insert(id, pending);
    }

    pub(super) fn respond(&mut self, channel: ResponseChannel<Response>, resp: Response) {
        if self
            .swarm
            .behaviour_mut()
            .rr
            .send_response(channel, resp)
            .is_err()
        {
            debug!("response not sent: the connection closed");
        }
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    if let Some(slot) = self.static_peers.get_mut(&addr) {
                        *slot = Some(peer_id);
                    }
                }
                if peer_id != self.coordinator {
                    self.peers.entry(peer_id).or_insert(Peer::Unverified);
                }
                let hello = self.own_hello();
                self.request(peer_id, Request::Hello(hello), Pending::Hello(peer_id));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if peer_id == self.coordinator {
                    if self.uplink_ready {
                        warn!("uplink to the coordinator lost");
                    }
                    self.uplink_ready = false;
                    self.announce_uplink();
                } else {
                    self.peers.remove(&peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rr(ev)) => self.on_rr(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let me = *self.swarm.local_peer_id();
                for (peer, addr) in found {
                    let loopback = addr.iter().any(|p| match p {
                        Protocol::Ip4(ip) => ip.is_loopback(),
                        Protocol::Ip6(ip) => ip.is_loopback(),
                        _ => false,
                    });
                    if peer == me || loopback {
                        continue;
                    }
                    let addrs = self.discovered.entry(peer).or_default();
                    if !addrs.contains(&addr) {
                        addrs.push(addr.clone());
                    }
                    // Two peers that find each other at once must not dial each other at
                    // once (both handshakes can fail): the smaller PeerId dials now, the
                    // other on its next redial tick if still unconnected.
                    if self.swarm.is_connected(&peer) || me.to_bytes() > peer.to_bytes() {
                        continue;
                    }
                    debug!(%peer, %addr, "mdns discovered a peer");
                    let opts = DialOpts::peer_id(peer).addresses(vec![addr]).build();
                    let _ = self.swarm.dial(opts);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.discovered.get_mut(&peer) {
                        addrs.retain(|a| a != &addr);
                        if addrs.is_empty() {
                            self.discovered.remove(&peer);
                        }
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            _ => {}
        }
    }

    pub(super) fn on_rr(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                Message::Response {
                    request_id,
                    response,
                } => self.on_response(request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.on_failure(peer, request_id, error),
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
