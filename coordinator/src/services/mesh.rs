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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, Message, OutboundFailure, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use rand::RngCore;
use sealprint_mesh::{
    build_swarm, ed25519_of_peer, AdmissionLimits, Behaviour, BehaviourEvent, SwarmOptions,
};
use sealprint_protocol::{
    seal, AcceptedIdentity, Certificate, CertificateBody, EnrollRequest, Enrolled, EnrollmentToken,
    ErrorCode, Expectation, Forward, Heartbeat, HeartbeatReply, Hello, JobHeader, JobOutcome,
    OutcomeExpectation, PrinterVerdict, ReceiptState, RelayReply, Relayed, Request, Response,
    RevocationList, SignedOutcome, SignedReply, SignedRevocations,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

mod revoked;

use revoked::RevokedSignal;

use crate::core::agents::MIN_AGENT_VERSION;
use crate::core::dispatch::{
    judge_lost_answer, printer_id, AgentLive, Choice, DispatchConfig, Fleet, LostAnswer, Route,
    Want,
};
use crate::core::failures::FailureKind;
use crate::services::audit_writer::AuditWriter;
use crate::services::ca::{issue_certificate, DeviceSubject, Identity};
use crate::services::failures::{source_of, FailureLog};
use crate::store::{AgentRecord, AuditEntry, JobRecord, JobStatus, Store};

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
    Submitted { tenant_id: String, job_id: String },
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
    failures: FailureLog,
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
    let (tx, commands) = mpsc::channel(4096);
    let backlog = Arc::new(Backlog {
        queued: AtomicUsize::new(0),
        limit: config.delivery.max_queued_jobs,
        overflowed: AtomicBool::new(false),
    });
    let signal = Arc::new(RevokedSignal::default());
    let mut ev = EventLoop {
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
        audit_writer: AuditWriter::spawn(store.clone(), &tracker),
        failures: config.failures.clone(),
    };
    ev.reload()?;
    tracker.spawn(ev.run(shutdown).instrument(info_span!("mesh")));
    Ok(MeshStarted {
        handle: MeshHandle {
            tx,
            backlog,
            revoked: signal,
        },
        listen_addrs,
    })
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

impl EventLoop {
    /// Picks up where a previous process stopped: queued jobs go back to the queue; jobs that
    /// were out for delivery, or in doubt, wait for their agent's receipts.
    fn reload(&mut self) -> anyhow::Result<()> {
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
    fn rescan(&mut self) {
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

    async fn run(mut self, shutdown: CancellationToken) {
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

    fn on_command(&mut self, cmd: Command) {
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
        }
    }

    /// A device was revoked: forget it, cut it off, and sign a new list for its tenant at the
    /// next heartbeat.
    fn on_revoked(&mut self, device_id: String) {
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
    fn is_revoked(&self, device_id: &str) -> bool {
        self.revoked_devices.contains(device_id) || self.signal.contains(device_id)
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
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

    fn on_rr(&mut self, ev: request_response::Event<Request, Response>) {
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

    fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
    ) {
        let entry = AuditEntry {
            at_ms: now_ms(),
            tenant_id: tenant_id.map(str::to_owned),
            actor: actor.to_owned(),
            action: action.to_owned(),
            object: object.map(str::to_owned),
            outcome: outcome.to_owned(),
        };
        self.audit_writer.write(entry);
    }

    /// Counts an unauthenticated failure of `peer` (summarised by its address, since a
    /// stranger can mint PeerIds at will) and has its connection closed once the refusal
    /// has left.
    fn failed(&mut self, peer: PeerId, kind: FailureKind, reason: &str) {
        let ip = self.swarm.behaviour().admission.remote_ip(&peer);
        self.failures.record(&source_of(ip), kind, reason);
        self.swarm.behaviour_mut().admission.refuse(peer);
    }

    fn on_request(&mut self, peer: PeerId, req: Request) -> Response {
        match req {
            Request::Hello(hello) => self.on_hello(peer, &hello),
            Request::Enroll(enroll) => self.on_enroll(peer, &enroll),
            other => {
                // Every other message needs a verified, unrevoked device behind the connection.
                let device_id = match self.peers.get(&peer) {
                    Some(v) => v.device_id.clone(),
                    None => {
                        debug!(%peer, "message before a verified hello; disconnecting");
                        self.failed(peer, FailureKind::NoHello, "message before a hello");
                        return refuse(ErrorCode::Unauthenticated, "send hello first");
                    }
                };
                let record = match self.store.agent(&device_id) {
                    Ok(Some(r)) if !r.revoked => r,
                    Ok(_) => {
                        warn!(device = %device_id, "message from a revoked device; disconnecting");
                        self.audit(
                            None,
                            &device_id,
                            "agent.refused",
                            Some(&device_id),
                            "revoked",
                        );
                        self.peers.remove(&peer);
                        self.fleet.remove(&device_id);
                        self.swarm.behaviour_mut().admission.refuse(peer);
                        return refuse(ErrorCode::Forbidden, "certificate revoked");
                    }
                    Err(e) => {
                        warn!(error = %e, "store read failed");
                        return refuse(ErrorCode::Internal, "store unavailable");
                    }
                };
                match other {
                    Request::Heartbeat(hb) if hb.device_id == record.device_id => {
                        match self.on_heartbeat(&record, &hb, Some(peer), None) {
                            Ok(reply) => Response::HeartbeatReply(reply),
                            Err((code, message)) => refuse(code, message),
                        }
                    }
                    Request::Relay(relayed) => self.on_relay(&record, &relayed),
                    _ => refuse(ErrorCode::BadRequest, "unexpected request"),
                }
            }
        }
    }

    fn on_hello(&mut self, peer: PeerId, hello: &Hello) -> Response {
        match self.verify_agent(&peer, &hello.certificate) {
            Ok(record) => {
                info!(device = %record.device_id, %peer, "agent verified");
                self.swarm.behaviour_mut().admission.verify(peer);
                self.peers.insert(
                    peer,
                    Verified {
                        device_id: record.device_id.clone(),
                    },
                );
                self.fleet.connected(live_of(&record, Some(peer)));
                Response::Hello(Hello {
                    certificate: Vec::new(),
                    has_uplink: true,
                })
            }
            Err(reason) => {
                debug!(%peer, %reason, "agent certificate refused; disconnecting");
                self.failed(peer, FailureKind::BadHello, &reason);
                refuse(ErrorCode::Unauthenticated, &reason)
            }
        }
    }

    fn verify_agent(&self, peer: &PeerId, cert_bytes: &[u8]) -> Result<AgentRecord, String> {
        let key = ed25519_of_peer(peer).map_err(|e| e.to_string())?;
        let cert = Certificate::decode(cert_bytes).map_err(|e| e.to_string())?;
        cert.check_key(&key).map_err(|e| e.to_string())?;
        let record = self
            .store
            .agent(&cert.body.device_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "unknown device".to_owned())?;
        // Revocation is by device: every certificate it was ever issued is refused.
        let revoked = |_: &CertificateBody| record.revoked;
        let ca = ed25519_dalek::VerifyingKey::from_bytes(&self.identity.ca_public())
            .map_err(|_| "ca key unusable".to_owned())?;
        cert.verify(
            &ca,
            &Expectation {
                tenant_id: &record.tenant_id,
                site_id: Some(&record.site_id),
                is_revoked: &revoked,
            },
            now_ms() / 1000,
        )
        .map_err(|e| e.to_string())?;
        if record.revoked {
            return Err("device revoked".into());
        }
        // An older certificate of the same keys stays valid until it expires: a renewal
        // whose answer was lost must not lock the device out.
        if cert.body.ed25519_public != record.ed25519_public
            || cert.body.x25519_public != record.x25519_public
        {
            return Err("certificate is for other keys than the enrolled device's".into());
        }
        Ok(record)
    }

    fn on_enroll(&mut self, peer: PeerId, req: &EnrollRequest) -> Response {
        let now = now_ms();
        let hash = EnrollmentToken::hash_secret(&req.token_secret);
        let grant = match self.store.redeem_enrollment_token(&hash, now / 1000) {
            Ok(g) => g,
            Err(e) => {
                debug!(%peer, error = %e, "enrollment refused");
                self.failed(peer, FailureKind::FailedEnrollment, &e.to_string());
                return refuse(ErrorCode::BadToken, &e.to_string());
            }
        };
        let Ok(ed25519_public) = ed25519_of_peer(&peer) else {
            return refuse(ErrorCode::BadRequest, "peer id is not an ed25519 key");
        };
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let device_id = format!("dev-{}", hex::encode(raw));
        let subject = DeviceSubject {
            device_id: &device_id,
            tenant_id: &grant.tenant_id,
            site_id: &grant.site_id,
            ed25519_public,
            x25519_public: req.x25519_public,
        };
        let cert = match issue_certificate(
            &self.identity,
            &self.store,
            &subject,
            now / 1000,
            self.cert_validity_s,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "certificate not issued");
                return refuse(ErrorCode::Internal, "certificate not issued");
            }
        };
        let hostname: String = req
            .hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        let record = AgentRecord {
            device_id: device_id.clone(),
            tenant_id: grant.tenant_id.clone(),
            site_id: grant.site_id.clone(),
            serial: cert.body.serial,
            certificate: cert.encode(),
            ed25519_public,
            x25519_public: req.x25519_public,
            hostname,
            enrolled_at_ms: now,
            revoked: false,
            version: Some(req.version.chars().take(32).collect()),
            last_heartbeat_at_ms: None,
            clock_offset_ms: None,
            relay: None,
            findings: Vec::new(),
            heartbeat_seq: 0,
        };
        if let Err(e) = self.store.put_agent(&record) {
            warn!(error = %e, "agent not stored");
            return refuse(ErrorCode::Internal, "agent not stored");
        }
        info!(device = %device_id, tenant = %grant.tenant_id, site = %grant.site_id, serial = cert.body.serial, "agent enrolled");
        self.audit(
            Some(&grant.tenant_id),
            &device_id,
            "agent.enrolled",
            Some(&device_id),
            "ok",
        );
        Response::Enrolled(Enrolled {
            certificate: cert.encode(),
            ca_public: self.identity.ca_public(),
            coordinator_x25519: self.identity.x25519_public(),
        })
    }

    /// Records a heartbeat that came over `direct` (the agent's own connection) or through
    /// the site peer `relay`.
    fn on_heartbeat(
        &mut self,
        record: &AgentRecord,
        hb: &Heartbeat,
        direct: Option<PeerId>,
        relay: Option<&str>,
    ) -> Result<SignedReply, Refusal> {
        let now = now_ms();
        let last = self
            .heartbeat_seqs
            .get(&record.device_id)
            .copied()
            .unwrap_or(record.heartbeat_seq);
        if hb.seq <= last {
            warn!(device = %record.device_id, seq = hb.seq, last, relay = ?relay, "replayed or stale heartbeat refused");
            return Err((ErrorCode::BadRequest, "stale heartbeat counter"));
        }
        if let Err(e) = self
            .store
            .record_heartbeat(&record.device_id, hb, relay, now)
        {
            warn!(error = %e, "heartbeat not recorded");
            return Err((ErrorCode::Internal, "heartbeat not recorded"));
        }
        self.fleet
            .heartbeat(live_of(record, direct), hb, relay, now);
        self.heartbeat_seqs.insert(record.device_id.clone(), hb.seq);
        self.settle_from_receipts(&record.device_id, hb);
        let revocations = self.revocations(&record.tenant_id)?;
        let reply = HeartbeatReply {
            device_id: record.device_id.clone(),
            heartbeat_seq: hb.seq,
            now_ms: now,
            revocations,
            renewed_certificate: self.renew_if_due(&record.device_id, now / 1000),
            min_version: MIN_AGENT_VERSION.to_owned(),
            accepted_identities: self.accepted_identities(record, hb),
        };
        SignedReply::sign(reply, self.identity.ca_signing_key()).map_err(|e| {
            warn!(error = %e, "heartbeat reply not signed");
            (ErrorCode::Internal, "reply not signed")
        })
    }

    /// The tenant's signed revocation list, from a cache a revocation clears (and that
    /// expires after 10 s): reading it from the store means scanning every agent of the
    /// tenant, and signing it costs a signature, once per heartbeat otherwise.
    fn revocations(&mut self, tenant_id: &str) -> Result<SignedRevocations, Refusal> {
        if let Some((at, cached)) = self.revocations.get(tenant_id) {
            if at.elapsed() < Duration::from_secs(10) {
                return Ok(cached.clone());
            }
        }
        let devices = self.store.revoked_devices(tenant_id).map_err(|e| {
            warn!(error = %e, "revoked devices not readable");
            (ErrorCode::Internal, "revocations unavailable")
        })?;
        // Revocation is final and agent records are never deleted while their tenant lives,
        // so the count of revoked devices only grows: it is the list's version.
        let list = RevocationList {
            tenant_id: tenant_id.to_owned(),
            version: devices.len() as u64,
            devices,
        };
        let signed =
            SignedRevocations::sign(list, self.identity.ca_signing_key()).map_err(|e| {
                warn!(error = %e, "revocation list not signed");
                (ErrorCode::Internal, "revocations unavailable")
            })?;
        self.revocations.insert(
            tenant_id.to_owned(),
            (std::time::Instant::now(), signed.clone()),
        );
        Ok(signed)
    }

    /// Identities an admin accepted for this agent's printers that it has not taken up yet;
    /// an acceptance is forgotten once the printer reports verified with that identity.
    fn accepted_identities(&self, record: &AgentRecord, hb: &Heartbeat) -> Vec<AcceptedIdentity> {
        let mut out = Vec::new();
        for p in &hb.printers {
            let id = printer_id(&record.device_id, &p.name);
            let Ok(Some(accepted)) = self.store.accepted_printer_identity(&record.tenant_id, &id)
            else {
                continue;
            };
            if p.verdict == PrinterVerdict::Verified && p.identity.as_deref() == Some(&accepted) {
                if let Err(e) = self
                    .store
                    .clear_accepted_printer_identity(&record.tenant_id, &id)
                {
                    warn!(printer = %id, error = %e, "accepted identity not cleared");
                }
            } else {
                out.push(AcceptedIdentity {
                    printer: p.name.clone(),
                    identity: accepted,
                });
            }
        }
        out
    }

    /// A fresh certificate for the device when its current one has less than a third of its
    /// validity left. The device keeps its keys; the old certificate stays valid until it
    /// expires, so a lost answer only means the next heartbeat renews again.
    fn renew_if_due(&self, device_id: &str, now_s: u64) -> Option<Vec<u8>> {
        let mut record = self.store.agent(device_id).ok().flatten()?;
        let current = Certificate::decode(&record.certificate).ok()?;
        if current.body.not_after.saturating_sub(now_s) > self.cert_validity_s / 3 {
            return None;
        }
        let subject = DeviceSubject {
            device_id,
            tenant_id: &record.tenant_id,
            site_id: &record.site_id,
            ed25519_public: record.ed25519_public,
            x25519_public: record.x25519_public,
        };
        let cert = match issue_certificate(
            &self.identity,
            &self.store,
            &subject,
            now_s,
            self.cert_validity_s,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(device = %device_id, error = %e, "certificate not renewed");
                return None;
            }
        };
        record.serial = cert.body.serial;
        record.certificate = cert.encode();
        if let Err(e) = self.store.put_agent(&record) {
            warn!(device = %device_id, error = %e, "renewed certificate not stored");
            return None;
        }
        info!(device = %device_id, serial = cert.body.serial, "certificate renewed");
        self.audit(
            Some(&record.tenant_id),
            device_id,
            "agent.certificate_renewed",
            Some(device_id),
            "ok",
        );
        Some(record.certificate)
    }

    fn on_relay(&mut self, relay: &AgentRecord, relayed: &Relayed) -> Response {
        let reply = |r: RelayReply| Response::Relayed(r);
        let origin = match self.store.agent(&relayed.device_id) {
            Ok(Some(r)) if !r.revoked => r,
            _ => {
                return reply(RelayReply::Error {
                    code: ErrorCode::Forbidden,
                    message: "unknown or revoked device".into(),
                })
            }
        };
        if origin.tenant_id != relay.tenant_id || origin.site_id != relay.site_id {
            warn!(relay = %relay.device_id, origin = %origin.device_id, "relay across sites refused");
            return reply(RelayReply::Error {
                code: ErrorCode::Forbidden,
                message: "relay is not of the same site".into(),
            });
        }
        let hb = match relayed.verify(&origin.ed25519_public) {
            Ok(Request::Heartbeat(hb)) if hb.device_id == origin.device_id => hb,
            Ok(_) | Err(_) => {
                warn!(relay = %relay.device_id, origin = %origin.device_id, "relayed message refused");
                return reply(RelayReply::Error {
                    code: ErrorCode::Forbidden,
                    message: "relayed message does not verify".into(),
                });
            }
        };
        match self.on_heartbeat(&origin, &hb, None, Some(&relay.device_id)) {
            Ok(r) => reply(RelayReply::HeartbeatReply(r)),
            Err((code, message)) => reply(RelayReply::Error {
                code,
                message: message.to_owned(),
            }),
        }
    }

    /// Applies receipts to jobs out for delivery on this agent, and judges lost answers.
    /// Settles attempts whose answer was lost, and jobs in doubt, from the receipts in an
    /// agent's heartbeat. A receipt counts only for the attempt it names.
    fn settle_from_receipts(&mut self, device_id: &str, hb: &Heartbeat) {
        let receipts: HashMap<(&str, u32), &ReceiptState> = hb
            .receipts
            .iter()
            .map(|r| ((r.job_id.as_str(), r.attempt), &r.state))
            .collect();
        let waiting: Vec<(String, u32)> = self
            .attempts
            .iter()
            // An answer still awaited counts too: a request into a cut link fails only at
            // its timeout, but a heartbeat built after the deadline already settles it.
            .filter(|(_, a)| a.device_id == device_id)
            .map(|(j, a)| (j.clone(), a.attempt))
            .collect();
        for (job_id, attempt) in waiting {
            match receipts.get(&(job_id.as_str(), attempt)) {
                Some(ReceiptState::Done(outcome)) => {
                    self.finish_attempt(&job_id, Ok(outcome.clone()));
                    continue;
                }
                // The agent holds it: its answer will come in a later heartbeat.
                Some(ReceiptState::Printing) => continue,
                None => {}
            }
            let Some(a) = self.attempts.get(&job_id) else {
                continue;
            };
            match judge_lost_answer(hb, a.dispatched_at_ms, a.deadline_ms, &self.cfg) {
                LostAnswer::Wait => {}
                LostAnswer::Reassign => self.finish_attempt(
                    &job_id,
                    Ok(JobOutcome::NotPrinted {
                        job_id: job_id.clone(),
                        reason: "agent never received the job before its deadline".into(),
                    }),
                ),
                LostAnswer::InDoubt => self.finish_attempt(
                    &job_id,
                    Ok(JobOutcome::InDoubt {
                        job_id: job_id.clone(),
                        reason: "agent restarted while the job was out".into(),
                    }),
                ),
            }
        }
        let mut settled: Vec<(String, JobOutcome)> = Vec::new();
        for (job_id, d) in self
            .in_doubt
            .iter_mut()
            .filter(|(_, d)| d.device_id == device_id)
        {
            match receipts.get(&(job_id.as_str(), d.attempt)) {
                Some(ReceiptState::Done(
                    o @ (JobOutcome::Printed { .. } | JobOutcome::NotPrinted { .. }),
                )) => settled.push((job_id.clone(), o.clone())),
                Some(_) => {}
                None => {
                    let Some((sent, deadline)) = d.unheard else {
                        continue;
                    };
                    match judge_lost_answer(hb, sent, deadline, &self.cfg) {
                        LostAnswer::Wait => {}
                        LostAnswer::Reassign => settled.push((
                            job_id.clone(),
                            JobOutcome::NotPrinted {
                                job_id: job_id.clone(),
                                reason: "agent never received the job before its deadline".into(),
                            },
                        )),
                        // It restarted since: nobody can know any more.
                        LostAnswer::InDoubt => d.unheard = None,
                    }
                }
            }
        }
        for (job_id, outcome) in settled {
            if let Some(d) = self.in_doubt.remove(&job_id) {
                self.resolve_in_doubt(&d.tenant_id, &job_id, outcome);
            }
        }
    }

    /// Ends a job in doubt with the outcome its agent's receipt gives (printed, or not
    /// printed and back in the queue).
    fn resolve_in_doubt(&mut self, tenant_id: &str, job_id: &str, outcome: JobOutcome) {
        let Ok(Some(mut job)) = self.store.job(tenant_id, job_id) else {
            return;
        };
        if job.status != JobStatus::InDoubt {
            return;
        }
        match outcome {
            JobOutcome::Printed { .. } => {
                info!(job = %job_id, "in-doubt job settled by receipt: printed");
                self.mark_printed(&mut job);
            }
            JobOutcome::NotPrinted { reason, .. } => {
                info!(job = %job_id, "in-doubt job settled by receipt: not printed; requeued");
                job.status = JobStatus::Queued;
                job.error = Some(reason);
                job.updated_at_ms = now_ms();
                if self.store.update_job(&job).is_ok() {
                    self.queue.push_back(Waiting::of(&job));
                }
            }
            JobOutcome::InDoubt { .. } => {}
        }
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        // Jobs whose agent went silent well past the deadline: nobody can say; an operator decides.
        // Its receipts settle it when the agent is heard again.
        let silent: Vec<(String, (u64, u64))> = self
            .attempts
            .iter()
            .filter(|(_, a)| {
                now > a.deadline_ms + self.cfg.allowed_skew_ms + 3 * self.cfg.heartbeat_interval_ms
                    && self
                        .fleet
                        .agent(&a.device_id)
                        .and_then(|l| l.last_heartbeat_ms)
                        .is_none_or(|t| t + 3 * self.cfg.heartbeat_interval_ms < now)
            })
            .map(|(j, a)| (j.clone(), (a.dispatched_at_ms, a.deadline_ms)))
            .collect();
        for (job_id, window) in silent {
            self.finish_attempt(
                &job_id,
                Ok(JobOutcome::InDoubt {
                    job_id: job_id.clone(),
                    reason: "agent silent since the job was sent".into(),
                }),
            );
            if let Some(d) = self.in_doubt.get_mut(&job_id) {
                d.unheard = Some(window);
            }
        }
        self.dispatch();
    }

    /// Sends as many queued jobs as there are free printers.
    fn dispatch(&mut self) {
        let now = now_ms();
        let mut still_waiting = VecDeque::new();
        let mut holds: HashMap<String, Option<String>> = HashMap::new();
        let mut sent = 0usize;
        // Wants (tenant, pool, printer) no printer could take in this pass: the same want
        // without exclusions finds nothing either, so it is not asked again.
        let mut nothing_for: HashSet<(String, Option<String>, Option<String>)> = HashSet::new();
        while let Some(w) = self.queue.pop_front() {
            let hold = holds
                .entry(w.tenant_id.clone())
                .or_insert_with(|| hold_reason(&self.store, &w.tenant_id, now))
                .clone();
            let expired = now > w.expires_at_ms;
            if hold.is_some() && !expired {
                still_waiting.push_back(w);
                continue;
            }
            if expired {
                match self.store.job(&w.tenant_id, &w.job_id) {
                    Ok(Some(job)) if job.status == JobStatus::Queued => {
                        let reason = match hold {
                            Some(r) => format!("not printed before it expired: {r}"),
                            None => {
                                "no verified printer of the pool took the job before it expired"
                                    .to_owned()
                            }
                        };
                        self.fail(job, &reason);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(job = %w.job_id, error = %e, "job not readable; retrying later");
                        still_waiting.push_back(w);
                    }
                }
                continue;
            }
            let key = (w.tenant_id.clone(), w.pool.clone(), w.printer.clone());
            if w.excluded.is_empty() && nothing_for.contains(&key) {
                still_waiting.push_back(w);
                continue;
            }
            let want = Want {
                tenant_id: &w.tenant_id,
                pool: w.pool.as_deref(),
                printer: w.printer.as_deref(),
                excluded: &w.excluded,
                backoff_over: now.saturating_sub(w.updated_at_ms) >= self.cfg.retry_backoff_ms,
            };
            let Some(choice) = self.fleet.choose(&want, &self.cfg, now) else {
                if w.excluded.is_empty() {
                    nothing_for.insert(key);
                }
                still_waiting.push_back(w);
                continue;
            };
            match self.store.job(&w.tenant_id, &w.job_id) {
                Ok(Some(job)) if job.status == JobStatus::Queued => {
                    self.send(job, choice, now);
                    sent += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(job = %w.job_id, error = %e, "job not readable; retrying later");
                    still_waiting.push_back(w);
                }
            }
        }
        self.queue = still_waiting;
        self.backlog
            .queued
            .store(self.queue.len(), Ordering::Relaxed);
        if sent > 0 {
            // The requests only leave when the swarm is next polled: make every `dispatched`
            // state durable first, so a restart never sends a job a second time.
            if let Err(e) = self.store.flush() {
                warn!(error = %e, "store flush failed");
            }
        }
    }

    fn send(&mut self, mut job: JobRecord, choice: Choice, now: u64) {
        let _span = info_span!("job", job = %job.id).entered();
        let Some(agent) = self.fleet.agent(&choice.device_id).cloned() else {
            return self.queue.push_back(Waiting::of(&job));
        };
        // The send path checks revocation itself: the device, and the relay on the way.
        let relay_revoked = match choice.route {
            Route::Relay(peer) => self
                .peers
                .get(&peer)
                .is_none_or(|v| self.is_revoked(&v.device_id)),
            Route::Direct(_) => false,
        };
        if self.is_revoked(&agent.device_id) || relay_revoked {
            warn!(device = %agent.device_id, "job not sent: the device or its relay is revoked");
            self.fleet.remove(&agent.device_id);
            return self.queue.push_back(Waiting::of(&job));
        }
        let label = match self.store.label(&job.tenant_id, &job.id) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "label unreadable");
                return self.fail(job, "label no longer available");
            }
        };
        let deadline_ms = now + self.cfg.attempt_window_ms;
        let header = JobHeader {
            job_id: job.id.clone(),
            tenant_id: job.tenant_id.clone(),
            site_id: agent.site_id.clone(),
            device_id: agent.device_id.clone(),
            printer: choice.printer_name.clone(),
            deadline_ms,
            attempt: job.attempts + 1,
        };
        let sealed = match seal(
            header,
            job.format,
            &label,
            self.identity.x25519_secret(),
            &agent.x25519_public,
        ) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "label not sealed");
                return self.fail(job, "label could not be sealed");
            }
        };
        drop(label);
        let envelope = match sealed.digest() {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "sealed label has no digest");
                return self.fail(job, "label could not be sealed");
            }
        };
        let request = match choice.route {
            Route::Direct(peer) => self
                .swarm
                .behaviour_mut()
                .rr
                .send_request(&peer, Request::Job(sealed)),
            Route::Relay(peer) => self.swarm.behaviour_mut().rr.send_request(
                &peer,
                Request::Forward(Forward {
                    device_id: agent.device_id.clone(),
                    job: sealed,
                }),
            ),
        };
        job.status = JobStatus::Dispatched;
        job.printer = Some(choice.printer_id.clone());
        job.agent = Some(choice.device_id.clone());
        job.attempts += 1;
        job.attempt_deadline_ms = Some(deadline_ms);
        job.updated_at_ms = now;
        if let Err(e) = self.store.update_job(&job) {
            // The request is already out; keep tracking it in memory.
            warn!(error = %e, "job state not stored");
        }
        debug!(printer = %choice.printer_id, route = ?choice.route, attempt = job.attempts, "job sent");
        self.fleet.begin(&choice.printer_id);
        self.requests.insert(request, job.id.clone());
        self.attempts.insert(
            job.id.clone(),
            Attempt {
                tenant_id: job.tenant_id,
                printer_id: choice.printer_id,
                device_id: choice.device_id,
                expect: Some((agent.ed25519_public, envelope)),
                direct: matches!(choice.route, Route::Direct(_)),
                dispatched_at_ms: now,
                deadline_ms,
                request: Some(request),
                attempt: job.attempts,
                counted: true,
            },
        );
    }

    /// An answer (or a failure) for a job request.
    fn on_answer(&mut self, request: OutboundRequestId, answer: Result<Response, OutboundFailure>) {
        let Some(job_id) = self.requests.remove(&request) else {
            return;
        };
        let Some(a) = self.attempts.get(&job_id) else {
            return;
        };
        let direct = a.direct;
        let outcome = match answer {
            Ok(Response::Outcome(signed)) => self.check_outcome(&job_id, &signed),
            // The device's own refusal over its own authenticated connection: it did not
            // take the job. The same words from a relay prove nothing (it may have delivered
            // the job): the answer is then lost, and the device's receipts settle it.
            Ok(Response::Error {
                code: ErrorCode::Unreachable | ErrorCode::Unavailable,
                message,
            }) if direct => Ok(JobOutcome::NotPrinted {
                job_id: job_id.clone(),
                reason: message,
            }),
            Err(OutboundFailure::DialFailure | OutboundFailure::UnsupportedProtocols) => {
                Ok(JobOutcome::NotPrinted {
                    job_id: job_id.clone(),
                    reason: "not delivered: agent unreachable".into(),
                })
            }
            Ok(other) => Err(format!(
                "unexpected answer {:?}",
                std::mem::discriminant(&other)
            )),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = &outcome {
            // Delivery unknown: wait for the agent's receipts (see `dispatch`).
            debug!(job = %job_id, %reason, "answer lost; waiting for receipts");
            if let Some(a) = self.attempts.get_mut(&job_id) {
                a.request = None;
                if a.counted {
                    a.counted = false;
                    self.fleet.end(&a.printer_id);
                }
            }
            return;
        }
        self.finish_attempt(&job_id, outcome);
    }

    /// The outcome of an attempt when it is signed by the device the job was sealed to, over
    /// the envelope sent; otherwise why not (the answer then counts as lost).
    fn check_outcome(&self, job_id: &str, signed: &SignedOutcome) -> Result<JobOutcome, String> {
        let Some(a) = self.attempts.get(job_id) else {
            return Err("no attempt out".into());
        };
        let Some((device_key, envelope)) = &a.expect else {
            return Err("attempt of a previous process".into());
        };
        let expect = OutcomeExpectation {
            job_id,
            attempt: a.attempt,
            device_id: &a.device_id,
            device_key,
            envelope,
        };
        match signed.verify(&expect) {
            Ok(outcome) => Ok(outcome.clone()),
            Err(e) => {
                warn!(job = %job_id, device = %a.device_id, error = %e, "outcome refused: not signed by the device for this attempt");
                self.audit(
                    Some(&a.tenant_id),
                    &a.device_id,
                    "label.outcome_refused",
                    Some(job_id),
                    &e.to_string(),
                );
                Err(e.to_string())
            }
        }
    }

    fn finish_attempt(&mut self, job_id: &str, outcome: Result<JobOutcome, String>) {
        let Ok(outcome) = outcome else {
            return;
        };
        let Some(attempt) = self.attempts.remove(job_id) else {
            return;
        };
        if let Some(r) = attempt.request {
            self.requests.remove(&r);
        }
        if attempt.counted {
            self.fleet.end(&attempt.printer_id);
        }
        let mut job = match self.store.job(&attempt.tenant_id, job_id) {
            Ok(Some(j)) => j,
            _ => return,
        };
        if job.status != JobStatus::Dispatched {
            return;
        }
        let now = now_ms();
        match outcome {
            JobOutcome::Printed { printer, .. } => {
                job.printer = Some(printer_id(&attempt.device_id, &printer));
                self.mark_printed(&mut job);
            }
            JobOutcome::NotPrinted { reason, .. } => {
                info!(job = %job_id, printer = %attempt.printer_id, %reason, "not printed; choosing another printer");
                job.status = JobStatus::Queued;
                job.excluded_printers.retain(|p| p != &attempt.printer_id);
                job.excluded_printers.push(attempt.printer_id);
                job.error = Some(reason);
                job.updated_at_ms = now;
                if let Err(e) = self.store.update_job(&job) {
                    warn!(error = %e, "job state not stored");
                }
                self.queue.push_front(Waiting::of(&job));
            }
            JobOutcome::InDoubt { reason, .. } => {
                warn!(job = %job_id, %reason, "job in doubt; an operator decides");
                job.status = JobStatus::InDoubt;
                job.error = Some(reason.clone());
                job.updated_at_ms = now;
                if let Err(e) = self.store.update_job(&job) {
                    warn!(error = %e, "job state not stored");
                }
                self.audit(
                    Some(&job.tenant_id),
                    "coordinator",
                    "label.in_doubt",
                    Some(&job.id),
                    &reason,
                );
                self.in_doubt.insert(
                    job.id.clone(),
                    Doubt {
                        tenant_id: job.tenant_id.clone(),
                        device_id: attempt.device_id,
                        attempt: attempt.attempt,
                        unheard: None,
                    },
                );
            }
        }
    }

    fn mark_printed(&mut self, job: &mut JobRecord) {
        job.status = JobStatus::Printed;
        job.error = None;
        job.updated_at_ms = now_ms();
        if let Err(e) = self.store.update_job(job) {
            warn!(error = %e, "job state not stored");
        }
        if let Err(e) = self.store.delete_label(&job.tenant_id, &job.id) {
            warn!(error = %e, "printed label not deleted");
        }
        info!(job = %job.id, printer = ?job.printer, attempts = job.attempts, "printed");
        let actor = job.agent.clone().unwrap_or_else(|| "coordinator".into());
        self.audit(
            Some(&job.tenant_id),
            &actor,
            "label.printed",
            Some(&job.id),
            "ok",
        );
    }

    fn fail(&mut self, mut job: JobRecord, reason: &str) {
        warn!(job = %job.id, %reason, "job failed");
        job.status = JobStatus::Failed;
        job.error = Some(reason.to_owned());
        job.updated_at_ms = now_ms();
        if let Err(e) = self.store.update_job(&job) {
            warn!(error = %e, "job state not stored");
        }
        if let Err(e) = self.store.delete_label(&job.tenant_id, &job.id) {
            warn!(error = %e, "failed job's label not deleted");
        }
        self.audit(
            Some(&job.tenant_id),
            "coordinator",
            "label.failed",
            Some(&job.id),
            reason,
        );
    }
}

