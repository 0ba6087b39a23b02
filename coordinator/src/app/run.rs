//! [`start`] and [`run`]: open the store, load the identity, start the mesh, the API and
//! the background services (retention, notifications, monitor), and drain them on shutdown.
//! The one place that builds everything.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api::{self, ApiState};
use crate::app::config::{self, ServeConfig};
use crate::app::error::Error;
use crate::core::crypto::MasterKey;
use crate::core::dispatcher::Dispatch;
use crate::core::paths::db_path;
use crate::outbound::client;
use crate::services::ca::Identity;
use crate::services::{failures, mesh, monitor, notifications, retention, spapi};
use crate::store::Store;

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
    if !db_path(&config.data_dir).is_dir() {
        return Err(Error::NotInitialised);
    }
    let store = Store::open(&config.data_dir, master)?;
    if !store.is_initialised()? {
        return Err(Error::NotInitialised);
    }
    let identity = Arc::new(Identity::load(&store)?);
    let tls = Arc::new(api::load_tls(&config.data_dir)?);
    let api_addr = api_listener.local_addr()?;

    let failures = failures::FailureLog::new(config.failure_summary_interval);
    tracker.spawn(failures::run(
        store.clone(),
        failures.clone(),
        shutdown.clone(),
    ));
    let mesh = mesh::start(
        mesh::MeshConfig {
            listen: config.mesh_listen.clone(),
            advertise: config.mesh_advertise.clone(),
            heartbeat_interval: config.heartbeat_interval,
            cert_validity: config.cert_validity,
            delivery: config.delivery,
            hello_deadline: config.hello_deadline,
            failures: failures.clone(),
            versions: config.agent_versions,
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
                .map(client::read_ca_file)
                .transpose()?,
            allow_endpoint_override: config.allow_spapi_endpoint_override,
            egress: crate::outbound::egress::EgressPolicy {
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
        failures,
        limits: api::limits::Limits::default(),
        agent_versions: config.agent_versions,
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
        config.agent_versions,
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
