//! A rogue site peer for the tests of issue 11: a real station, enrolled with a one-time
//! token like any other and built from the project's own crates (protocol, mesh), that
//! relays for its neighbours and lies.
//!
//! It keeps its own uplink (hello, heartbeats every second, certificate renewals), answers
//! site peers' hellos as a peer with an uplink (so an agent without one relays through it),
//! and then, as [`Tactics`] say: forges the outcomes of jobs the coordinator routes through
//! it (without delivering them, or after delivering them), rewrites or replays the heartbeat
//! replies it carries back. On command ([`Rogue::ask`]) it sends any request to the
//! coordinator or to a site peer (forged envelopes, replayed heartbeats, a revoked
//! certificate's hello). What it saw is in [`Observed`]. It never prints anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt;
use libp2p::request_response::{self, Message, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use rand::RngCore;
use sealprint_mesh::{build_swarm, Behaviour, BehaviourEvent, SwarmOptions};
use sealprint_protocol::{
    Certificate, EnrollRequest, EnrollmentToken, ErrorCode, Heartbeat, Hello, JobOutcome,
    OutcomeStatement, PrintReceipt, RelayReply, Relayed, Request, Response, SignedOutcome,
    SignedReply,
};
use tokio::sync::{mpsc, oneshot};

use crate::mesh_request::ask;

/// What the rogue does with a job the coordinator asks it to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardTactic {
    /// Delivers it and carries the answer back unchanged.
    Honest,
    /// Does not deliver it; answers "printed", signed with its own key.
    ForgePrinted,
    /// Delivers it (the destination prints), then tells the coordinator it was not printed:
    /// in turn a "not printed" signed with its own key, the destination's signed "printed"
    /// rewritten to "not printed", and an "unreachable" refusal.
    DeliverThenDeny,
}

/// What the rogue does with a heartbeat reply it carries back to a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTactic {
    /// Carries it unchanged.
    Honest,
    /// Empties its revocation list and adds an accepted printer identity.
    Rewrite,
    /// Carries back the first reply it ever carried instead of the current one.
    ReplayFirst,
}

/// The rogue's current behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Tactics {
    /// Jobs routed through it.
    pub forward: ForwardTactic,
    /// Replies it carries.
    pub replies: ReplyTactic,
}

/// What the rogue saw and did.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// The neighbours' signed heartbeats it carried, oldest first.
    pub relayed: Vec<Relayed>,
    /// Receipts of the last heartbeat it carried.
    pub last_receipts: Vec<PrintReceipt>,
    /// The replies it carried back, as the coordinator sent them.
    pub replies: Vec<SignedReply>,
    /// Jobs the coordinator asked it to forward.
    pub forwards: usize,
    /// Outcomes it forged or changed.
    pub forged: usize,
}

/// Where a commanded request goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The coordinator (dialled again if the connection was cut).
    Coordinator,
    /// A site peer at this multiaddr (with `/p2p/`), dialled if need be.
    Peer(Multiaddr),
}

type Answer = oneshot::Sender<anyhow::Result<Response>>;

enum Command {
    Ask(Target, Box<Request>, Answer),
    HelloCert(Vec<u8>),
}

/// A handle to the running rogue.
pub struct Rogue {
    /// Its device id.
    pub device_id: String,
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Where it listens, with `/p2p/`.
    pub dial_addr: String,
    /// Every certificate it was issued, oldest first (renewals append).
    pub certificates: Arc<Mutex<Vec<Vec<u8>>>>,
    /// What it does.
    pub tactics: Arc<Mutex<Tactics>>,
    /// What it saw.
    pub observed: Arc<Mutex<Observed>>,
    tx: mpsc::Sender<Command>,
}

enum Pending {
    Ask(Answer),
    Hello,
    Heartbeat,
    Relay(ResponseChannel<Response>),
    Forward {
        channel: ResponseChannel<Response>,
        tactic: ForwardTactic,
        turn: usize,
    },
}

