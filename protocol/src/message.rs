//! Mesh messages: every exchange on the sealprint libp2p protocol is one [`Request`] answered
//! by one [`Response`]. Agents talk to the coordinator over their uplink (or through a site
//! peer that relays, see `relay`), and to each other on the site's LAN mesh.
//!
//! No message carries label bytes in the clear: jobs travel as [`SealedJob`]s. Reports carry
//! ids, states and reasons, never names or addresses.

use serde::{Deserialize, Serialize};

use crate::envelope::SealedJob;

/// A message that asks for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message on every connection: the sender's device certificate. Nothing else is
    /// accepted from a peer before its certificate has been verified.
    Hello(Hello),
    /// An agent without a certificate asks the coordinator for one, with a one-time token.
    Enroll(EnrollRequest),
    /// An agent's periodic report to the coordinator.
    Heartbeat(Heartbeat),
    /// A sealed label for the receiving agent; answered by [`Response::Outcome`].
    Job(SealedJob),
    /// The coordinator asks a site peer to hand a sealed job to another agent of the site.
    Forward(Forward),
    /// An agent without an uplink asks a site peer to carry a signed message to the
    /// coordinator.
    Relay(Relayed),
    /// An agent asks its coordinator about updates (see `update`); answered by
    /// [`Response::Update`]. Only on the agent's own uplink, never relayed.
    Update(crate::update::UpdateRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request was accepted; nothing more to say.
    Ok,
    /// The answer to [`Request::Hello`]: the responder's own certificate, so both sides are
    /// verified after one round trip. The coordinator answers with its CA-signed identity
    /// instead (see [`Hello`]).
    Hello(Hello),
    /// The answer to [`Request::Enroll`].
    Enrolled(Enrolled),
    /// The answer to [`Request::Heartbeat`] (also carried back through a relay), signed by
    /// the coordinator.
    HeartbeatReply(SignedReply),
    /// What became of a job, signed by the device the job was sealed to: the answer to
    /// [`Request::Job`] and [`Request::Forward`]. A job whose envelope did not open gets a
    /// [`Response::Error`] instead, which settles nothing.
    Outcome(SignedOutcome),
    /// The answer a relay carries back from the coordinator to the agent that sent
    /// [`Request::Relay`]. Not a nested [`Response`], so a decoder can never be made to
    /// recurse.
    Relayed(RelayReply),
    /// The request was refused.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// A short reason for a person; never holds PII.
        message: String,
    },
    /// The answer to [`Request::Update`].
    Update(crate::update::UpdateResponse),
}

/// A request signed by the device it comes from, carried by a relay (signed and checked by
/// `relay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relayed {
    /// The originating device.
    pub device_id: String,
    /// The encoded [`Request`].
    pub payload: Vec<u8>,
    /// ed25519 signature (64 bytes) over the domain prefix, device id and payload.
    pub signature: Vec<u8>,
}

/// The coordinator's answer to a relayed message, as carried back by the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayReply {
    /// Accepted.
    Ok,
    /// The answer to a relayed heartbeat, signed by the coordinator.
    HeartbeatReply(SignedReply),
    /// Refused.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// A short reason for a person; never holds PII.
        message: String,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The peer has not presented a valid certificate yet.
    Unauthenticated,
    /// The certificate is valid but does not allow this (other tenant, site, revoked).
    Forbidden,
    /// The request is malformed or inconsistent.
    BadRequest,
    /// The enrollment token is unknown, used or expired.
    BadToken,
    /// The target of a forward or relay is not reachable from here.
    Unreachable,
    /// The receiver is shutting down or overloaded; try elsewhere.
    Unavailable,
    /// Something failed inside the receiver.
    Internal,
}

/// A device (or the coordinator) introducing itself on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The encoded [`crate::Certificate`] of the sender. The coordinator sends an empty
    /// vector: agents pin it by PeerId from their enrollment token instead.
    pub certificate: Vec<u8>,
    /// Whether the sender has a working uplink to the coordinator (peers use this to pick a
    /// relay).
    pub has_uplink: bool,
}

/// An enrollment request. The device's ed25519 key is the one its libp2p connection was
/// authenticated with; only the X25519 key travels here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token's one-time secret.
    pub token_secret: [u8; 32],
    /// The device's X25519 public key for sealed envelopes.
    pub x25519_public: [u8; 32],
    /// A name for the station a person recognises (hostname); not PII.
    pub hostname: String,
    /// The agent's version.
    pub version: String,
}

/// The coordinator's answer to a successful enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The device's new encoded certificate.
    pub certificate: Vec<u8>,
    /// The CA's ed25519 public key, to verify peers' certificates.
    pub ca_public: [u8; 32],
    /// The coordinator's X25519 key: the only sender whose envelopes the agent opens.
    pub coordinator_x25519: [u8; 32],
}

/// An agent's periodic report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The reporting device.
    pub device_id: String,
    /// The agent's heartbeat counter: larger than that of every heartbeat it sent before,
    /// across restarts. The coordinator refuses a heartbeat whose counter is not above the
    /// last one it recorded (a replay), and its reply names this counter.
    pub seq: u64,
    /// The agent's version string.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// The agent's wall clock when it built this report, unix milliseconds.
    pub clock_ms: u64,
    /// Every configured printer with its verification and status.
    pub printers: Vec<PrinterReport>,
    /// Site peers this agent is connected to and has verified.
    pub peers: Vec<MeshPeerReport>,
    /// Outcomes of recent jobs, so jobs whose answer was lost can be settled.
    pub receipts: Vec<PrintReceipt>,
    /// Local compliance findings (for example a print-to-file queue on the station).
    pub findings: Vec<String>,
}

