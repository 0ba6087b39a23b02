//! # sealprint-coordinator
//!
//! The cloud side of sealprint: the certificate authority of the devices, the encrypted
//! store of tenants, agents, printers and jobs, the hash-chained audit log, the HTTPS admin
//! API, and the libp2p mesh endpoint that delivers sealed labels to agents.
//!
//! # Layout
//! - [`config`]: `serve` configuration (TOML + flags), pure parsing and validation.
//! - [`init`]: `init`, which creates a data directory, keys, TLS files and the first admin.
//! - [`crypto`]: master key, tenant data keys, AES-256-GCM, argon2id.
//! - [`store`]: the sled store and its records; [`audit`]: the audit hash chain.
//! - [`ca`]: the coordinator identity and device certificates.
//! - [`accounts`]: password, lockout and role rules; [`compliance`]: the tenant gates
//!   (subscription, attestation, suspension), tiers and the billing webhook's signatures.
//! - [`api`]: the HTTPS admin API; [`mesh`] and [`dispatch`]: job delivery over libp2p.
//! - [`spapi`]: labels from Amazon's Selling Partner API (MFN v0, Shipping v2).
//! - [`retention`]: PII purge and audit retention and checkpoints; [`monitor`]: alert rules,
//!   tiers and renewals; [`notifications`]: webhook deliveries (all three also run as
//!   background tasks of [`start`]).
//! - [`error`]: the error of [`run`] / [`start`].
//!
//! [`run`] takes an already-bound API listener and a cancellation token, so tests bind port 0
//! and stop it at will. What this crate does not do: install a tracing subscriber or handle
//! signals (the binary does), or print labels (agents do).

pub mod accounts;
pub mod api;
pub mod audit;
pub mod ca;
pub mod compliance;
pub mod config;
pub mod crypto;
pub mod dispatch;
pub mod error;
pub mod init;
pub mod mesh;
pub mod monitor;
pub mod notifications;
pub mod retention;
pub mod spapi;
pub mod store;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use api::{ApiState, Dispatch};
pub use ca::{issue_certificate, Identity};
pub use config::ServeConfig;
pub use crypto::MasterKey;
pub use error::Error;
pub use store::Store;

/// The wall clock, unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a started coordinator can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The bound API address.
    pub api: SocketAddr,
    /// The bound mesh addresses.
    pub mesh: Vec<Multiaddr>,
    /// The coordinator's PeerId.
    pub peer_id: PeerId,
}

impl Ready {
    /// The one line `serve` prints on stdout once the API listener is bound and the mesh is
    /// started: `READY {"api":"IP:PORT","mesh":[...],"peer_id":"12D3..."}`. Test harnesses
    /// parse this line: keep its shape.
    pub fn line(&self) -> String {
        let mesh: Vec<String> = self.mesh.iter().map(ToString::to_string).collect();
        let json = serde_json::json!({
            "api": self.api.to_string(),
            "mesh": mesh,
            "peer_id": self.peer_id.to_string(),
        });
        format!("READY {json}")
    }
}

/// What [`start`] leaves running.
#[derive(Debug)]
pub struct Started {
    /// Where it can be reached.
    pub ready: Ready,
    /// The store (flush it after draining).
    pub store: Store,
}

