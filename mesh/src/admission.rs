//! Admission: what a connection may do before the peer behind it is verified.
//!
//! A connection whose peer has not shown a valid hello (or is not pinned, like an agent's
//! coordinator) is *unverified*. Unverified inbound connections are capped in total and per
//! remote IP address (handshakes in progress count too); each one is closed when no hello
//! verified it within the deadline, or at once when it breaks a pre-hello rule the codec
//! enforces (one stream at a time, frames no larger than a hello, see [`crate::codec`]).
//!
//! The event loops decide who is verified and tell this behaviour ([`Admission::verify`],
//! [`Admission::trust`], [`Admission::refuse`]); it never reads a message itself. Limits that
//! do not depend on verification (handshakes in progress, established connections in total
//! and per peer, process memory) are libp2p's own `connection_limits` and
//! `memory_connection_limits` behaviours, composed beside it in [`crate::Behaviour`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure,
    FromSwarm, ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use thiserror::Error;
use tokio::time::{Instant, Sleep};

use crate::gate::{Gate, Handoff};

/// Limits on unverified connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// How long a connection may stay unverified.
    pub hello_deadline: Duration,
    /// Unverified inbound connections (handshakes in progress included), in total.
    pub max_unverified: usize,
    /// Unverified inbound connections (handshakes in progress included) per remote IP.
    pub max_unverified_per_ip: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            hello_deadline: Duration::from_secs(10),
            max_unverified: 128,
            max_unverified_per_ip: 8,
        }
    }
}

/// Why an inbound connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AdmissionDenied {
    /// Too many unverified connections in total.
    #[error("too many unverified connections ({0})")]
    Total(usize),
    /// Too many unverified connections from this address.
    #[error("too many unverified connections from one address ({0})")]
    PerAddress(usize),
}

struct Conn {
    peer: PeerId,
    /// The remote IP of an inbound connection (outbound ones are not capped).
    inbound_ip: Option<IpAddr>,
    opened: Instant,
    /// When a refused connection is closed (its answer has had time to leave).
    close_at: Option<Instant>,
    gate: Arc<Gate>,
}