/// The coordinator's answer to a heartbeat (travels signed, as a [`SignedReply`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The device the reply is for.
    pub device_id: String,
    /// The counter of the heartbeat it answers ([`Heartbeat::seq`]).
    pub heartbeat_seq: u64,
    /// The coordinator's clock, unix milliseconds.
    pub now_ms: u64,
    /// The tenant's revoked devices; enforced on the next message and kept on disk.
    pub revocations: SignedRevocations,
    /// A renewed certificate for the agent, when its current one nears expiry.
    pub renewed_certificate: Option<Vec<u8>>,
    /// The oldest agent version the coordinator still serves.
    pub min_version: String,
    /// New printer identities an admin accepted (after a device was swapped): the agent
    /// records each in place of the old one if the printer still answers it.
    pub accepted_identities: Vec<AcceptedIdentity>,
}

/// An identity an admin accepted for one of the agent's printers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedIdentity {
    /// The printer's name on the agent.
    pub printer: String,
    /// The identity (serial, device id or uuid) to record.
    pub identity: String,
}

/// One printer as its agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterReport {
    /// The printer's name, unique on its agent.
    pub name: String,
    /// The pool the printer serves.
    pub pool: String,
    /// The printer's URI (scheme, host and port; never credentials).
    pub uri: String,
    /// The verification verdict.
    pub verdict: PrinterVerdict,
    /// Why the verdict is what it is, for a person.
    pub reason: String,
    /// The device's identity (serial or device id) when it answered one.
    pub identity: Option<String>,
    /// Whether it can print now.
    pub status: PrinterStatus,
}

/// Whether a printer is known to be a physical device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrinterVerdict {
    /// It answered like a physical printer and its identity matches the recorded one.
    Verified,
    /// It answered, but not like a physical printer (or its identity changed).
    Refused,
    /// It did not answer.
    Unreachable,
}

/// Whether a printer can take a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrinterStatus {
    /// Ready to print.
    Ready,
    /// Out of paper or labels.
    PaperOut,
    /// Print head open.
    HeadOpen,
    /// Paused by an operator.
    Paused,
    /// Not answering.
    Offline,
    /// Answered, but its state could not be read.
    Unknown,
}

/// A site peer as seen by the reporting agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshPeerReport {
    /// The peer's device id (from its verified certificate).
    pub device_id: String,
    /// Whether the peer said it has an uplink.
    pub has_uplink: bool,
}

/// What an agent did with one delivery attempt of a job it received.
///
/// The coordinator settles an attempt whose answer was lost from these, so a receipt names
/// the attempt it is about: a "not printed" of an earlier attempt says nothing of a later one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintReceipt {
    /// The job.
    pub job_id: String,
    /// The delivery attempt (the sealed job header's `attempt`).
    pub attempt: u32,
    /// Where the attempt stands.
    pub state: ReceiptState,
    /// When, on the agent's clock, unix milliseconds.
    pub at_ms: u64,
}

/// Where one delivery attempt stands on its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptState {
    /// Received and being printed: the agent still holds it, no outcome yet.
    Printing,
    /// Finished with this outcome.
    Done(JobOutcome),
}

/// The result of delivering one sealed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    /// The bytes were written to the named printer.
    Printed {
        /// The job.
        job_id: String,
        /// The printer's name on its agent.
        printer: String,
    },
    /// The job was not printed, and never will be by this agent: the coordinator may send
    /// it elsewhere.
    NotPrinted {
        /// The job.
        job_id: String,
        /// Why, for a person; no PII.
        reason: String,
    },
    /// Writing started but did not finish: the printer may or may not have printed it.
    InDoubt {
        /// The job.
        job_id: String,
        /// Why, for a person; no PII.
        reason: String,
    },
}

impl JobOutcome {
    /// The job this outcome is about.
    pub fn job_id(&self) -> &str {
        match self {
            JobOutcome::Printed { job_id, .. }
            | JobOutcome::NotPrinted { job_id, .. }
            | JobOutcome::InDoubt { job_id, .. } => job_id,
        }
    }
}

/// The coordinator asks a relay to hand `job` to `device_id` on the site mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The destination device (must match the sealed header's device).
    pub device_id: String,
    /// The sealed job; the relay reads only its header.
    pub job: SealedJob,
}

// ---- signed end to end (checked by `outcome` and `reply`) -------------------------------

/// What the device states about one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeStatement {
    /// The delivery attempt (the sealed header's `attempt`).
    pub attempt: u32,
    /// The device that opened the envelope (and signs).
    pub device_id: String,
    /// What became of the attempt; names the job.
    pub outcome: JobOutcome,
    /// [`SealedJob::digest`] of the envelope the device opened.
    pub envelope: [u8; 32],
}

/// An outcome statement with the device's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOutcome {
    /// What is signed.
    pub statement: OutcomeStatement,
    /// ed25519 signature (64 bytes) over the domain prefix and the statement's encoding.
    pub signature: Vec<u8>,
}

/// A tenant's revoked devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RevocationList {
    /// The tenant.
    pub tenant_id: String,
    /// Grows with every revocation; a list with a lower version is older.
    pub version: u64,
    /// The revoked devices: every certificate ever issued to one of them is refused.
    pub devices: Vec<String>,
}

/// A revocation list signed by the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRevocations {
    /// What is signed.
    pub list: RevocationList,
    /// ed25519 signature (64 bytes) of the coordinator CA.
    pub signature: Vec<u8>,
}

/// A heartbeat reply signed by the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReply {
    /// What is signed.
    pub reply: HeartbeatReply,
    /// ed25519 signature (64 bytes) of the coordinator CA.
    pub signature: Vec<u8>,
}
