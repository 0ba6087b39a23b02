//! The agent's mesh endpoint: one event loop that owns the libp2p `Swarm`.
//!
//! It keeps the uplink to the pinned coordinator (when this station has one), joins the site
//! mesh (static peers and mDNS), and verifies every site peer's certificate (same CA, tenant
//! and site, unexpired, device not revoked, issued for the key the connection authenticated)
//! before it accepts any other message from it. It opens sealed jobs in memory and hands them
//! to one printer, relays heartbeats for peers without an uplink, forwards jobs the
//! coordinator routes through it, and sends heartbeats.
//!
//! What a relaying peer carries is checked end to end: this agent signs the outcome of every
//! job it opened ([`SignedOutcome`], over the envelope's digest) and answers an envelope that
//! does not open with a refusal that settles nothing and leaves no receipt; it applies a
//! heartbeat reply only when the coordinator signed it for this device and for a heartbeat
//! it sent and has not had answered ([`SignedReply`]), and keeps the signed revocation list
//! on disk ([`crate::revocations`]).
//!
//! What it does not do: talk to printers (see [`crate::station`]) or decide where a job goes
//! (the coordinator does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{
    self, Message, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{mdns, Multiaddr, PeerId, Swarm};
use sealprint_mesh::{
    build_swarm, ed25519_of_peer, AdmissionLimits, Behaviour, BehaviourEvent, SwarmOptions,
};
use sealprint_protocol::{
    open, Certificate, CertificateBody, ErrorCode, Expectation, Heartbeat, Hello, JobOutcome,
    MeshPeerReport, OutcomeStatement, RelayReply, Relayed, Request, Response, SealedJob,
    SignedOutcome, SignedReply,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::identity::{write_private, DeviceIdentity};
use crate::printer::PrintError;
use crate::receipts::{JobState, Receipts};
use crate::revocations::Revocations;
use crate::sequence::HeartbeatCounter;
use crate::station::Station;
use crate::{now_ms, AgentError, VERSION};

/// Established inbound mesh connections (site peers) an agent accepts. The agent's systemd
/// unit sets `LimitNOFILE=4096` to stay above it plus handshakes, printers and files.
pub const MAX_INCOMING: u32 = 1024;

/// How the mesh endpoint runs.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// Listen multiaddrs for site peers.
    pub listen: Vec<Multiaddr>,
    /// Static site peers.
    pub peers: Vec<Multiaddr>,
    /// Dial the coordinator directly.
    pub uplink: bool,
    /// Discover site peers with mDNS.
    pub mdns: bool,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// How long in-flight jobs may take to finish at shutdown.
    pub drain_grace: Duration,
    /// Where a renewed certificate is saved.
    pub data_dir: PathBuf,
    /// The station's compliance findings at start (print-to-file queues and the like).
    pub findings: Vec<String>,
}

/// What the endpoint reports once it listens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ready {
    /// The device id.
    pub device_id: String,
    /// The libp2p PeerId.
    pub peer_id: String,
    /// The multiaddrs it listens on.
    pub listen: Vec<String>,
}

enum Peer {
    Unverified,
    Verified {
        device_id: String,
        serial: u64,
        has_uplink: bool,
    },
}

enum Pending {
    Hello(PeerId),
    Heartbeat,
    RelayedHeartbeat,
    Forward(ResponseChannel<Response>),
    Relay(ResponseChannel<Response>),
}

