//! The composed libp2p behaviour and the swarm builder.
//!
//! Transport: TCP (nodelay, DNS names resolved) with Noise (libp2p's XX handshake, which authenticates the
//! PeerId) and yamux. Behaviours, in the order they admit a connection: libp2p's connection
//! limits (handshakes in progress, established connections in total and per peer) and memory
//! limit (no new connection while the process is over its budget), [`Admission`] (unverified
//! connections: deadline, caps per address and in total), request-response over
//! [`FrameCodec`], and mDNS when asked for (agents on a LAN; never the coordinator).
//! Verified connections stay open while idle: request-response does not keep a connection
//! alive by itself, and an uplink must stay up between heartbeats.
//!
//! yamux is left at yamux 0.13's defaults (at most 512 streams and 256 KiB of unread data per
//! stream): libp2p-yamux's `set_max_num_streams` would switch the connection to the legacy
//! yamux 0.12. Streams are bounded above it instead: a swarm negotiates at most
//! `max_negotiating_streams` inbound streams at once per connection, and request-response
//! serves `max_concurrent_streams` (one for an unverified peer, see [`crate::codec`]).

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, mdns, memory_connection_limits, noise, request_response, tcp, yamux, Swarm,
};

use crate::admission::{Admission, AdmissionLimits};
use crate::codec::{FrameCodec, PROTOCOL, UNVERIFIED_MAX_FRAME};
use crate::gate::Handoff;

/// The sealprint network behaviour.
///
/// The field order matters: a connection is admitted field by field, and `admission` hands
/// its gate to the codec `rr` builds next (see [`crate::gate`]).
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Handshakes in progress, established connections in total and per peer.
    pub limits: connection_limits::Behaviour,
    /// No new connection while the process uses more memory than its budget.
    pub memory: memory_connection_limits::Behaviour,
    /// Unverified connections: hello deadline, caps, pre-hello rules.
    pub admission: Admission,
    /// Every sealprint message.
    pub rr: request_response::Behaviour<FrameCodec>,
    /// LAN discovery of site peers (agents only).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// How to build a swarm.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// Discover site peers with mDNS.
    pub mdns: bool,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Largest frame.
    pub max_frame: usize,
    /// Concurrent request streams per verified connection (an unverified one gets one).
    pub max_concurrent_streams: usize,
    /// Inbound streams negotiated at once per connection.
    pub max_negotiating_streams: usize,
    /// Unverified connections.
    pub admission: AdmissionLimits,
    /// Noise handshakes in progress (inbound).
    pub max_pending_incoming: u32,
    /// Established inbound connections in total (keep the process's file limit above it).
    pub max_established_incoming: u32,
    /// Established connections per peer.
    pub max_established_per_peer: u32,
    /// Refuse new connections while the process's resident memory is above this share of
    /// the machine's memory.
    pub max_memory_fraction: f64,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            mdns: false,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            max_frame: sealprint_protocol::DEFAULT_MAX_FRAME,
            max_concurrent_streams: 256,
            max_negotiating_streams: 16,
            admission: AdmissionLimits::default(),
            max_pending_incoming: 256,
            max_established_incoming: 8192,
            max_established_per_peer: 3,
            max_memory_fraction: 0.8,
        }
    }
}

/// Builds a tokio swarm for `keypair`.
///
/// # Errors
/// When the transport or mDNS cannot be set up (for example no socket for mDNS).
pub fn build_swarm(
    keypair: Keypair,
    opts: &SwarmOptions,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let rr_config = request_response::Config::default()
        .with_request_timeout(opts.request_timeout)
        .with_max_concurrent_streams(opts.max_concurrent_streams);
    let handoff = Arc::new(Handoff::default());
    let codec = FrameCodec::gated(opts.max_frame, UNVERIFIED_MAX_FRAME, handoff.clone());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(opts.max_pending_incoming))
        .with_max_established_incoming(Some(opts.max_established_incoming))
        .with_max_established_per_peer(Some(opts.max_established_per_peer));
    let memory_fraction = opts.max_memory_fraction;
    let admission_limits = opts.admission;
    let want_mdns = opts.mdns;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        // Coordinators are usually reached by name (/dns4/print.example.com/tcp/7000).
        .with_dns()?
        .with_behaviour(|key| {
            let mdns = if want_mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                memory: memory_connection_limits::Behaviour::with_max_percentage(memory_fraction),
                admission: Admission::new(admission_limits, handoff),
                rr: request_response::Behaviour::with_codec(
                    codec,
                    [(PROTOCOL, request_response::ProtocolSupport::Full)],
                    rr_config,
                ),
                mdns: Toggle::from(mdns),
            })
        })?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(opts.idle_timeout)
                .with_max_negotiating_inbound_streams(opts.max_negotiating_streams)
        })
        .build();
    Ok(swarm)
}