struct State {
    swarm: Swarm<Behaviour>,
    coordinator: PeerId,
    coordinator_addrs: Vec<Multiaddr>,
    key: ed25519_dalek::SigningKey,
    hello_cert: Vec<u8>,
    device_id: String,
    seq: u64,
    devices: HashMap<String, PeerId>,
    pending: HashMap<OutboundRequestId, Pending>,
    dials: HashMap<PeerId, Vec<(Request, Answer)>>,
    first_reply: Option<SignedReply>,
    turn: usize,
    certificates: Arc<Mutex<Vec<Vec<u8>>>>,
    tactics: Arc<Mutex<Tactics>>,
    observed: Arc<Mutex<Observed>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Rogue {
    /// Enrolls with `token`, listens on loopback, says hello to the coordinator and starts
    /// heartbeating; honest until told otherwise.
    pub async fn start(token: &str) -> anyhow::Result<Rogue> {
        let token: EnrollmentToken = token.parse().context("token")?;
        let coordinator: PeerId = token.coordinator_peer_id.parse()?;
        let coordinator_addrs: Vec<Multiaddr> = token
            .coordinator_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(seed)?;
        let mut swarm =
            build_swarm(keypair, &SwarmOptions::default()).map_err(|e| anyhow!("swarm: {e}"))?;
        // A rogue reads whatever anyone sends it: its own admission holds back nobody (the
        // coordinator pinned like a real agent's, every peer it talks to taken as verified).
        swarm.behaviour_mut().admission.trust(coordinator);
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let listen = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        swarm.dial(
            DialOpts::peer_id(coordinator)
                .addresses(coordinator_addrs.clone())
                .build(),
        )?;
        let mut x25519 = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut x25519);
        let enroll = Request::Enroll(EnrollRequest {
            token_secret: token.secret,
            x25519_public: x25519,
            hostname: "rogue".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        });
        let enrolled = match ask_now(&mut swarm, coordinator, enroll).await? {
            Response::Enrolled(e) => e,
            other => bail!("enrollment answered {other:?}"),
        };
        let device_id = Certificate::decode(&enrolled.certificate)?.body.device_id;
        let peer_id = *swarm.local_peer_id();
        let certificates = Arc::new(Mutex::new(vec![enrolled.certificate.clone()]));
        let tactics = Arc::new(Mutex::new(Tactics {
            forward: ForwardTactic::Honest,
            replies: ReplyTactic::Honest,
        }));
        let observed = Arc::new(Mutex::new(Observed::default()));
        let (tx, rx) = mpsc::channel(64);
        let mut state = State {
            swarm,
            coordinator,
            coordinator_addrs,
            key,
            hello_cert: enrolled.certificate,
            device_id: device_id.clone(),
            seq: 0,
            devices: HashMap::new(),
            pending: HashMap::new(),
            dials: HashMap::new(),
            first_reply: None,
            turn: 0,
            certificates: certificates.clone(),
            tactics: tactics.clone(),
            observed: observed.clone(),
        };
        state.send_hello(coordinator);
        tokio::spawn(state.run(rx));
        Ok(Rogue {
            device_id,
            peer_id,
            dial_addr: format!("{listen}/p2p/{peer_id}"),
            certificates,
            tactics,
            observed,
            tx,
        })
    }

    /// Sends `req` to `target` and returns the answer.
    pub async fn ask(&self, target: Target, req: Request) -> anyhow::Result<Response> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Ask(target, Box::new(req), tx))
            .await
            .map_err(|_| anyhow!("rogue task gone"))?;
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| anyhow!("no answer within 30 s"))?
            .map_err(|_| anyhow!("rogue task gone"))?
    }

    /// Presents `cert` in every hello from now on (an older one, say).
    pub async fn present(&self, cert: Vec<u8>) -> anyhow::Result<()> {
        self.tx
            .send(Command::HelloCert(cert))
            .await
            .map_err(|_| anyhow!("rogue task gone"))
    }

    /// Sets what it does.
    pub fn set(&self, forward: ForwardTactic, replies: ReplyTactic) {
        *lock(&self.tactics) = Tactics { forward, replies };
    }

    /// A copy of what it saw.
    pub fn observed(&self) -> Observed {
        lock(&self.observed).clone()
    }
}