impl Conn {
    /// When this connection is closed unless something changes.
    fn deadline(&self, hello_deadline: Duration) -> Option<Instant> {
        let unverified = (!self.gate.is_verified()).then(|| self.opened + hello_deadline);
        match (unverified, self.close_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// How long a refused peer's connection stays open so that the refusal reaches it.
const REFUSAL_GRACE: Duration = Duration::from_millis(500);

/// The admission behaviour. Its field must come right before `rr` in [`crate::Behaviour`].
pub struct Admission {
    limits: AdmissionLimits,
    handoff: Arc<Handoff>,
    /// Inbound handshakes in progress, by remote IP.
    handshaking: HashMap<ConnectionId, IpAddr>,
    conns: HashMap<ConnectionId, Conn>,
    /// Peers verified by a hello; forgotten when their last connection closes.
    verified: HashSet<PeerId>,
    /// Pinned peers, verified on every connection.
    trusted: HashSet<PeerId>,
    /// Connections to close on the next poll.
    closing: Vec<(PeerId, ConnectionId)>,
    /// Connections closed since the swarm was built, by reason: (deadline, violation, refusal).
    closed: (u64, u64, u64),
    timer: Option<Pin<Box<Sleep>>>,
}

impl Admission {
    pub(crate) fn new(limits: AdmissionLimits, handoff: Arc<Handoff>) -> Admission {
        Admission {
            limits,
            handoff,
            handshaking: HashMap::new(),
            conns: HashMap::new(),
            verified: HashSet::new(),
            trusted: HashSet::new(),
            closing: Vec::new(),
            closed: (0, 0, 0),
            timer: None,
        }
    }

    /// `peer` showed a valid hello: its connections (and new ones while one stays open) may
    /// send any message, with frames up to the full limit.
    pub fn verify(&mut self, peer: PeerId) {
        self.verified.insert(peer);
        for c in self.conns.values().filter(|c| c.peer == peer) {
            c.gate.set_verified(true);
        }
    }

    /// `peer` is pinned (the coordinator an agent enrolled with): always verified.
    pub fn trust(&mut self, peer: PeerId) {
        self.trusted.insert(peer);
        self.verify(peer);
    }

    /// `peer` is refused (a bad hello, a failed enrollment, a revoked certificate): no new
    /// stream of it is read, and its connections are closed once the answer in hand has had
    /// a moment to leave.
    pub fn refuse(&mut self, peer: PeerId) {
        self.verified.remove(&peer);
        let at = Instant::now() + REFUSAL_GRACE;
        let trusted = self.trusted.contains(&peer);
        for c in self.conns.values_mut().filter(|c| c.peer == peer) {
            c.gate.set_verified(trusted);
            c.gate.close();
            c.close_at.get_or_insert(at);
        }
        self.arm_timer();
        self.handoff.waker.wake();
    }

    /// The remote IP address of `peer`'s inbound connection, if it has one.
    pub fn remote_ip(&self, peer: &PeerId) -> Option<IpAddr> {
        self.conns
            .values()
            .find(|c| c.peer == *peer && c.inbound_ip.is_some())
            .and_then(|c| c.inbound_ip)
    }

    /// Connections closed so far: (no hello before the deadline, broke a pre-hello rule,
    /// refused).
    pub fn closed_counts(&self) -> (u64, u64, u64) {
        self.closed
    }

    /// Whether `peer` is verified (or pinned).
    pub fn is_verified(&self, peer: &PeerId) -> bool {
        self.verified.contains(peer) || self.trusted.contains(peer)
    }

    /// Unverified connections open now (inbound and outbound).
    pub fn unverified(&self) -> usize {
        self.conns
            .values()
            .filter(|c| !c.gate.is_verified())
            .count()
    }

    fn unverified_inbound(&self, ip: Option<IpAddr>) -> (usize, usize) {
        let mut total = self.handshaking.len();
        let mut same = ip.map_or(0, |ip| {
            self.handshaking.values().filter(|i| **i == ip).count()
        });
        for c in self.conns.values() {
            if let (Some(cip), false) = (c.inbound_ip, c.gate.is_verified()) {
                total += 1;
                if Some(cip) == ip {
                    same += 1;
                }
            }
        }
        (total, same)
    }

    fn check(&self, ip: Option<IpAddr>) -> Result<(), AdmissionDenied> {
        let (total, same) = self.unverified_inbound(ip);
        if total >= self.limits.max_unverified {
            return Err(AdmissionDenied::Total(self.limits.max_unverified));
        }
        if same >= self.limits.max_unverified_per_ip {
            return Err(AdmissionDenied::PerAddress(
                self.limits.max_unverified_per_ip,
            ));
        }
        Ok(())
    }

    fn admit(&mut self, id: ConnectionId, peer: PeerId, inbound_ip: Option<IpAddr>) {
        let verified = self.is_verified(&peer);
        let gate = Arc::new(Gate::new(verified));
        self.handoff.offer(gate.clone());
        self.conns.insert(
            id,
            Conn {
                peer,
                inbound_ip,
                opened: Instant::now(),
                close_at: None,
                gate,
            },
        );
        if !verified {
            self.arm_timer();
        }
    }

    fn arm_timer(&mut self) {
        let hello = self.limits.hello_deadline;
        let earliest = self.conns.values().filter_map(|c| c.deadline(hello)).min();
        self.timer = earliest.map(|at| Box::pin(tokio::time::sleep_until(at)));
    }

    /// Connections past their deadline, or whose peer broke a pre-hello rule.
    fn collect_overdue(&mut self) {
        let now = Instant::now();
        let hello = self.limits.hello_deadline;
        let mut done = Vec::new();
        for (id, c) in &self.conns {
            let why = if c.gate.violated() {
                self.closed.1 += 1;
                "broke a pre-hello limit"
            } else if c.deadline(hello).is_some_and(|d| now >= d) {
                if c.close_at.is_some() {
                    self.closed.2 += 1;
                    "refused"
                } else {
                    self.closed.0 += 1;
                    "no hello before the deadline"
                }
            } else {
                continue;
            };
            tracing::debug!(peer = %c.peer, why, "closing connection");
            c.gate.close();
            done.push(*id);
            self.closing.push((c.peer, *id));
        }
        for id in done {
            self.conns.remove(&id);
        }
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for Admission {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let ip = ip_of(remote);
        self.check(ip).map_err(ConnectionDenied::new)?;
        if let Some(ip) = ip {
            self.handshaking.insert(id, ip);
        }
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let ip = ip_of(remote);
        // Counted again below, without its handshake entry.
        self.handshaking.remove(&id);
        if !self.is_verified(&peer) {
            self.check(ip).map_err(ConnectionDenied::new)?;
        }
        self.admit(id, peer, ip);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(id, peer, None);
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                self.conns.remove(&connection_id);
                if remaining_established == 0 {
                    self.verified.remove(&peer_id);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                // A handshake failed, or a later behaviour denied the connection.
                self.handshaking.remove(&connection_id);
                self.conns.remove(&connection_id);
                let _ = self.handoff.take();
            }
            FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.conns.remove(&connection_id);
                let _ = self.handoff.take();
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.handoff.waker.register(cx.waker());
        if let Some(timer) = &mut self.timer {
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
            }
        }
        self.collect_overdue();
        if let Some((peer_id, id)) = self.closing.pop() {
            // Come back for the rest.
            cx.waker().wake_by_ref();
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(id),
            });
        }
        if self.timer.is_none() {
            self.arm_timer();
            if let Some(timer) = &mut self.timer {
                // Registers the waker for the next deadline.
                let _ = timer.as_mut().poll(cx);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/4000").parse().expect("multiaddr")
    }

    #[test]
    fn caps_unverified_per_address_and_in_total() {
        let limits = AdmissionLimits {
            hello_deadline: Duration::from_secs(10),
            max_unverified: 5,
            max_unverified_per_ip: 2,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let mut a = Admission::new(limits, Arc::new(Handoff::default()));
        let local = addr("127.0.0.1");
        let one = addr("10.0.0.1");
        assert!(a
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(1), &local, &one)
            .is_ok());
        assert!(a
            .handle_established_inbound_connection(
                ConnectionId::new_unchecked(1),
                PeerId::random(),
                &local,
                &one
            )
            .is_ok());
        assert!(a
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(2), &local, &one)
            .is_ok());
        // Two from 10.0.0.1 (one established, one handshaking): the third is refused.
        assert!(a
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(3), &local, &one)
            .is_err());
        for (i, ip) in ["10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().enumerate() {
            let res = a.handle_pending_inbound_connection(
                ConnectionId::new_unchecked(10 + i),
                &local,
                &addr(ip),
            );
            assert_eq!(res.is_ok(), i < 3, "{ip}");
        }
        assert!(a
            .handle_pending_inbound_connection(
                ConnectionId::new_unchecked(20),
                &local,
                &addr("10.0.0.9")
            )
            .is_err());

        // A verified peer's connection no longer counts.
        let peer = a.conns[&ConnectionId::new_unchecked(1)].peer;
        a.verify(peer);
        assert!(a
            .handle_pending_inbound_connection(
                ConnectionId::new_unchecked(21),
                &local,
                &addr("10.0.0.9")
            )
            .is_ok());
    }
}
