//! The coordinator's mesh endpoint: one event loop that owns the libp2p `Swarm`.
//!
//! It enrolls devices (one-time tokens), verifies every agent's certificate before acting on
//! any other message (CA signature, not expired, issued for the key the connection
//! authenticated, device known and not revoked), records heartbeats (direct or relayed and
//! signed by the device), and delivers jobs: it seals each label to the chosen agent's X25519
//! key and sends it straight to the agent or through a site peer, then records the outcome.
//!
//! Nothing a relaying site peer says is believed on its word: an outcome counts only when the
//! device the job was sealed to signed it over the digest of the envelope sent
//! ([`SignedOutcome`]); a relay's refusal or a bad signature leaves the answer lost (the
//! device's receipts settle it later, or it turns `in_doubt`). Heartbeats must carry a
//! counter above the last one recorded (no replay), and every reply is signed by the CA key
//! with the tenant's signed revocation list inside ([`SignedReply`]). Revocations reach the
//! loop through a set the API fills and the loop drains ([`MeshHandle`]), so none is lost
//! however busy the loop is, and no job is sent to or through a revoked device.
//!
//! The rules of choosing a printer and of judging answers live in [`crate::core::dispatch`]; this
//! module does the I/O around them. Handles from the API reach the loop over a bounded
//! channel ([`MeshHandle`]).
//!
//! # Layout
//! This file holds the configuration, the handle, the loop's state and [`start`]; the loop's
//! handlers are split by concern, each an `impl EventLoop` block:
//! - `event_loop`: the loop itself (revocations, commands, swarm events, tick, reload);
//! - `admission`: hello, certificate checks, enrollment, the gate of every other request;
//! - `heartbeat`: heartbeats (direct or relayed), revocation lists, certificate renewal;
//! - `versions`: the version requirement of a heartbeat's tenant, and outdated agents;
//! - `delivery`: dispatch passes and sending sealed jobs; tenants' holds;
//! - `outcome`: answers, lost answers and the job's next state;
//! - `settle`: settling lost answers and jobs in doubt from receipts (pure judgements);
//! - `operator`: an operator's resolve of a job in doubt and cancel of a queued job;
//! - `revoked`: how the API signals a revocation without ever losing it;
//! - `updates`: remote updates: the offer for an agent, artifact chunks, update reports.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use sealprint_mesh::{build_swarm, AdmissionLimits, Behaviour, SwarmOptions};
use sealprint_protocol::{ErrorCode, Response, SignedRevocations};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info_span, Instrument};

mod admission;
mod delivery;
mod event_loop;
mod heartbeat;
mod operator;
mod outcome;
mod revoked;
mod settle;
#[cfg(test)]
mod tests;
mod updates;
mod versions;

use revoked::RevokedSignal;

use crate::core::agents::VersionPolicy;
use crate::core::dispatch::{AgentLive, DispatchConfig, Fleet};
use crate::core::dispatcher::{SettleAnswer, SettleReply, SettleRequest};
use crate::services::audit_writer::AuditWriter;
use crate::services::ca::Identity;
use crate::services::events::EventWriter;
use crate::services::failures::FailureLog;
use crate::store::{AgentRecord, JobRecord, Store};

/// How the mesh endpoint runs.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<Multiaddr>,
    /// Multiaddrs to put in enrollment tokens (default: the bound listen addresses).
    pub advertise: Vec<Multiaddr>,
    /// The agents' heartbeat period.
    pub heartbeat_interval: Duration,
    /// How long device certificates are valid; renewed when a third is left.
    pub cert_validity: Duration,
    /// Delivery windows and the queue bound.
    pub delivery: crate::services::delivery_config::DeliveryConfig,
    /// How long a peer has to show a valid hello (or enroll) before it is disconnected.
    pub hello_deadline: Duration,
    /// Where unauthenticated failures are counted.
    pub failures: FailureLog,
    /// The global agent version policy (a tenant may raise its minimum).
    pub versions: VersionPolicy,
    /// Agent releases offered for remote updates.
    pub releases: crate::services::releases::Releases,
}

/// A handle to the running mesh endpoint. Cheap to clone.
#[derive(Clone)]
pub struct MeshHandle {
    tx: mpsc::Sender<Command>,
    backlog: Arc<Backlog>,
    revoked: Arc<RevokedSignal>,
}

/// How many jobs wait for a printer, shared by the event loop (which counts its queue) and
/// the API (which refuses labels when it is full).
#[derive(Debug)]
struct Backlog {
    /// Jobs in the event loop's queue at its last dispatch.
    queued: AtomicUsize,
    /// Refuse new labels at this many.
    limit: usize,
    /// A submission did not fit in the channel: the loop must rescan the store.
    overflowed: AtomicBool,
}

/// What [`start`] returns.
pub struct MeshStarted {
    /// The handle.
    pub handle: MeshHandle,
    /// Where the endpoint listens (bound ports).
    pub listen_addrs: Vec<Multiaddr>,
}

