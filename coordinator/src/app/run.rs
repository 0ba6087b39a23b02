//! [`start`] and [`run`]: open the store, load the identity, start the mesh, the API and
//! the background services (retention, notifications, monitor), and drain them on shutdown.
//! The one place that builds everything.
//!
//! Readiness: from the start until the store, the CA and the mesh are up, and again while
//! draining, the API's address is answered by [`api::standby`] (`/readyz` 503, `/healthz`
//! 200, anything else 503), so a load balancer sees the coordinator as not ready instead of
//! a silent port. `--metrics-listen` starts [`crate::app::metrics`] before anything else.

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
use crate::core::readiness::{Part, Readiness};
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
    /// The API's address (the standby answers on it while draining).
    pub api_listener: Arc<TcpListener>,
    /// The API's TLS configuration.
    pub tls: Arc<rustls::ServerConfig>,
    /// What `/readyz` answers (set draining on shutdown).
    pub readiness: Arc<Readiness>,
}

/// Loads the TLS files and puts [`api::standby`] on the API address, opens the store, loads
/// the identity, starts the mesh endpoint (marking each up in `readiness`), then hands the
/// address to the API server on `tracker`. Everything stops when `shutdown` is cancelled;
/// wait on `tracker` to drain.
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
    let api_listener = Arc::new(api_listener);
    let readiness = Arc::new(Readiness::default());
    let tls = Arc::new(api::load_tls(&config.data_dir)?);
    let standby = Standby::spawn(api_listener.clone(), tls.clone(), readiness.clone());
    let master = MasterKey::load(&config.master_key_file)?;
    if !db_path(&config.data_dir).is_dir() {
        return Err(Error::NotInitialised);
    }
    let store = Store::open(&config.data_dir, master)?;
    if !store.is_initialised()? {
        return Err(Error::NotInitialised);
    }
    readiness.up(Part::Store);
    let identity = Arc::new(Identity::load(&store)?);
    readiness.up(Part::Ca);
    let api_addr = api_listener.local_addr()?;

    let failures = failures::FailureLog::new(config.failure_summary_interval);
    tracker.spawn(failures::run(
        store.clone(),
        failures.clone(),
        shutdown.clone(),
    ));
    let releases = crate::services::releases::Releases::new(
        config::load_release_key(config.release_public_key.as_deref())?,
        &config.data_dir,
    );
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
            releases: releases.clone(),
        },
        store.clone(),
        identity.clone(),
        shutdown.clone(),
        tracker.clone(),
    )
    .await
    .map_err(|e| Error::Mesh(format!("{e:#}")))?;
    readiness.up(Part::Mesh);
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
        readiness: readiness.clone(),
        releases,
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
    standby.stop().await;
    tracker.spawn(api::serve(
        api_listener.clone(),
        tls.clone(),
        api::app(state),
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
        api_listener,
        tls,
        readiness,
    })
}

/// [`api::standby`] serving the API's address until [`Standby::stop`].
struct Standby {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Standby {
    fn spawn(
        listener: Arc<TcpListener>,
        tls: Arc<rustls::ServerConfig>,
        readiness: Arc<Readiness>,
    ) -> Standby {
        let stop = CancellationToken::new();
        // Its connections are not drained: they answer in a moment, and the process is
        // ending or the API takes the address over.
        let task = tokio::spawn(api::serve(
            listener,
            tls,
            api::standby(readiness),
            api::ServerLimits::default(),
            stop.clone(),
            TaskTracker::new(),
        ));
        Standby { stop, task }
    }

    /// Stops accepting and returns once the accept loop has ended.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
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
    if let Some(addr) = config.metrics_listen {
        let listener = TcpListener::bind(addr).await.map_err(Error::Metrics)?;
        tracker.spawn(crate::app::metrics::serve(
            listener,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
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
    started.readiness.drain();
    // The API stops accepting at `shutdown`; the standby answers on its address meanwhile.
    let standby = Standby::spawn(
        started.api_listener.clone(),
        started.tls.clone(),
        started.readiness.clone(),
    );
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
    standby.stop().await;
    started.store.flush()?;
    info!("stopped");
    Ok(())
}
