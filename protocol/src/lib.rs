//! # sealprint-protocol
//!
//! The wire contract between the sealprint coordinator and its Print Station agents, and
//! between agents of one site. Everything here is pure: no sockets, no files, no clock.
//! Callers pass `now` explicitly, which is what makes the crate testable on explicit time and
//! fuzzable.
//!
//! # Layout
//! - [`cert`]: device certificates signed by the coordinator CA (ed25519), with a canonical,
//!   domain-separated encoding and typed verification verdicts.
//! - [`token`]: one-time enrollment tokens, printable as one copy-pasteable string.
//! - [`envelope`]: sealed label envelopes (one-way Noise `X` to the agent's X25519 key): a
//!   header relays can read, a body only the destination can open.
//! - [`message`]: mesh messages (requests and responses) and the reports they carry.
//! - [`codec`]: length-prefixed framing with a size limit; tells "need more bytes" apart from
//!   "invalid".
//! - [`relay`]: uplink messages signed by the originating device, so a relaying peer can carry
//!   them but not forge them.
//! - [`outcome`]: job outcomes signed by the device that opened the job, over the digest of
//!   the envelope it opened.
//! - [`reply`]: heartbeat replies and revocation lists signed by the coordinator, with
//!   counters and versions so they cannot be replayed.
//! - [`version`]: agent versions, and the coordinator's version requirement (the minimum now,
//!   and the next one announced) as heartbeat replies carry it.
//! - [`update`]: what an agent asks its coordinator about releases (offer, chunks, reports).
//!
//! What this crate does not do: transport, storage, key generation policy, or deciding what a
//! message means for a job's state. Those live in the coordinator and the agent.

pub mod cert;
pub mod codec;
pub mod envelope;
mod ident;
pub mod message;
pub mod outcome;
pub mod relay;
pub mod reply;
pub mod token;
pub mod update;
pub mod version;

pub use cert::{CertError, Certificate, CertificateBody, Expectation};
pub use codec::{decode_frame, encode_frame, FrameError, DEFAULT_MAX_FRAME};
pub use envelope::{open, seal, EnvelopeError, JobHeader, Label, LabelFormat, SealedJob};
pub use ident::{validate_id, IdError};
pub use message::{
    AcceptedIdentity, EnrollRequest, Enrolled, ErrorCode, Forward, Heartbeat, HeartbeatReply,
    Hello, JobOutcome, MeshPeerReport, OutcomeStatement, PrintReceipt, PrinterReport,
    PrinterStatus, PrinterVerdict, ReceiptState, RelayReply, Relayed, Request, Response,
    RevocationList, SignedOutcome, SignedReply, SignedRevocations,
};
pub use outcome::{OutcomeError, OutcomeExpectation};
pub use relay::RelayError;
pub use reply::ReplyError;
pub use token::{EnrollmentToken, TokenError};
pub use update::{UpdateOffer, UpdateReport, UpdateRequest, UpdateResponse, UpdateStep, MAX_CHUNK};
pub use version::{version_below, Announced, Requirement, Version, VersionError};

/// Version string of this protocol crate; agents report theirs in heartbeats.
pub const PROTOCOL_VERSION: u32 = 1;
