//! Simulated agents for the heartbeat load benchmark: each is a real libp2p endpoint with its
//! own identity that enrolls with a one-time token, says hello with its certificate and then
//! sends heartbeats on command, timing each round trip. They print nothing.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use rand::RngCore;
use sealprint_mesh::{build_swarm, SwarmOptions};
use sealprint_protocol::{
    EnrollRequest, EnrollmentToken, Heartbeat, Hello, PrinterReport, PrinterStatus, PrinterVerdict,
    Request, Response,
};
use tokio::sync::{mpsc, oneshot};

use crate::mesh_request::ask;

/// A handle to one simulated agent's task.
pub struct SimAgent {
    tx: mpsc::Sender<oneshot::Sender<anyhow::Result<Duration>>>,
}

impl SimAgent {
    /// Enrolls with `token` and says hello; the agent then waits for heartbeat commands.
    pub async fn start(token: &str) -> anyhow::Result<SimAgent> {
        let token: EnrollmentToken = token.parse().context("token")?;
        let coordinator: PeerId = token.coordinator_peer_id.parse()?;
        let addrs: Vec<Multiaddr> = token
            .coordinator_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm =
            build_swarm(keypair, &SwarmOptions::default()).map_err(|e| anyhow!("swarm: {e}"))?;
        swarm.behaviour_mut().admission.trust(coordinator);
        swarm.dial(DialOpts::peer_id(coordinator).addresses(addrs).build())?;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == coordinator => {
                    break
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial: {error}"),
                _ => {}
            }
        }
        let mut x25519 = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut x25519);
        let enrolled = match ask(
            &mut swarm,
            coordinator,
            Request::Enroll(EnrollRequest {
                token_secret: token.secret,
                x25519_public: x25519,
                hostname: "load".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        )
        .await?
        {
            Response::Enrolled(e) => e,
            other => bail!("enrollment answered {other:?}"),
        };
        let cert = sealprint_protocol::Certificate::decode(&enrolled.certificate)?;
        let device_id = cert.body.device_id.clone();
        let hello = Request::Hello(Hello {
            certificate: enrolled.certificate,
            has_uplink: true,
        });
        if !matches!(
            ask(&mut swarm, coordinator, hello).await?,
            Response::Hello(_)
        ) {
            bail!("hello refused");
        }
        let (tx, mut rx) = mpsc::channel::<oneshot::Sender<anyhow::Result<Duration>>>(4);
        let started = Instant::now();
        tokio::spawn(async move {
            let mut seq = 0u64;
            while let Some(done) = rx.recv().await {
                seq += 1;
                let hb = Heartbeat {
                    device_id: device_id.clone(),
                    seq,
                    version: env!("CARGO_PKG_VERSION").into(),
                    uptime_s: started.elapsed().as_secs(),
                    clock_ms: crate::now_ms(),
                    printers: vec![PrinterReport {
                        name: "zebra".into(),
                        pool: "load".into(),
                        uri: "raw://192.0.2.1:9100".into(),
                        verdict: PrinterVerdict::Verified,
                        reason: "answered ~HI, ~HS and its serial".into(),
                        identity: Some("LOAD0001".into()),
                        status: PrinterStatus::Ready,
                    }],
                    peers: vec![],
                    receipts: vec![],
                    findings: vec![],
                };
                let t = Instant::now();
                let answer = ask(&mut swarm, coordinator, Request::Heartbeat(hb)).await;
                let result = match answer {
                    Ok(Response::HeartbeatReply(_)) => Ok(t.elapsed()),
                    Ok(other) => Err(anyhow!("heartbeat answered {other:?}")),
                    Err(e) => Err(e),
                };
                let _ = done.send(result);
            }
        });
        Ok(SimAgent { tx })
    }

    /// Sends one heartbeat and returns its round trip.
    pub async fn heartbeat(&self) -> anyhow::Result<Duration> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| anyhow!("agent task gone"))?;
        rx.await.map_err(|_| anyhow!("agent task gone"))?
    }
}