/// One request and its answer on a swarm nobody else drives yet (enrollment).
async fn ask_now(
    swarm: &mut Swarm<Behaviour>,
    peer: PeerId,
    req: Request,
) -> anyhow::Result<Response> {
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial: {error}"),
            _ => {}
        }
    }
    ask(swarm, peer, req).await
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl State {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                cmd = rx.recv() => match cmd {
                    Some(Command::Ask(target, req, answer)) => self.on_ask(target, *req, answer),
                    Some(Command::HelloCert(cert)) => self.hello_cert = cert,
                    None => break,
                },
                _ = beat.tick() => self.heartbeat(),
            }
        }
    }

    fn request(&mut self, peer: PeerId, req: Request, pending: Pending) {
        let id = self.swarm.behaviour_mut().rr.send_request(&peer, req);
        self.pending.insert(id, pending);
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, resp: Response) {
        let _ = self.swarm.behaviour_mut().rr.send_response(channel, resp);
    }

    fn send_hello(&mut self, peer: PeerId) {
        let hello = Request::Hello(Hello {
            certificate: self.hello_cert.clone(),
            has_uplink: true,
        });
        self.request(peer, hello, Pending::Hello);
    }

    fn heartbeat(&mut self) {
        if !self.swarm.is_connected(&self.coordinator) {
            return;
        }
        self.seq += 1;
        let hb = Heartbeat {
            device_id: self.device_id.clone(),
            seq: self.seq,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: 1,
            clock_ms: crate::now_ms(),
            printers: vec![],
            peers: vec![],
            receipts: vec![],
            findings: vec![],
        };
        let coordinator = self.coordinator;
        self.request(coordinator, Request::Heartbeat(hb), Pending::Heartbeat);
    }

    fn on_ask(&mut self, target: Target, req: Request, answer: Answer) {
        let (peer, addrs) = match target {
            Target::Coordinator => (self.coordinator, self.coordinator_addrs.clone()),
            Target::Peer(addr) => match peer_of(&addr) {
                Some(p) => (p, vec![addr]),
                None => {
                    let _ = answer.send(Err(anyhow!("address without /p2p/")));
                    return;
                }
            },
        };
        self.swarm.behaviour_mut().admission.trust(peer);
        if self.swarm.is_connected(&peer) {
            return self.request(peer, req, Pending::Ask(answer));
        }
        self.dials.entry(peer).or_default().push((req, answer));
        if let Err(e) = self
            .swarm
            .dial(DialOpts::peer_id(peer).addresses(addrs).build())
        {
            for (_, a) in self.dials.remove(&peer).unwrap_or_default() {
                let _ = a.send(Err(anyhow!("dial: {e}")));
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if peer_id == self.coordinator {
                    self.send_hello(peer_id);
                }
                for (req, answer) in self.dials.remove(&peer_id).unwrap_or_default() {
                    self.request(peer_id, req, Pending::Ask(answer));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p),
                error,
                ..
            } => {
                for (_, a) in self.dials.remove(&p).unwrap_or_default() {
                    let _ = a.send(Err(anyhow!("dial: {error}")));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rr(ev)) => self.on_rr(ev),
            _ => {}
        }
    }

    fn on_rr(&mut self, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            request_response::Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(p) = self.pending.remove(&request_id) {
                    self.on_response(p, response);
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => match self.pending.remove(&request_id) {
                Some(Pending::Ask(a)) => {
                    let _ = a.send(Err(anyhow!("request failed: {error}")));
                }
                Some(Pending::Relay(ch) | Pending::Forward { channel: ch, .. }) => {
                    self.respond(ch, refuse(ErrorCode::Unreachable, "lost"));
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_request(&mut self, peer: PeerId, req: Request, channel: ResponseChannel<Response>) {
        match req {
            Request::Hello(hello) => {
                self.swarm.behaviour_mut().admission.trust(peer);
                if let Ok(cert) = Certificate::decode(&hello.certificate) {
                    self.devices.insert(cert.body.device_id, peer);
                }
                let own = Hello {
                    certificate: self.hello_cert.clone(),
                    has_uplink: true,
                };
                self.respond(channel, Response::Hello(own));
            }
            Request::Relay(relayed) => {
                if let Ok(Request::Heartbeat(hb)) =
                    postcard::from_bytes::<Request>(&relayed.payload)
                {
                    let mut o = lock(&self.observed);
                    o.last_receipts = hb.receipts;
                    o.relayed.push(relayed.clone());
                }
                let coordinator = self.coordinator;
                self.request(
                    coordinator,
                    Request::Relay(relayed),
                    Pending::Relay(channel),
                );
            }
            Request::Forward(fwd) => {
                lock(&self.observed).forwards += 1;
                let tactic = lock(&self.tactics).forward;
                self.turn += 1;
                let turn = self.turn;
                if tactic == ForwardTactic::ForgePrinted {
                    let header = &fwd.job.header;
                    let statement = OutcomeStatement {
                        attempt: header.attempt,
                        device_id: header.device_id.clone(),
                        outcome: JobOutcome::Printed {
                            job_id: header.job_id.clone(),
                            printer: header.printer.clone(),
                        },
                        envelope: fwd.job.digest().unwrap_or_default(),
                    };
                    lock(&self.observed).forged += 1;
                    let resp = match SignedOutcome::sign(statement, &self.key) {
                        Ok(s) => Response::Outcome(s),
                        Err(_) => refuse(ErrorCode::Internal, "x"),
                    };
                    return self.respond(channel, resp);
                }
                match self.devices.get(&fwd.device_id).copied() {
                    Some(p) => self.request(
                        p,
                        Request::Job(fwd.job),
                        Pending::Forward {
                            channel,
                            tactic,
                            turn,
                        },
                    ),
                    None => self.respond(channel, refuse(ErrorCode::Unreachable, "not here")),
                }
            }
            _ => self.respond(channel, refuse(ErrorCode::BadRequest, "rogue says no")),
        }
    }

    fn on_response(&mut self, pending: Pending, resp: Response) {
        match pending {
            Pending::Ask(a) => {
                let _ = a.send(Ok(resp));
            }
            Pending::Hello => {}
            Pending::Heartbeat => {
                if let Response::HeartbeatReply(signed) = resp {
                    if let Some(cert) = signed.reply.renewed_certificate {
                        lock(&self.certificates).push(cert.clone());
                        self.hello_cert = cert;
                    }
                }
            }
            Pending::Relay(channel) => {
                let resp = match resp {
                    Response::Relayed(RelayReply::HeartbeatReply(signed)) => {
                        lock(&self.observed).replies.push(signed.clone());
                        let first = self.first_reply.get_or_insert_with(|| signed.clone());
                        let carried = match lock(&self.tactics).replies {
                            ReplyTactic::Honest => signed,
                            ReplyTactic::ReplayFirst => first.clone(),
                            ReplyTactic::Rewrite => {
                                let mut s = signed;
                                s.reply.revocations.list.devices.clear();
                                s.reply.revocations.list.version += 1_000;
                                s.reply.accepted_identities.push(
                                    sealprint_protocol::AcceptedIdentity {
                                        printer: "zebra-0-0".into(),
                                        identity: "ROGUE-SERIAL".into(),
                                    },
                                );
                                s
                            }
                        };
                        Response::Relayed(RelayReply::HeartbeatReply(carried))
                    }
                    other => other,
                };
                self.respond(channel, resp);
            }
            Pending::Forward {
                channel,
                tactic,
                turn,
            } => {
                let resp = match (tactic, resp) {
                    (ForwardTactic::DeliverThenDeny, Response::Outcome(real)) => {
                        lock(&self.observed).forged += 1;
                        let s = &real.statement;
                        let denied = JobOutcome::NotPrinted {
                            job_id: s.outcome.job_id().to_owned(),
                            reason: "paper out".into(),
                        };
                        match turn % 3 {
                            0 => {
                                let statement = OutcomeStatement {
                                    outcome: denied,
                                    ..s.clone()
                                };
                                match SignedOutcome::sign(statement, &self.key) {
                                    Ok(forged) => Response::Outcome(forged),
                                    Err(_) => refuse(ErrorCode::Internal, "x"),
                                }
                            }
                            1 => {
                                let mut changed = real.clone();
                                changed.statement.outcome = denied;
                                Response::Outcome(changed)
                            }
                            _ => refuse(ErrorCode::Unreachable, "destination unreachable"),
                        }
                    }
                    (_, other) => other,
                };
                self.respond(channel, resp);
            }
        }
    }
}

fn refuse(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_owned(),
    }
}