/// Why the queued jobs of `tenant_id` must not be printed now (the tenant is suspended, its
/// subscription lapsed, a compliance requirement or an alert restricts it), or `None`. Jobs
/// accepted before that stay queued until it is lifted or they expire. Read afresh on every
/// dispatch pass, so a suspension holds the very next job. A store error holds nothing: the
/// gates at submission still ran.
fn hold_reason(store: &Store, tenant_id: &str, now: u64) -> Option<String> {
    let tenant = match store.tenant(tenant_id) {
        Ok(Some(t)) => t,
        Ok(None) => return Some("the tenant no longer exists".into()),
        Err(e) => {
            warn!(tenant = %tenant_id, error = %e, "tenant not readable; not holding its jobs");
            return None;
        }
    };
    let gate = crate::core::compliance::label_gate(
        tenant.suspension.as_ref(),
        tenant.subscription.state,
        tenant.attestation.as_ref(),
        &tenant.tier,
        now,
    );
    match gate {
        Err(crate::core::compliance::GateRefusal::Suspended(_)) => {
            return Some("the tenant is suspended".into())
        }
        Err(crate::core::compliance::GateRefusal::SubscriptionInactive(_)) => {
            return Some("the subscription is not active".into())
        }
        Err(crate::core::compliance::GateRefusal::Restricted(reason)) => return Some(reason),
        Ok(_) => {}
    }
    match store.restriction(tenant_id) {
        Ok(Some(_)) => Some("the tenant is restricted by an alert".into()),
        _ => None,
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
    }
}