struct Finished {
    channel: ResponseChannel<Response>,
    attempt: u32,
    /// Digest of the envelope that was opened: the signed outcome names it.
    envelope: [u8; 32],
    outcome: JobOutcome,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// The station's compliance findings (from `doctor`), reported in every heartbeat.
    findings: Vec<String>,
    id: Arc<DeviceIdentity>,
    /// The current certificate (renewed over the uplink; starts as the enrolled one).
    certificate: Certificate,
    data_dir: PathBuf,
    station: Station,
    opts: MeshOptions,
    coordinator: PeerId,
    coordinator_addrs: Vec<Multiaddr>,
    uplink_ready: bool,
    /// When the coordinator last answered over the uplink (a hello or a heartbeat).
    uplink_heard: Instant,
    peers: HashMap<PeerId, Peer>,
    static_peers: HashMap<Multiaddr, Option<PeerId>>,
    /// Site peers found by mDNS and not expired, with their addresses: redialled while not
    /// connected (a first dial can fail, e.g. when both peers dial each other at once).
    discovered: HashMap<PeerId, Vec<Multiaddr>>,
    /// The tenant's revoked devices, as the coordinator last signed them (kept on disk).
    revocations: Revocations,
    /// Heartbeat counters, growing across restarts.
    counter: HeartbeatCounter,
    /// The counter of the last heartbeat sent, and of the last one whose reply was applied:
    /// a reply is applied only for a counter between the two (never twice, never unasked).
    sent_seq: u64,
    applied_seq: u64,
    receipts: Receipts,
    pending: HashMap<OutboundRequestId, Pending>,
    finished_tx: mpsc::Sender<Finished>,
    finished_rx: mpsc::Receiver<Finished>,
    in_flight: usize,
    started: Instant,
    shutting_down: bool,
}

/// Builds the swarm, starts listening, and returns what it listens on plus the event loop to
/// run (until `shutdown`, then it drains in-flight jobs).
///
/// # Errors
/// [`AgentError`] when the swarm cannot be built or a listen address cannot be bound.
pub async fn start(
    id: DeviceIdentity,
    station: Station,
    opts: MeshOptions,
    shutdown: CancellationToken,
) -> Result<(Ready, impl std::future::Future<Output = ()>), AgentError> {
    let id = Arc::new(id);
    let swarm_opts = SwarmOptions {
        mdns: opts.mdns,
        // A station talks to a handful of site peers: keep the file limit of its systemd
        // unit (LimitNOFILE, deploy/systemd) well above these.
        max_established_incoming: MAX_INCOMING,
        max_pending_incoming: 64,
        admission: AdmissionLimits {
            max_unverified: 64,
            ..AdmissionLimits::default()
        },
        ..SwarmOptions::default()
    };
    let mut swarm = build_swarm(id.keys.libp2p_keypair(), &swarm_opts)
        .map_err(|e| AgentError::Mesh(e.to_string()))?;
    for addr in &opts.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| AgentError::Mesh(format!("cannot listen on {addr}: {e}")))?;
    }
    let mut listen = Vec::new();
    // Wait for the first bound address, so port 0 can be reported.
    while listen.is_empty() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => listen.push(address.to_string()),
            SwarmEvent::ListenerError { error, .. } => {
                return Err(AgentError::Mesh(format!("listener failed: {error}")))
            }
            _ => {}
        }
    }
    let coordinator: PeerId = id
        .coordinator
        .peer_id
        .parse()
        .map_err(|_| AgentError::Mesh("pinned coordinator peer id is invalid".into()))?;
    // The coordinator is pinned by its PeerId (Noise authenticates it): no hello needed.
    swarm.behaviour_mut().admission.trust(coordinator);
    let coordinator_addrs = id
        .coordinator
        .addrs
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .collect::<Vec<_>>();
    let ready = Ready {
        device_id: id.device_id().to_owned(),
        peer_id: swarm.local_peer_id().to_string(),
        listen,
    };
    let revocations = Revocations::load(
        &opts.data_dir,
        &id.ca_public.to_bytes(),
        &id.certificate.body.tenant_id,
    )?;
    let counter = HeartbeatCounter::load(&opts.data_dir)?;
    let (finished_tx, finished_rx) = mpsc::channel(256);
    let static_peers = opts.peers.iter().map(|a| (a.clone(), None)).collect();
    let ev = EventLoop {
        swarm,
        findings: opts.findings.clone(),
        certificate: id.certificate.clone(),
        data_dir: opts.data_dir.clone(),
        id,
        station,
        opts,
        coordinator,
        coordinator_addrs,
        uplink_ready: false,
        uplink_heard: Instant::now(),
        peers: HashMap::new(),
        static_peers,
        discovered: HashMap::new(),
        revocations,
        counter,
        sent_seq: 0,
        applied_seq: 0,
        receipts: Receipts::default(),
        pending: HashMap::new(),
        finished_tx,
        finished_rx,
        in_flight: 0,
        started: Instant::now(),
        shutting_down: false,
    };
    let span = info_span!("agent", device = %ready.device_id);
    Ok((ready, ev.run(shutdown).instrument(span)))
}

