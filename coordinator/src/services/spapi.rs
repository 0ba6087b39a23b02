//! Labels from Amazon's Selling Partner API (SP-API): Merchant Fulfillment v0 and Shipping v2.
//!
//! [`SpApi`] is the one client of a coordinator process. It holds the shared HTTPS client,
//! the token caches, the rate-limit buckets, and what it needs to turn a fetched label into a
//! print job (the store and the dispatcher). The admin API asks it to fetch a label in the
//! background ([`SpApi::spawn_fetch`]); the fetch is recorded as a
//! [`SpapiFetchRecord`](crate::store::SpapiFetchRecord) and the print job of the same id is
//! only created, and handed to the dispatcher, once the label has been fetched and decoded.
//!
//! # Layout
//! - [`operation`]: the operations table (paths, rates, which need an RDT, retry policy);
//! - [`auth`]: the LWA and RDT token caches (single-flight, early renewal); `tokens`: the
//!   LWA exchange and the RDT call that fill them;
//! - `connection`: a seller's connection, its secrets, hosts and Shipping v2 business id;
//! - `call`: one call ([`SpApi::call`]) with its retries and typed errors;
//! - [`rate`]: token buckets per (connection, operation), backoff with jitter;
//! - [`crate::outbound::client`]: the HTTPS transport (hyper + rustls, extra CA file);
//! - [`label`]: strict label decoding (base64, gzip sniffing, caps, MD5, magic);
//! - [`model`]: the answer fields read; [`error`]: [`SpApiError`];
//! - `source`: [`LabelSource`], where a label comes from; `shipment`: the calls that return a
//!   shipment with its label; `shopping`: the shopping steps and cancellations passed through;
//! - `fetch`: the background label fetch and the settling of fetches a restart interrupted.
//!
//! Never logged: tokens, secrets, request and answer bodies (they hold addresses), SP-API
//! error messages (they echo request values) and label bytes. Logged: operation, status,
//! `x-amzn-RequestId`, error code, attempt and duration.
//!
//! What it does not do: SigV4 (SP-API no longer needs it), grantless operations, Orders,
//! or cancel a duplicate purchase by itself (an in-doubt job waits for an operator).

pub mod auth;
mod call;
mod connection;
pub mod error;
mod fetch;
pub mod label;
pub mod model;
pub mod operation;
pub mod rate;
mod shipment;
mod shopping;
mod source;
mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::outbound::client::SetupError;
pub use call::CallSpec;
pub use connection::{business_id, region_host, Connection, ConnectionSecrets};
pub use error::SpApiError;
pub use label::{decode_label, ChecksumMatch, DecodedLabel, LabelError};
pub use operation::Operation;
pub use shopping::ShoppingStep;
pub use source::{is_reprint, LabelSource, FETCH_SOURCES, REPRINT_SOURCES};

use auth::TokenCache;

use crate::core::dispatcher::Dispatch;
use crate::outbound::client::{self, Http};
use crate::store::Store;

/// Largest answer body read (an 8 MiB label is about 11 MiB of base64).
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The LWA token endpoint (every region).
pub const LWA_ENDPOINT: &str = "https://api.amazon.com/auth/o2/token";

/// Tunables of the client.
#[derive(Clone)]
pub struct SpApiOptions {
    /// Extra trusted CA certificates (PEM) for endpoint overrides.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Deadline of one HTTP exchange.
    pub request_timeout: Duration,
    /// Attempts per operation (429s, safe retries).
    pub max_attempts: u32,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_cap: Duration,
    /// Whether connections may name their own `endpoint`/`lwa_endpoint` (serve
    /// `--allow-spapi-endpoint-override`; default off: only Amazon's hosts).
    pub allow_endpoint_override: bool,
    /// Which addresses outgoing calls (SP-API and webhooks) may reach.
    pub egress: crate::outbound::egress::EgressPolicy,
}

impl std::fmt::Debug for SpApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpApiOptions")
            .field("extra_ca", &self.extra_ca_pem.is_some())
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("allow_endpoint_override", &self.allow_endpoint_override)
            .field("egress", &self.egress)
            .finish_non_exhaustive()
    }
}

impl Default for SpApiOptions {
    fn default() -> Self {
        SpApiOptions {
            extra_ca_pem: None,
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
            allow_endpoint_override: false,
            egress: crate::outbound::egress::EgressPolicy::default(),
        }
    }
}

/// The SP-API client of a process. Cheap to clone.
#[derive(Clone)]
pub struct SpApi {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpApi").finish_non_exhaustive()
    }
}

struct Inner {
    http: Http,
    store: Store,
    dispatch: Arc<dyn Dispatch>,
    lwa: TokenCache,
    rdt: TokenCache,
    limits: rate::RateLimits,
    opts: SpApiOptions,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl SpApi {
    /// Builds the client and settles the label fetches a previous run left unfinished
    /// (purchases become `in_doubt`, reads `failed`).
    ///
    /// # Errors
    /// [`SetupError`] when the TLS configuration is refused; a store failure while settling
    /// is logged, not returned.
    pub fn new(
        opts: SpApiOptions,
        store: Store,
        dispatch: Arc<dyn Dispatch>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<SpApi, SetupError> {
        let tls = client::tls_config(opts.extra_ca_pem.as_deref())?;
        let api = SpApi {
            inner: Arc::new(Inner {
                http: client::http_client(tls, opts.egress),
                store,
                dispatch,
                lwa: TokenCache::default(),
                rdt: TokenCache::default(),
                limits: rate::RateLimits::default(),
                opts,
                tracker,
                shutdown,
            }),
        };
        api.settle_interrupted(crate::core::clock::now_ms());
        Ok(api)
    }

    /// A client for unit tests: no extra CA, its own task tracker.
    #[cfg(test)]
    pub(crate) fn for_tests(store: Store, dispatch: Arc<dyn Dispatch>) -> SpApi {
        SpApi::new(
            SpApiOptions::default(),
            store,
            dispatch,
            TaskTracker::new(),
            CancellationToken::new(),
        )
        .expect("the default tls configuration is valid")
    }

    /// Whether connections may carry endpoint overrides.
    pub fn allows_endpoint_override(&self) -> bool {
        self.inner.opts.allow_endpoint_override
    }

    /// The process's outgoing HTTPS client (system roots plus the extra CA), shared with the
    /// notification deliveries.
    pub fn http(&self) -> Http {
        self.inner.http.clone()
    }

    /// The store this client records fetches in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Spawns `fut` on the process's task tracker.
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.tracker.spawn(fut);
    }
}