enum Command {
    Submitted {
        tenant_id: String,
        job_id: String,
    },
    Settle {
        request: SettleRequest,
        reply: SettleReply,
    },
}

impl crate::core::dispatcher::Dispatch for MeshHandle {
    fn job_submitted(&self, tenant_id: &str, job_id: &str) {
        let cmd = Command::Submitted {
            tenant_id: tenant_id.to_owned(),
            job_id: job_id.to_owned(),
        };
        // A full channel only delays the job: the loop rescans the store on its next tick.
        if self.tx.try_send(cmd).is_err() {
            self.backlog.overflowed.store(true, Ordering::Relaxed);
            debug!(job = %job_id, "dispatch channel full; the next scan of the store picks the job up");
        }
    }

    fn backlog_full(&self) -> bool {
        let in_channel = self.tx.max_capacity() - self.tx.capacity();
        self.backlog.queued.load(Ordering::Relaxed) + in_channel >= self.backlog.limit
    }

    fn agent_revoked(&self, device_id: &str) {
        self.revoked.insert(device_id);
    }

    fn settle(&self, request: SettleRequest, reply: SettleReply) {
        // A full channel answers at once (the caller gets a 503 and retries); the loop
        // decides every request it takes.
        match self.tx.try_send(Command::Settle { request, reply }) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(Command::Settle { reply, .. })
                | mpsc::error::TrySendError::Closed(Command::Settle { reply, .. }),
            ) => reply(SettleAnswer::Unavailable),
            Err(_) => {}
        }
    }
}

struct Verified {
    device_id: String,
}

/// One delivery attempt out on an agent.
struct Attempt {
    tenant_id: String,
    printer_id: String,
    device_id: String,
    /// The device's ed25519 key and the digest of the envelope sent: the answer must be an
    /// outcome signed with that key over that digest. `None` after a restart (no answer
    /// can arrive for a request of the previous process; receipts settle it).
    expect: Option<([u8; 32], [u8; 32])>,
    /// Whether it went straight to the device (its own refusal then counts) or through a
    /// site peer (whose word counts for nothing).
    direct: bool,
    /// The attempt number (the sealed header's `attempt`); receipts name it.
    attempt: u32,
    dispatched_at_ms: u64,
    deadline_ms: u64,
    /// The request whose answer is awaited; `None` once the answer is lost (the attempt then
    /// waits for the agent's receipts).
    request: Option<OutboundRequestId>,
    /// Whether it counts in its printer's in-flight load. An attempt whose answer was lost
    /// stops counting, so a printer is not blocked by jobs nobody can hear about.
    counted: bool,
}

/// A queued job as dispatch needs it, kept in memory: a dispatch pass reads the store only for
/// a job it is about to send (or fail), not for every job still waiting for a printer.
struct Waiting {
    tenant_id: String,
    job_id: String,
    pool: Option<String>,
    printer: Option<String>,
    excluded: Vec<String>,
    updated_at_ms: u64,
    expires_at_ms: u64,
}

impl Waiting {
    fn of(job: &JobRecord) -> Waiting {
        Waiting {
            tenant_id: job.tenant_id.clone(),
            job_id: job.id.clone(),
            pool: job.pool.clone(),
            printer: job.requested_printer.clone(),
            excluded: job.excluded_printers.clone(),
            updated_at_ms: job.updated_at_ms,
            expires_at_ms: job.expires_at_ms,
        }
    }
}

/// A job in doubt that its agent's receipts may still settle.
struct Doubt {
    tenant_id: String,
    device_id: String,
    attempt: u32,
    /// When the doubt is only that the agent went silent: when the attempt was sent and its
    /// deadline. A heartbeat of the same agent process built after the deadline that does
    /// not list the job then proves it never arrived.
    unheard: Option<(u64, u64)>,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// The signed revocation list per tenant (see `revocations`).
    revocations: HashMap<String, (std::time::Instant, SignedRevocations)>,
    /// Devices revoked since start (taken from `signal`): never sent a job, never a relay.
    revoked_devices: HashSet<String>,
    signal: Arc<RevokedSignal>,
    /// The last heartbeat counter accepted per device (seeded from its record).
    heartbeat_seqs: HashMap<String, u64>,
    cert_validity_s: u64,
    store: Store,
    identity: Arc<Identity>,
    cfg: DispatchConfig,
    peers: HashMap<PeerId, Verified>,
    fleet: Fleet,
    queue: VecDeque<Waiting>,
    attempts: HashMap<String, Attempt>,
    requests: HashMap<OutboundRequestId, String>,
    in_doubt: HashMap<String, Doubt>,
    commands: mpsc::Receiver<Command>,
    backlog: Arc<Backlog>,
    /// Audit entries leave the loop through a writer task.
    audit_writer: AuditWriter,
    /// Job and fleet events for the webhooks leave it the same way.
    events: EventWriter,
    /// Printers whose refusal was reported (`printer.refused` once per refusal, again after
    /// the printer verified).
    refused_printers: HashSet<String>,
    failures: FailureLog,
    /// The global agent version policy; heartbeats are judged against it and the tenant's.
    versions: VersionPolicy,
    /// Agent releases (remote updates, see `updates`).
    releases: crate::services::releases::Releases,
    /// (device, version) pairs whose offer was audited since start: once each, not on every
    /// heartbeat.
    offered: HashSet<(String, String)>,
    /// Agents updating (device → target version, since when): held out of dispatch.
    updating: HashMap<String, (String, std::time::Instant)>,
    /// Agents whose new version's trial process reported `running` (device → since when):
    /// that process is about to be stopped and replaced, so no job goes to it; held until a
    /// new connection of the device says hello.
    handovers: HashMap<String, std::time::Instant>,
}