impl EventLoop {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut heartbeat = tokio::time::interval(self.opts.heartbeat_interval);
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        self.dial_missing();
        loop {
            if self.shutting_down && self.in_flight == 0 {
                break;
            }
            let drain_sleep = async {
                match drain_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(done) = self.finished_rx.recv() => self.on_finished(done),
                _ = heartbeat.tick() => {
                    let station = self.station.clone();
                    tokio::spawn(async move { station.probe_all().await });
                    self.check_uplink();
                    self.send_heartbeat();
                }
                _ = redial.tick() => self.dial_missing(),
                _ = shutdown.cancelled(), if !self.shutting_down => {
                    info!(in_flight = self.in_flight, "shutting down: refusing new jobs, draining");
                    self.shutting_down = true;
                    drain_deadline = Some(tokio::time::Instant::now() + self.opts.drain_grace);
                }
                _ = drain_sleep => {
                    warn!(in_flight = self.in_flight, "drain grace over; jobs in flight stay in doubt");
                    break;
                }
            }
        }
        // A last heartbeat carries the receipts of the jobs finished while draining.
        self.send_heartbeat();
        let flush = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(flush);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = &mut flush => break,
            }
        }
        info!("agent stopped");
    }

    /// A cut uplink can leave its TCP connection open for minutes: when the coordinator has
    /// answered nothing for three heartbeats (at least 5 s), the uplink counts as lost, the
    /// connection is dropped and redialled, and heartbeats go through a site peer meanwhile.
    fn check_uplink(&mut self) {
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

    fn dial_missing(&mut self) {
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

    fn own_hello(&self) -> Hello {
        Hello {
            certificate: self.certificate.encode(),
            has_uplink: self.uplink_ready,
        }
    }

    fn request(&mut self, peer: PeerId, req: Request, pending: Pending) {
        let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
        self.pending.insert(id, pending);
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, resp: Response) {
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

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
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

    fn on_rr(&mut self, ev: request_response::Event<Request, Response>) {
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

    /// Verifies a site peer's certificate against the key its connection authenticated.
    fn verify_peer(&self, peer: &PeerId, cert_bytes: &[u8]) -> Result<Certificate, String> {
        let key = ed25519_of_peer(peer).map_err(|e| e.to_string())?;
        let cert = Certificate::decode(cert_bytes).map_err(|e| e.to_string())?;
        cert.check_key(&key).map_err(|e| e.to_string())?;
        let own = &self.id.certificate.body;
        let revoked = |b: &CertificateBody| self.revocations.contains(&b.device_id);
        let expect = Expectation {
            tenant_id: &own.tenant_id,
            site_id: Some(&own.site_id),
            is_revoked: &revoked,
        };
        cert.verify(&self.id.ca_public, &expect, now_ms() / 1000)
            .map_err(|e| e.to_string())?;
        Ok(cert)
    }

    fn accept_hello(&mut self, peer: PeerId, hello: &Hello) -> bool {
        match self.verify_peer(&peer, &hello.certificate) {
            Ok(cert) => {
                let was_verified = matches!(self.peers.get(&peer), Some(Peer::Verified { .. }));
                if !was_verified {
                    info!(%peer, device = %cert.body.device_id, "site peer verified");
                }
                self.swarm.behaviour_mut().admission.verify(peer);
                self.peers.insert(
                    peer,
                    Peer::Verified {
                        device_id: cert.body.device_id,
                        serial: cert.body.serial,
                        has_uplink: hello.has_uplink,
                    },
                );
                true
            }
            Err(reason) => {
                warn!(%peer, %reason, "peer certificate refused; disconnecting");
                self.swarm.behaviour_mut().admission.refuse(peer);
                false
            }
        }
    }

    fn verified_peer(&self, peer: &PeerId) -> Option<(&str, u64)> {
        match self.peers.get(peer) {
            Some(Peer::Verified {
                device_id, serial, ..
            }) => Some((device_id, *serial)),
            _ => None,
        }
    }

    fn on_request(&mut self, peer: PeerId, req: Request, channel: ResponseChannel<Response>) {
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

    fn accept_job(&mut self, sealed: SealedJob, channel: ResponseChannel<Response>) {
        let header = sealed.header.clone();
        let _span = info_span!("job", job = %header.job_id, attempt = header.attempt).entered();
        let now = now_ms();
        // Only an envelope that opens says anything about a job: its header (job, attempt,
        // device, printer, deadline) is then the coordinator's. Anything else is refused and
        // leaves no receipt, so a peer cannot settle, or crowd out, another job's receipt.
        let label = match open(
            &sealed,
            &self.id.keys.x25519_secret,
            &self.id.coordinator_x25519,
            self.id.device_id(),
            now,
        ) {
            Ok(label) => label,
            Err(e) => {
                warn!(error = %e, "sealed job refused");
                return self.respond(
                    channel,
                    refuse(ErrorCode::BadRequest, &format!("envelope refused: {e}")),
                );
            }
        };
        let envelope = match sealed.digest() {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "sealed job refused");
                return self.respond(channel, refuse(ErrorCode::BadRequest, "envelope refused"));
            }
        };
        drop(sealed);
        match self.receipts.state(&header.job_id) {
            Some(JobState::InProgress { .. }) => {
                return self.respond(
                    channel,
                    refuse(ErrorCode::BadRequest, "job already in progress"),
                );
            }
            Some(JobState::Done { attempt, signed }) => {
                let retry_allowed =
                    matches!(signed.statement.outcome, JobOutcome::NotPrinted { .. })
                        && header.attempt > *attempt;
                if !retry_allowed {
                    // A repeat (replay or lost answer): answer what happened, never print again.
                    let signed = signed.clone();
                    return self.respond(channel, Response::Outcome(signed));
                }
            }
            None => {}
        }
        if self.shutting_down {
            let outcome = not_printed(&header.job_id, "agent is shutting down");
            return self.settle(channel, header.attempt, envelope, outcome);
        }
        let Some(printer) = self.station.get(&header.printer) else {
            let outcome = not_printed(&header.job_id, "no printer of that name on this station");
            return self.settle(channel, header.attempt, envelope, outcome);
        };
        self.receipts.start(&header.job_id, header.attempt);
        self.in_flight += 1;
        let tx = self.finished_tx.clone();
        let station = self.station.clone();
        let span = info_span!("print", job = %header.job_id, printer = %header.printer);
        tokio::spawn(
            async move {
                let outcome = {
                    let mut printer = printer.lock().await;
                    let result = printer
                        .print_before(label.format, &label.data, header.deadline_ms)
                        .await;
                    station.update(printer.last_report().clone());
                    match result {
                        Ok(()) => {
                            info!(bytes = label.data.len(), "printed");
                            JobOutcome::Printed {
                                job_id: header.job_id.clone(),
                                printer: header.printer.clone(),
                            }
                        }
                        Err(PrintError::NotPrinted(reason)) => {
                            warn!(%reason, "not printed");
                            not_printed(&header.job_id, &reason)
                        }
                        Err(PrintError::InDoubt(reason)) => {
                            warn!(%reason, "print in doubt");
                            JobOutcome::InDoubt {
                                job_id: header.job_id.clone(),
                                reason,
                            }
                        }
                    }
                };
                // The label's bytes are wiped here (Zeroizing), before the answer goes out.
                drop(label);
                let done = Finished {
                    channel,
                    attempt: header.attempt,
                    envelope,
                    outcome,
                };
                if tx.send(done).await.is_err() {
                    debug!("event loop gone before the outcome was recorded");
                }
            }
            .instrument(span),
        );
    }

    fn on_finished(&mut self, done: Finished) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.settle(done.channel, done.attempt, done.envelope, done.outcome);
    }

    /// Signs the outcome of an attempt whose envelope opened, keeps it as the receipt, and
    /// answers it.
    fn settle(
        &mut self,
        channel: ResponseChannel<Response>,
        attempt: u32,
        envelope: [u8; 32],
        outcome: JobOutcome,
    ) {
        let statement = OutcomeStatement {
            attempt,
            device_id: self.id.device_id().to_owned(),
            outcome,
            envelope,
        };
        match SignedOutcome::sign(statement, &self.id.keys.signing_key()) {
            Ok(signed) => {
                self.receipts.finish(signed.clone(), now_ms());
                self.respond(channel, Response::Outcome(signed));
            }
            Err(e) => {
                warn!(error = %e, "outcome not signed");
                self.respond(channel, refuse(ErrorCode::Internal, "outcome not signed"));
            }
        }
    }

    fn on_response(&mut self, id: OutboundRequestId, resp: Response) {
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
                self.apply_reply(reply)
            }
            (Pending::RelayedHeartbeat, Response::Relayed(RelayReply::HeartbeatReply(reply))) => {
                self.apply_reply(reply)
            }
            (Pending::Forward(ch), resp) | (Pending::Relay(ch), resp) => self.respond(ch, resp),
            (_, Response::Error { code, message }) => {
                warn!(?code, %message, "request refused");
            }
            (_, other) => debug!(?other, "unexpected response"),
        }
    }

    fn on_failure(&mut self, peer: PeerId, id: OutboundRequestId, error: OutboundFailure) {
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
            _ => debug!(%peer, %error, "request failed"),
        }
    }

    /// Applies a heartbeat reply, after checking that the coordinator signed it for this
    /// device and for a heartbeat sent and not answered yet: a relay can drop or delay it,
    /// but neither write nor replay one.
    fn apply_reply(&mut self, signed: SignedReply) {
        let own = &self.certificate.body;
        let reply = match signed.verify(
            &self.id.ca_public.to_bytes(),
            &own.device_id,
            &own.tenant_id,
            self.applied_seq,
            self.sent_seq,
        ) {
            Ok(r) => r.clone(),
            Err(e) => return warn!(error = %e, "heartbeat reply refused"),
        };
        self.applied_seq = reply.heartbeat_seq;
        match self.revocations.update(&reply.revocations) {
            Ok(true) => info!(
                version = reply.revocations.list.version,
                revoked = reply.revocations.list.devices.len(),
                "revocation list updated"
            ),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "revocation list not saved; applied until restart"),
        }
        if let Some(bytes) = reply.renewed_certificate {
            self.renew(&bytes);
        }
        for accepted in reply.accepted_identities {
            let station = self.station.clone();
            tokio::spawn(async move {
                station.accept(&accepted.printer, &accepted.identity).await;
            });
        }
        let skew = i128::from(reply.now_ms) - i128::from(now_ms());
        if skew.abs() > 2_000 {
            warn!(
                skew_ms = skew as i64,
                "clock differs from the coordinator's"
            );
        }
        let revoked_peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter_map(|(p, s)| match s {
                Peer::Verified { device_id, .. } if self.revocations.contains(device_id) => {
                    Some(*p)
                }
                _ => None,
            })
            .collect();
        for p in revoked_peers {
            warn!(peer = %p, "peer certificate revoked; disconnecting");
            self.peers.remove(&p);
            self.swarm.behaviour_mut().admission.refuse(p);
            let _ = self.swarm.disconnect_peer_id(p);
        }
    }

    /// Takes a renewed certificate from the coordinator after checking it is for this
    /// device's own keys, tenant and site, and saves it.
    fn renew(&mut self, bytes: &[u8]) {
        let cert = match Certificate::decode(bytes) {
            Ok(c) => c,
            Err(e) => return warn!(error = %e, "renewed certificate refused"),
        };
        let own = &self.certificate.body;
        let none = |_: &CertificateBody| false;
        let checked = cert
            .verify(
                &self.id.ca_public,
                &Expectation {
                    tenant_id: &own.tenant_id,
                    site_id: Some(&own.site_id),
                    is_revoked: &none,
                },
                now_ms() / 1000,
            )
            .map_err(|e| e.to_string())
            .and_then(|()| {
                (cert.body.device_id == own.device_id
                    && cert.body.ed25519_public == own.ed25519_public
                    && cert.body.x25519_public == own.x25519_public)
                    .then_some(())
                    .ok_or_else(|| "renewed certificate is for another device".to_owned())
            });
        if let Err(reason) = checked {
            return warn!(%reason, "renewed certificate refused");
        }
        if let Err(e) = write_private(&self.data_dir.join("device.cert"), bytes) {
            warn!(error = %e, "renewed certificate not saved; using it until restart");
        }
        info!(
            serial = cert.body.serial,
            not_after = cert.body.not_after,
            "certificate renewed"
        );
        self.certificate = cert;
    }

    fn announce_uplink(&mut self) {
        let verified: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| matches!(s, Peer::Verified { .. }))
            .map(|(p, _)| *p)
            .collect();
        for p in verified {
            let hello = self.own_hello();
            self.request(p, Request::Hello(hello), Pending::Hello(p));
        }
    }

    fn heartbeat(&self, seq: u64) -> Heartbeat {
        Heartbeat {
            device_id: self.id.device_id().to_owned(),
            seq,
            version: VERSION.to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            clock_ms: now_ms(),
            printers: self.station.reports(),
            peers: self
                .peers
                .values()
                .filter_map(|s| match s {
                    Peer::Verified {
                        device_id,
                        has_uplink,
                        ..
                    } => Some(MeshPeerReport {
                        device_id: device_id.clone(),
                        has_uplink: *has_uplink,
                    }),
                    Peer::Unverified => None,
                })
                .collect(),
            receipts: self.receipts.report(now_ms()),
            findings: self.findings.clone(),
        }
    }

    fn send_heartbeat(&mut self) {
        let seq = match self.counter.issue() {
            Ok(n) => n,
            Err(e) => return warn!(error = %e, "heartbeat counter not reserved; heartbeat skipped"),
        };
        self.sent_seq = seq;
        let hb = self.heartbeat(seq);
        if self.uplink_ready {
            let coordinator = self.coordinator;
            return self.request(coordinator, Request::Heartbeat(hb), Pending::Heartbeat);
        }
        let relay = self.peers.iter().find_map(|(p, s)| match s {
            Peer::Verified {
                has_uplink: true, ..
            } => Some(*p),
            _ => None,
        });
        let Some(relay) = relay else {
            debug!("no uplink and no relay: heartbeat skipped");
            return;
        };
        match Relayed::sign(
            self.id.device_id(),
            &Request::Heartbeat(hb),
            &self.id.keys.signing_key(),
        ) {
            Ok(signed) => self.request(relay, Request::Relay(signed), Pending::RelayedHeartbeat),
            Err(e) => warn!(error = %e, "heartbeat could not be signed for relay"),
        }
    }
}

fn refuse(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_owned(),
    }
}

fn not_printed(job_id: &str, reason: &str) -> JobOutcome {
    JobOutcome::NotPrinted {
        job_id: job_id.to_owned(),
        reason: reason.to_owned(),
    }
}
