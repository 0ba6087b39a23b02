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
//! job it opened ([`SignedOutcome`](sealprint_protocol::SignedOutcome), over the envelope's digest) and answers an envelope that
//! does not open with a refusal that settles nothing and leaves no receipt; it applies a
//! heartbeat reply only when the coordinator signed it for this device and for a heartbeat
//! it sent and has not had answered ([`SignedReply`](sealprint_protocol::SignedReply)), and keeps the signed revocation list
//! on disk ([`crate::revocations`]).
//!
//! What it does not do: talk to printers (see [`crate::station`]) or decide where a job goes
//! (the coordinator does).
//!
//! This file holds the endpoint's state and its event loop; the handlers live in
//! `links` (connections and discovery), `admission` (verifying site peers), `routing`
//! (requests and answers), `jobs` (opening and printing jobs), `heartbeat`, and `versions`
//! (the coordinator's minimum version, logged once per change), `updates` (remote updates:
//! offer, chunks, checks, drain, install; the loop then ends so `run` starts the trial).

mod admission;
mod heartbeat;
mod jobs;
mod links;
mod routing;
mod snapshot;
mod updates;
mod versions;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use sealprint_mesh::{build_swarm, AdmissionLimits, Behaviour, SwarmOptions};
use sealprint_protocol::{Certificate, ErrorCode, JobOutcome, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::identity::DeviceIdentity;
use crate::receipts::Receipts;
use crate::revocations::Revocations;
use crate::sequence::HeartbeatCounter;
use crate::station::Station;
use crate::AgentError;

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
    /// How remote updates are taken.
    pub update: crate::update::UpdatePolicy,
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
    /// Where `/metrics` is served (`--metrics-listen`), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

pub(super) enum Peer {
    Unverified,
    Verified {
        device_id: String,
        serial: u64,
        has_uplink: bool,
    },
}

pub(super) enum Pending {
    Hello(PeerId),
    Heartbeat,
    RelayedHeartbeat,
    Forward(ResponseChannel<Response>),
    Relay(ResponseChannel<Response>),
    UpdateOffer,
    /// A chunk of this many bytes was asked for.
    UpdateChunk(u32),
    UpdateReport(sealprint_protocol::UpdateStep),
}

pub(super) struct Finished {
    channel: ResponseChannel<Response>,
    attempt: u32,
    /// Digest of the envelope that was opened: the signed outcome names it.
    envelope: [u8; 32],
    outcome: JobOutcome,
}

pub(super) struct EventLoop {
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
    /// The site peer (device id) the last heartbeat went through, when it was relayed.
    relay: Option<String>,
    /// When the coordinator last acknowledged a heartbeat (unix ms), and its clock minus ours.
    last_ack_ms: Option<u64>,
    clock_offset_ms: Option<i64>,
    /// This agent against the coordinator's version requirement, from the last reply.
    versions: Option<crate::versions::Standing>,
    /// The requirement text of the last reply, so a change is judged and logged once.
    requirement_text: Option<String>,
    receipts: Receipts,
    pending: HashMap<OutboundRequestId, Pending>,
    finished_tx: mpsc::Sender<Finished>,
    finished_rx: mpsc::Receiver<Finished>,
    in_flight: usize,
    started: Instant,
    shutting_down: bool,
    /// Remote updates: the policy, where an update stands, versions refused in this run, what
    /// is kept on disk, and whether the trial's acknowledgement was written.
    policy: crate::update::UpdatePolicy,
    update: updates::Progress,
    update_refused: std::collections::HashSet<String>,
    update_state: crate::update::UpdateState,
    update_note_logged: bool,
    trial_acked: bool,
}

/// Builds the swarm, starts listening, and returns what it listens on plus the event loop to
/// run (until `shutdown`, then it drains in-flight jobs). The loop's output is the version it
/// installed when it stopped for a remote update (the caller then runs the trial).
///
/// # Errors
/// [`AgentError`] when the swarm cannot be built or a listen address cannot be bound.
pub async fn start(
    id: DeviceIdentity,
    station: Station,
    opts: MeshOptions,
    shutdown: CancellationToken,
) -> Result<(Ready, impl std::future::Future<Output = Option<String>>), AgentError> {
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
        metrics: None,
    };
    let revocations = Revocations::load(
        &opts.data_dir,
        &id.ca_public.to_bytes(),
        &id.certificate.body.tenant_id,
    )?;
    let counter = HeartbeatCounter::load(&opts.data_dir)?;
    let (finished_tx, finished_rx) = mpsc::channel(256);
    let static_peers = opts.peers.iter().map(|a| (a.clone(), None)).collect();
    let opts_data_dir = opts.data_dir.clone();
    let update_policy = opts.update.clone();
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
        relay: None,
        last_ack_ms: None,
        clock_offset_ms: None,
        versions: None,
        requirement_text: None,
        receipts: Receipts::default(),
        pending: HashMap::new(),
        finished_tx,
        finished_rx,
        in_flight: 0,
        started: Instant::now(),
        shutting_down: false,
        update_state: updates::load_state(&opts_data_dir),
        policy: update_policy,
        update: updates::Progress::Idle,
        update_refused: std::collections::HashSet::new(),
        update_note_logged: false,
        trial_acked: false,
    };
    let span = info_span!("agent", device = %ready.device_id);
    Ok((ready, ev.run(shutdown).instrument(span)))
}

impl EventLoop {
    async fn run(mut self, shutdown: CancellationToken) -> Option<String> {
        let mut heartbeat = tokio::time::interval(self.opts.heartbeat_interval);
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        self.dial_missing();
        loop {
            if self.shutting_down && self.in_flight == 0 {
                break;
            }
            self.apply_when_drained();
            if self.restart_due().is_some() {
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
                    self.write_status(true);
                }
                _ = redial.tick() => self.dial_missing(),
                _ = tokio::time::sleep(Duration::from_millis(100)), if self.updating() => {}
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
        self.write_status(false);
        let restart = self.restart_due();
        if restart.is_none() {
            info!("agent stopped");
        }
        restart
    }
}

pub(super) fn refuse(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_owned(),
    }
}