/// Opens the store, loads the identity, starts the mesh endpoint, then spawns the API server
/// on `tracker`. Everything stops when `shutdown` is cancelled; wait on `tracker` to drain.
///
/// Not cancel-safe: dropping it midway may leave a started mesh running until `shutdown`.
///
/// # Errors
/// [`Error`] when the master key, store, identity, TLS files or mesh are unusable.
pub async fn start(
    config: &ServeConfig,
    api_listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Result<Started, Error> {
    let master = MasterKey::load(&config.master_key_file)?;
    if !store::db_path(&config.data_dir).is_dir() {
        return Err(Error::NotInitialised);
    }
    let store = Store::open(&config.data_dir, master)?;
    if !store.is_initialised()? {
        return Err(Error::NotInitialised);
    }
    let identity = Arc::new(Identity::load(&store)?);
    let tls = Arc::new(api::load_tls(&config.data_dir)?);
    let api_addr = api_listener.local_addr()?;

    let mesh = mesh::start(
        mesh::MeshConfig {
            listen: config.mesh_listen.clone(),
            advertise: config.mesh_advertise.clone(),
            heartbeat_interval: config.heartbeat_interval,
            cert_validity: config.cert_validity,
            delivery: config.delivery,
        },
        store.clone(),
        identity.clone(),
        shutdown.clone(),
        tracker.clone(),
    )
    .await
    .map_err(|e| Error::Mesh(format!("{e:#}")))?;
    let advertised = if config.mesh_advertise.is_empty() {
        &mesh.listen_addrs
    } else {
        &config.mesh_advertise
    };
    let dispatch: Arc<dyn Dispatch> = Arc::new(mesh.handle.clone());
    if config.allow_loopback_outbound {
        warn!("outgoing calls may reach loopback addresses: for tests and development only");
    }
    let spapi = spapi::SpApi::new(
        spapi::SpApiOptions {
            extra_ca_pem: config
                .spapi_ca_file
                .as_deref()
                .map(spapi::client::read_ca_file)
                .transpose()?,
            allow_endpoint_override: config.allow_spapi_endpoint_override,
            egress: spapi::egress::EgressPolicy {
                allow_loopback: config.allow_loopback_outbound,
            },
            ..spapi::SpApiOptions::default()
        },
        store.clone(),
        dispatch.clone(),
        tracker.clone(),
        shutdown.clone(),
    )?;
    let state = Arc::new(ApiState {
        store: store.clone(),
        dispatch,
        peer_id: identity.peer_id().to_string(),
        mesh_addrs: advertised.iter().map(ToString::to_string).collect(),
        heartbeat_interval: config.heartbeat_interval,
        billing_webhook_secret: config::load_secret(config.billing_webhook_secret_file.as_deref())?,
        spapi,
        limits: api::limits::Limits::default(),
    });
    tracker.spawn(retention::run(
        store.clone(),
        identity.clone(),
        config.retention,
        shutdown.clone(),
    ));
    tracker.spawn(notifications::run(
        store.clone(),
        state.spapi.http(),
        shutdown.clone(),
    ));
    tracker.spawn(monitor::run(
        store.clone(),
        config.heartbeat_interval,
        config.monitor_interval,
        shutdown.clone(),
    ));
    tracker.spawn(api::serve(
        api_listener,
        tls,
        state,
        api::ServerLimits::default(),
        shutdown,
        tracker.clone(),
    ));
    info!(api = %api_addr, peer_id = %identity.peer_id(), "coordinator started");
    Ok(Started {
        ready: Ready {
            api: api_addr,
            mesh: mesh.listen_addrs,
            peer_id: identity.peer_id(),
        },
        store,
    })
}

/// Runs the coordinator until `shutdown`: [`start`], print the `READY` line on stdout, wait,
/// then drain in-flight work for up to `config.drain_grace` and flush the store.
///
/// # Errors
/// Those of [`start`]; a failed final flush is [`Error::Store`].
pub async fn run(
    config: ServeConfig,
    api_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let tracker = TaskTracker::new();
    let started = match start(&config, api_listener, shutdown.clone(), tracker.clone()).await {
        Ok(s) => s,
        Err(e) => {
            shutdown.cancel();
            tracker.close();
            tracker.wait().await;
            return Err(e);
        }
    };
    {
        // Test harnesses parse this line (see `Ready::line`): exactly one, flushed at once.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", started.ready.line())?;
        out.flush()?;
    }
    shutdown.cancelled().await;
    info!("shutting down");
    tracker.close();
    if tokio::time::timeout(config.drain_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            grace_s = config.drain_grace.as_secs(),
            "drain grace period over; stopping anyway"
        );
    }
    started.store.flush()?;
    info!("stopped");
    Ok(())
}
