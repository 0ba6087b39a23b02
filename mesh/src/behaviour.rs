//! The composed libp2p behaviour and the swarm builder.
//!
//! Transport: TCP (nodelay, DNS names resolved) with Noise (libp2p's XX handshake, which authenticates the
//! PeerId) and yamux. Behaviours: request-response over [`FrameCodec`], and mDNS when asked
//! for (agents on a LAN; never the coordinator). Connections stay open while idle: request-
//! response does not keep a connection alive by itself, and an uplink must stay up between
//! heartbeats.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{mdns, noise, request_response, tcp, yamux, Swarm};

use crate::codec::{FrameCodec, PROTOCOL};

/// The sealprint network behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
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
    /// Concurrent streams per connection.
    pub max_concurrent_streams: usize,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            mdns: false,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            max_frame: sealprint_protocol::DEFAULT_MAX_FRAME,
            max_concurrent_streams: 256,
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
    let codec = FrameCodec {
        max_frame: opts.max_frame,
    };
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
                rr: request_response::Behaviour::with_codec(
                    codec,
                    [(PROTOCOL, request_response::ProtocolSupport::Full)],
                    rr_config,
                ),
                mdns: Toggle::from(mdns),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(opts.idle_timeout))
        .build();
    Ok(swarm)
}