/// Starts the mesh endpoint: binds the listen addresses, reloads unfinished jobs, and spawns
/// the event loop on `tracker` until `shutdown`.
///
/// # Errors
/// When the swarm cannot be built, an address cannot be bound, or the store cannot be read.
pub async fn start(
    config: MeshConfig,
    store: Store,
    identity: Arc<Identity>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> anyhow::Result<MeshStarted> {
    let swarm_opts = SwarmOptions {
        admission: AdmissionLimits {
            hello_deadline: config.hello_deadline,
            ..AdmissionLimits::default()
        },
        ..SwarmOptions::default()
    };
    let mut swarm = build_swarm(identity.libp2p_keypair(), &swarm_opts)
        .map_err(|e| anyhow::anyhow!("building the mesh endpoint: {e}"))?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    }
    let mut listen_addrs = Vec::new();
    while listen_addrs.len() < config.listen.len() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
            SwarmEvent::ListenerError { error, .. } => {
                anyhow::bail!("mesh listener failed: {error}")
            }
            _ => {}
        }
    }
    let (mut ev, handle) = EventLoop::new(swarm, config, store, identity, &tracker);
    ev.reload()?;
    tracker.spawn(ev.run(shutdown).instrument(info_span!("mesh")));
    Ok(MeshStarted {
        handle,
        listen_addrs,
    })
}

impl EventLoop {
    /// The loop over `swarm` with `config`'s settings, its command channel (the returned
    /// handle's end) and its store writers (spawned on `tracker`). Nothing is reloaded yet and
    /// `config.listen` is not used: [`start`] binds the swarm first.
    fn new(
        swarm: Swarm<Behaviour>,
        config: MeshConfig,
        store: Store,
        identity: Arc<Identity>,
        tracker: &TaskTracker,
    ) -> (EventLoop, MeshHandle) {
        let (tx, commands) = mpsc::channel(4096);
        let backlog = Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            limit: config.delivery.max_queued_jobs,
            overflowed: AtomicBool::new(false),
        });
        let signal = Arc::new(RevokedSignal::default());
        let ev = EventLoop {
            swarm,
            revocations: HashMap::new(),
            revoked_devices: HashSet::new(),
            signal: signal.clone(),
            heartbeat_seqs: HashMap::new(),
            cert_validity_s: config.cert_validity.as_secs().max(1),
            store: store.clone(),
            identity,
            cfg: DispatchConfig {
                heartbeat_interval_ms: config.heartbeat_interval.as_millis() as u64,
                attempt_window_ms: config.delivery.attempt_window.as_millis() as u64,
                allowed_skew_ms: config.delivery.allowed_skew.as_millis() as u64,
                ..DispatchConfig::default()
            },
            peers: HashMap::new(),
            fleet: Fleet::default(),
            queue: VecDeque::new(),
            attempts: HashMap::new(),
            requests: HashMap::new(),
            in_doubt: HashMap::new(),
            commands,
            backlog: backlog.clone(),
            audit_writer: AuditWriter::spawn(store.clone(), tracker),
            events: EventWriter::spawn(store, tracker),
            refused_printers: HashSet::new(),
            failures: config.failures,
            versions: config.versions,
            releases: config.releases,
            offered: HashSet::new(),
            updating: HashMap::new(),
            handovers: HashMap::new(),
        };
        let handle = MeshHandle {
            tx,
            backlog,
            revoked: signal,
        };
        (ev, handle)
    }
}

fn now_ms() -> u64 {
    crate::core::clock::now_ms()
}

/// Why a request is refused, before it becomes a [`Response::Error`].
type Refusal = (ErrorCode, &'static str);

fn refuse(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_owned(),
    }
}

fn live_of(record: &AgentRecord, peer: Option<PeerId>) -> AgentLive {
    AgentLive {
        device_id: record.device_id.clone(),
        tenant_id: record.tenant_id.clone(),
        site_id: record.site_id.clone(),
        x25519_public: record.x25519_public,
        ed25519_public: record.ed25519_public,
        peer,
        relay: None,
        printers: Vec::new(),
        last_heartbeat_ms: None,
        boot_ms: 0,
        clock_skew_ms: VecDeque::new(),
        outdated: false,
    }
}
