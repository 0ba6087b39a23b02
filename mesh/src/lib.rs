//! # sealprint-mesh
//!
//! The libp2p plumbing that the coordinator and the agent share, and nothing else: the
//! request-response codec that speaks [`sealprint_protocol`]'s framing, the composed
//! [`Behaviour`] (connection and memory limits, admission of unverified peers,
//! request-response, optional mDNS), a swarm builder with TCP, Noise and yamux, and the
//! mapping between a device's ed25519 key and its PeerId.
//!
//! What it does not do: decide whom to trust or what a message means. Each binary owns its
//! `Swarm` in its own event loop (coordinator `mesh`, agent `mesh`) and applies its own rules,
//! always verifying a peer's certificate before acting on any other message from it, and
//! telling [`Admission`] when it did.

mod admission;
#[allow(missing_docs)] // the NetworkBehaviour derive generates an undocumented event enum
mod behaviour;
mod codec;
mod gate;
mod peer;

pub use admission::{Admission, AdmissionDenied, AdmissionLimits};
pub use behaviour::{build_swarm, Behaviour, BehaviourEvent, SwarmOptions};
pub use codec::{FrameCodec, PROTOCOL, UNVERIFIED_MAX_FRAME};
pub use peer::{ed25519_of_peer, peer_id_of_ed25519, PeerKeyError};

/// The request-response events this crate's behaviour emits.
pub type RrEvent =
    libp2p::request_response::Event<sealprint_protocol::Request, sealprint_protocol::Response>;
