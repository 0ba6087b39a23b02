//! A hostile mesh peer for the attack tests: a real libp2p endpoint (TCP, Noise, yamux) with
//! a fresh identity and no certificate, that speaks the sealprint protocol name but writes
//! whatever it is told: nothing at all, a frame that announces 9 MiB and then streams junk,
//! or a well-formed enrollment with a made-up token.
//!
//! It never closes a connection itself (idle connections are kept an hour), so a closed
//! connection is the coordinator's or agent's doing. Junk is generated while it is written:
//! two hundred 9 MiB frames do not cost the test 1.8 GB.

use std::io;
use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, Message, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use rand::RngCore;
use sealprint_protocol::codec::{decode_frame, encode_frame};
use sealprint_protocol::{EnrollRequest, Request, Response, DEFAULT_MAX_FRAME};
use tokio::time::Instant;

/// What one request stream carries.
#[derive(Debug, Clone)]
pub enum Push {
    /// A length prefix announcing `announced` bytes, then `body` bytes of junk.
    Frame {
        /// The announced payload length.
        announced: u32,
        /// Bytes of junk actually sent after the prefix.
        body: usize,
    },
    /// These exact bytes.
    Bytes(Vec<u8>),
}

/// Writes [`Push`]es and reads whatever comes back (up to 64 KiB).
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Push;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Push>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("the hostile peer serves nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut out = Vec::new();
        io.take(64 * 1024).read_to_end(&mut out).await?;
        Ok(out)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Push,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Push::Bytes(b) => io.write_all(&b).await?,
            Push::Frame { announced, body } => {
                io.write_all(&announced.to_be_bytes()).await?;
                let chunk = vec![0xA5u8; 64 * 1024];
                let mut left = body;
                while left > 0 {
                    let n = left.min(chunk.len());
                    io.write_all(&chunk[..n]).await?;
                    left -= n;
                }
            }
        }
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Ok(())
    }
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The bytes the other side answered.
    Answered(Vec<u8>),
    /// The stream or connection failed (refused, reset, closed).
    Failed(String),
}

/// One hostile endpoint (one identity).
pub struct Hostile {
    swarm: Swarm<request_response::Behaviour<RawCodec>>,
}

impl Hostile {
    /// A fresh identity.
    ///
    /// # Errors
    /// When the swarm cannot be built.
    pub fn new() -> anyhow::Result<Hostile> {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let rr = request_response::Behaviour::with_codec(
            RawCodec,
            [(
                StreamProtocol::new("/sealprint/mesh/1"),
                ProtocolSupport::Outbound,
            )],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(120))
                .with_max_concurrent_streams(1024),
        );
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| anyhow!("transport: {e}"))?
            .with_behaviour(|_| rr)
            .map_err(|e| anyhow!("behaviour: {e}"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        Ok(Hostile { swarm })
    }

    /// Connects to `peer` at `addr` (one more connection, even if one is open); fails when
    /// the connection is not established within `limit` or is refused.
    ///
    /// # Errors
    /// When no connection is established.
    pub async fn connect(
        &mut self,
        peer: PeerId,
        addr: &Multiaddr,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        self.swarm.dial(opts)?;
        let deadline = Instant::now() + limit;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| anyhow!("not connected within {limit:?}"))?;
            match ev {
                SwarmEvent::ConnectionEstablished { connection_id, .. } if connection_id == id => {
                    return Ok(())
                }
                SwarmEvent::OutgoingConnectionError {
                    connection_id,
                    error,
                    ..
                } if connection_id == id => bail!("dial failed: {error}"),
                _ => {}
            }
        }
    }

    /// Whether a connection to `peer` is open.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.swarm.is_connected(peer)
    }

    /// Drives the endpoint for `d` (answers and closures are processed meanwhile).
    pub async fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(_ev) = tokio::time::timeout_at(until, self.swarm.select_next_some()).await {}
    }

    /// How long until every connection to `peer` is closed, driving the endpoint; `None`
    /// when one is still open after `limit`.
    pub async fn until_closed(&mut self, peer: &PeerId, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + limit;
        while self.swarm.is_connected(peer) {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        Some(start.elapsed())
    }

    /// Sends `push` on a new stream to `peer`.
    pub fn send(&mut self, peer: &PeerId, push: Push) -> OutboundRequestId {
        self.swarm.behaviour_mut().send_request(peer, push)
    }

    /// Drives the endpoint until every request of `ids` has an outcome, or `limit` passes
    /// (the rest are reported as failed).
    pub async fn outcomes(&mut self, ids: &[OutboundRequestId], limit: Duration) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = ids.iter().map(|_| None).collect();
        let deadline = Instant::now() + limit;
        while out.iter().any(Option::is_none) {
            let Ok(ev) = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await
            else {
                break;
            };
            let (id, outcome) = match ev {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                }) => (request_id, Outcome::Answered(response)),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                }) => (request_id, Outcome::Failed(error.to_string())),
                _ => continue,
            };
            if let Some(i) = ids.iter().position(|r| *r == id) {
                out[i] = Some(outcome);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed("no outcome in time".into())))
            .collect()
    }
}

/// A well-formed enrollment request with a token secret nobody issued.
pub fn bogus_enrollment() -> Push {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let req = Request::Enroll(EnrollRequest {
        token_secret: secret,
        x25519_public: [7u8; 32],
        hostname: "stranger".into(),
        version: "0.1.0".into(),
    });
    Push::Bytes(encode_frame(&req, DEFAULT_MAX_FRAME).expect("a small request encodes"))
}

/// The [`Response`] in an answer, if it is one.
pub fn decode_response(bytes: &[u8]) -> Option<Response> {
    decode_frame::<Response>(bytes, DEFAULT_MAX_FRAME)
        .ok()
        .flatten()
        .map(|(r, _)| r)
}

/// Peak and current resident memory of a process in KiB (`VmHWM`, `VmRSS` of Linux
/// `/proc/PID/status`), if they can be read.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
