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
//! - [`auth`]: the LWA and RDT token caches (single-flight, early renewal);
//! - [`rate`]: token buckets per (connection, operation), backoff with jitter;
//! - [`client`]: the HTTPS transport (hyper + rustls, extra CA file);
//! - [`label`]: strict label decoding (base64, gzip sniffing, caps, MD5, magic);
//! - [`model`]: the answer fields read; [`error`]: [`SpApiError`];
//! - `fetch`: the background label fetch and the settling of fetches a restart interrupted.
//!
//! Never logged: tokens, secrets, request and answer bodies (they hold addresses), SP-API
//! error messages (they echo request values) and label bytes. Logged: operation, status,
//! `x-amzn-RequestId`, error code, attempt and duration.
//!
//! What it does not do: SigV4 (SP-API no longer needs it), grantless operations, Orders,
//! or cancel a duplicate purchase by itself (an in-doubt job waits for an operator).

pub mod auth;
pub mod error;
mod fetch;
pub mod label;
pub mod model;
pub mod operation;
pub mod rate;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT as UA};
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use zeroize::Zeroizing;

pub use crate::outbound::client::SetupError;
pub use error::SpApiError;
pub use fetch::{LabelSource, ShoppingStep, FETCH_SOURCES};
pub use label::{decode_label, ChecksumMatch, DecodedLabel, LabelError};
pub use operation::Operation;

use auth::{LwaRequest, LwaResponse, RdtRequest, RdtResponse, RestrictedResource, TokenCache};
use model::ErrorList;
use operation::Retry;

use crate::core::clock::amz_date;
use crate::core::dispatcher::Dispatch;
use crate::outbound::client::{self, Answer, Http, SendFailure};
use crate::outbound::{backoff, USER_AGENT};
use crate::store::{SpapiConnectionRecord, SpapiRegion, Store, StoreError};

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

/// A connection's secrets, as stored (encrypted) and held in memory (zeroized, redacted).
#[derive(Serialize, Deserialize)]
pub struct ConnectionSecrets {
    /// The LWA client secret.
    pub client_secret: auth::SecretString,
    /// The seller's LWA refresh token.
    pub refresh_token: auth::SecretString,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSecrets(<redacted>)")
    }
}

impl ConnectionSecrets {
    /// The JSON that is encrypted at rest.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).expect("two strings always serialise"))
    }
}

/// A connection with its secrets, ready to call.
#[derive(Debug)]
pub struct Connection {
    /// The public part.
    pub record: SpapiConnectionRecord,
    secrets: ConnectionSecrets,
}

/// The regional host.
pub fn region_host(region: SpapiRegion, sandbox: bool) -> &'static str {
    match (region, sandbox) {
        (SpapiRegion::Na, false) => "https://sellingpartnerapi-na.amazon.com",
        (SpapiRegion::Eu, false) => "https://sellingpartnerapi-eu.amazon.com",
        (SpapiRegion::Fe, false) => "https://sellingpartnerapi-fe.amazon.com",
        (SpapiRegion::Na, true) => "https://sandbox.sellingpartnerapi-na.amazon.com",
        (SpapiRegion::Eu, true) => "https://sandbox.sellingpartnerapi-eu.amazon.com",
        (SpapiRegion::Fe, true) => "https://sandbox.sellingpartnerapi-fe.amazon.com",
    }
}

/// The Shipping v2 business of a seller: by marketplace where Amazon has one for it, else
/// the region's (US for NA, UK for EU, JP for FE). Never left to the UK default.
pub fn business_id(region: SpapiRegion, marketplace_id: &str) -> &'static str {
    match marketplace_id {
        "ATVPDKIKX0DER" => "AmazonShipping_US",
        "A1F83G8C2ARO7P" => "AmazonShipping_UK",
        "APJ6JRA9NG5V4" => "AmazonShipping_IT",
        "A1RKKUPIHCS9HS" => "AmazonShipping_ES",
        "A13V1IB3VIYZZH" => "AmazonShipping_FR",
        "A2VIGQ35RCS4UG" => "AmazonShipping_UAE",
        "A17E79C6D8DWNP" => "AmazonShipping_SA",
        "ARBP9OOSHTCHU" => "AmazonShipping_EG",
        "A21TJRUUN4KGV" => "AmazonShipping_IN",
        "A1VC38T7YXB528" => "AmazonShipping_JP",
        _ => match region {
            SpapiRegion::Na => "AmazonShipping_US",
            SpapiRegion::Eu => "AmazonShipping_UK",
            SpapiRegion::Fe => "AmazonShipping_JP",
        },
    }
}

impl Connection {
    fn base_url(&self) -> &str {
        self.record
            .endpoint
            .as_deref()
            .unwrap_or_else(|| region_host(self.record.region, self.record.sandbox))
            .trim_end_matches('/')
    }

    fn lwa_url(&self) -> &str {
        self.record.lwa_endpoint.as_deref().unwrap_or(LWA_ENDPOINT)
    }

    fn key(&self) -> String {
        format!("{}/{}", self.record.tenant_id, self.record.id)
    }
}

/// What one SP-API request carries besides the token.
#[derive(Default)]
pub struct CallSpec<'a> {
    /// `{shipmentId}` of the path.
    pub shipment_id: Option<&'a str>,
    /// Query parameters (encoded here).
    pub query: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<Zeroizing<Vec<u8>>>,
    /// `x-amzn-IdempotencyKey`.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> CallSpec<'a> {
    /// A request with this JSON body.
    pub fn json(body: Zeroizing<Vec<u8>>) -> CallSpec<'a> {
        CallSpec {
            body: Some(body),
            ..CallSpec::default()
        }
    }

    /// A request about this shipment (`{shipmentId}` of the path).
    pub fn shipment(shipment_id: &'a str) -> CallSpec<'a> {
        CallSpec {
            shipment_id: Some(shipment_id),
            ..CallSpec::default()
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

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The first error's code (sanitised, `unknown` without one), and whether it is MFN's
/// refusal of the requested label format.
fn first_error(body: &[u8]) -> (String, bool) {
    serde_json::from_slice::<ErrorList>(body)
        .ok()
        .and_then(|l| l.errors.into_iter().next())
        .map(|e| (error::sanitise_code(&e.code), e.label_format_refused))
        .unwrap_or_else(|| ("unknown".to_owned(), false))
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

    /// Loads a connection of `tenant_id` with its secrets.
    ///
    /// # Errors
    /// [`SpApiError::Connection`] when it does not exist or its secrets do not decrypt.
    pub fn connection(&self, tenant_id: &str, id: &str) -> Result<Connection, SpApiError> {
        let record = self
            .inner
            .store
            .spapi_connection(tenant_id, id)?
            .ok_or(SpApiError::Connection("not found"))?;
        let raw = match self.inner.store.spapi_connection_secrets(tenant_id, id) {
            Ok(r) => r,
            Err(StoreError::NotFound | StoreError::Crypto(_)) => {
                return Err(SpApiError::Connection("secrets unreadable"))
            }
            Err(e) => return Err(e.into()),
        };
        if !self.inner.opts.allow_endpoint_override
            && (record.endpoint.is_some() || record.lwa_endpoint.is_some())
        {
            return Err(SpApiError::Connection(
                "endpoint overrides are turned off on this coordinator",
            ));
        }
        let secrets: ConnectionSecrets = serde_json::from_slice(&raw)
            .map_err(|_| SpApiError::Connection("secrets unreadable"))?;
        Ok(Connection { record, secrets })
    }

    async fn pause(&self, attempt: u32) -> Result<(), SpApiError> {
        let o = &self.inner.opts;
        let d = backoff(attempt, o.backoff_base, o.backoff_cap);
        tokio::select! {
            _ = self.inner.shutdown.cancelled() => Err(SpApiError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// The connection's LWA access token (cached; one exchange in flight per connection).
    async fn lwa_token(&self, conn: &Connection) -> Result<Zeroizing<String>, SpApiError> {
        self.inner
            .lwa
            .get(&conn.key(), || self.lwa_exchange(conn))
            .await
    }

    async fn lwa_exchange(
        &self,
        conn: &Connection,
    ) -> Result<(Zeroizing<String>, Duration), SpApiError> {
        let body = Zeroizing::new(
            serde_json::to_vec(&LwaRequest {
                grant_type: "refresh_token",
                refresh_token: &conn.secrets.refresh_token.0,
                client_id: &conn.record.client_id,
                client_secret: &conn.secrets.client_secret.0,
            })
            .expect("strings always serialise"),
        );
        let body = Bytes::from_owner(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = Request::post(conn.lwa_url())
                .header(UA, USER_AGENT)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|_| SpApiError::Connection("lwa endpoint is not a valid url"))?;
            let sent = client::send(
                &self.inner.http,
                req,
                self.inner.opts.request_timeout,
                64 * 1024,
            )
            .await;
            let transient = match sent {
                Ok(a) if a.status.is_success() => {
                    let r: LwaResponse = serde_json::from_slice(&a.body).unwrap_or_default();
                    return match (r.access_token, r.expires_in) {
                        (Some(t), Some(s)) if !t.0.is_empty() => {
                            debug!(connection = %conn.record.id, expires_in = s, "lwa token obtained");
                            Ok((Zeroizing::new(t.0.clone()), Duration::from_secs(s)))
                        }
                        _ => Err(SpApiError::Lwa {
                            status: a.status.as_u16(),
                            code: "malformed_answer".into(),
                        }),
                    };
                }
                Ok(a)
                    if a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    SpApiError::Lwa {
                        status: a.status.as_u16(),
                        code: "server_error".into(),
                    }
                }
                Ok(a) => {
                    let r: LwaResponse = serde_json::from_slice(&a.body).unwrap_or_default();
                    let code = r
                        .error
                        .as_deref()
                        .map(error::sanitise_code)
                        .unwrap_or_else(|| "unknown".into());
                    info!(connection = %conn.record.id, status = a.status.as_u16(), code = %code, "lwa refused the token exchange");
                    return Err(SpApiError::Lwa {
                        status: a.status.as_u16(),
                        code,
                    });
                }
                Err(SendFailure::TooLarge) => {
                    return Err(SpApiError::TooLarge {
                        operation: "lwaToken",
                        limit: 64 * 1024,
                    })
                }
                Err(SendFailure::NotSent(reason) | SendFailure::Ambiguous(reason)) => {
                    SpApiError::Transport {
                        operation: "lwaToken",
                        reason,
                    }
                }
            };
            // Token exchanges have no side effect worth fearing: retry transient failures.
            if attempt >= self.inner.opts.max_attempts {
                return Err(transient);
            }
            self.pause(attempt).await?;
        }
    }

    /// The connection's RDT for the restricted operations (one token for all of them, with
    /// generic paths; cached until shortly before it expires).
    fn rdt_token<'a>(
        &'a self,
        conn: &'a Connection,
    ) -> BoxFuture<'a, Result<Zeroizing<String>, SpApiError>> {
        Box::pin(async move {
            let key = format!("{}/rdt", conn.key());
            self.inner
                .rdt
                .get(&key, || async {
                    let req = RdtRequest {
                        restricted_resources: Operation::restricted_resources()
                            .into_iter()
                            .map(|(m, p)| RestrictedResource {
                                method: m.to_string(),
                                path: p.to_owned(),
                            })
                            .collect(),
                    };
                    let body = serde_json::to_vec(&req).expect("plain data serialises");
                    let spec = CallSpec::json(Zeroizing::new(body));
                    let a = self
                        .call(conn, Operation::CreateRestrictedDataToken, spec)
                        .await?;
                    let r: RdtResponse =
                        serde_json::from_slice(&a.body).map_err(|_| SpApiError::Malformed {
                            operation: "createRestrictedDataToken",
                            what: "no restrictedDataToken",
                        })?;
                    debug!(connection = %conn.record.id, expires_in = r.expires_in, "rdt obtained");
                    Ok((
                        Zeroizing::new(r.restricted_data_token.0.clone()),
                        Duration::from_secs(r.expires_in),
                    ))
                })
                .await
        })
    }

    async fn invalidate(&self, conn: &Connection, op: Operation, token: &str) {
        if op.info().restricted {
            self.inner
                .rdt
                .invalidate(&format!("{}/rdt", conn.key()), token)
                .await;
        } else {
            self.inner.lwa.invalidate(&conn.key(), token).await;
        }
    }

    /// Calls `op` on `conn`: rate limit, token (RDT for restricted operations, else LWA),
    /// retries per the operation's policy, and a typed error for anything but 2xx.
    ///
    /// Not cancel-safe for purchases: dropping it after the request left makes the outcome
    /// unknown (the caller treats that as in doubt).
    ///
    /// # Errors
    /// [`SpApiError::Api`], [`SpApiError::LabelFormatRefused`], [`SpApiError::Throttled`],
    /// [`SpApiError::Transport`], [`SpApiError::InDoubt`] (MFN createShipment or Shipping v2
    /// oneClickShipment after a timeout or 5xx; a Shipping v2 purchase whose retries with the
    /// same idempotency key all failed ambiguously),
    /// [`SpApiError::TooLarge`], [`SpApiError::Lwa`], [`SpApiError::Cancelled`].
    pub async fn call(
        &self,
        conn: &Connection,
        op: Operation,
        spec: CallSpec<'_>,
    ) -> Result<Answer, SpApiError> {
        let info = op.info();
        let mut url = format!("{}{}", conn.base_url(), op.path(spec.shipment_id));
        for (i, (k, v)) in spec.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&operation::encode_component(v));
        }
        let body = spec.body.map(Bytes::from_owner);
        let business = business_id(conn.record.region, &conn.record.marketplace_id);
        let max = self.inner.opts.max_attempts.max(1);
        let mut token_refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return Err(SpApiError::Cancelled),
                _ = self.inner.limits.acquire(&conn.record.id, op) => {}
            }
            let token = if info.restricted {
                self.rdt_token(conn).await?
            } else {
                self.lwa_token(conn).await?
            };
            let mut b = Request::builder()
                .method(info.method.clone())
                .uri(&url)
                .header(UA, USER_AGENT)
                .header(ACCEPT, "application/json")
                .header("x-amz-date", amz_date(crate::core::clock::now_ms() / 1000));
            let mut access = HeaderValue::from_str(&token)
                .map_err(|_| SpApiError::Connection("token is not a valid header value"))?;
            access.set_sensitive(true);
            b = b.header("x-amz-access-token", access);
            if info.shipping_v2 {
                b = b.header("x-amzn-shipping-business-id", business);
            }
            if let Some(k) = spec.idempotency_key {
                b = b.header("x-amzn-IdempotencyKey", k);
            }
            if body.is_some() {
                b = b.header(CONTENT_TYPE, "application/json");
            }
            let req = b
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|_| SpApiError::Connection("endpoint is not a valid url"))?;
            let started = tokio::time::Instant::now();
            let sent = client::send(
                &self.inner.http,
                req,
                self.inner.opts.request_timeout,
                MAX_ANSWER,
            )
            .await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let a = match sent {
                Ok(a) => a,
                Err(SendFailure::TooLarge) => {
                    return Err(SpApiError::TooLarge {
                        operation: info.name,
                        limit: MAX_ANSWER,
                    })
                }
                Err(SendFailure::NotSent(reason)) => {
                    debug!(op = info.name, attempt, reason = %reason, "spapi request not sent");
                    if attempt >= max {
                        return Err(SpApiError::Transport {
                            operation: info.name,
                            reason,
                        });
                    }
                    self.pause(attempt).await?;
                    continue;
                }
                Err(SendFailure::Ambiguous(reason)) => {
                    info!(op = info.name, attempt, reason = %reason, "spapi answer lost");
                    match info.retry {
                        Retry::Never => {
                            return Err(SpApiError::InDoubt {
                                operation: info.name,
                                reason: format!("{reason}; not retried (no idempotency key)"),
                            })
                        }
                        _ if attempt < max => {
                            self.pause(attempt).await?;
                            continue;
                        }
                        Retry::Idempotent => {
                            return Err(SpApiError::InDoubt {
                                operation: info.name,
                                reason: format!(
                                    "{reason}; retry with the same idempotency key settles it"
                                ),
                            })
                        }
                        Retry::Safe => {
                            return Err(SpApiError::Transport {
                                operation: info.name,
                                reason,
                            })
                        }
                    }
                }
            };
            let status = a.status.as_u16();
            let ok = a.status.is_success();
            if ok || status == 400 || status == 404 {
                if let Some(r) = &a.rate_limit {
                    self.inner.limits.observe(&conn.record.id, op, r);
                }
            }
            if ok {
                debug!(op = info.name, status, request_id = %a.request_id, attempt, elapsed_ms, "spapi call");
                return Ok(a);
            }
            let (code, label_format_refused) = first_error(&a.body);
            info!(op = info.name, status, code = %code, request_id = %a.request_id, attempt, elapsed_ms, "spapi call failed");
            let api_error = |code: String| SpApiError::Api {
                operation: info.name,
                status,
                code,
                request_id: a.request_id.clone(),
            };
            match status {
                400 if label_format_refused => {
                    return Err(SpApiError::LabelFormatRefused {
                        operation: info.name,
                        status,
                        code,
                        request_id: a.request_id.clone(),
                    })
                }
                429 => {
                    // Refused before processing: safe to retry, even a purchase.
                    self.inner.limits.throttled(&conn.record.id, op);
                    if attempt >= max {
                        return Err(SpApiError::Throttled {
                            operation: info.name,
                            attempts: attempt,
                        });
                    }
                    self.pause(attempt).await?;
                }
                401 | 403 if !token_refreshed => {
                    // An expired or revoked token is refused before processing: renew once.
                    token_refreshed = true;
                    self.invalidate(conn, op, &token).await;
                    attempt -= 1;
                }
                500..=599 => match info.retry {
                    Retry::Never => {
                        return Err(SpApiError::InDoubt {
                            operation: info.name,
                            reason: format!(
                                "status {status} ({code}, request id {}); not retried (no idempotency key)",
                                a.request_id
                            ),
                        })
                    }
                    _ if attempt < max && matches!(status, 500 | 502 | 503 | 504) => {
                        self.pause(attempt).await?;
                    }
                    Retry::Idempotent => {
                        return Err(SpApiError::InDoubt {
                            operation: info.name,
                            reason: format!(
                                "status {status} ({code}, request id {}); retry with the same idempotency key settles it",
                                a.request_id
                            ),
                        })
                    }
                    Retry::Safe => return Err(api_error(code)),
                },
                _ => return Err(api_error(code)),
            }
        }
    }

    /// Spawns `fut` on the process's task tracker.
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.tracker.spawn(fut);
    }

    /// Drops the cached tokens of a connection (after a credentials change).
    pub fn forget_tokens(&self, tenant_id: &str, connection_id: &str) {
        let prefix = format!("{tenant_id}/{connection_id}");
        self.inner.lwa.forget_prefix(&prefix);
        self.inner.rdt.forget_prefix(&prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_ids_follow_the_seller() {
        assert_eq!(
            business_id(SpapiRegion::Na, "ATVPDKIKX0DER"),
            "AmazonShipping_US"
        );
        assert_eq!(
            business_id(SpapiRegion::Na, "A2EUQ1WTGCTBG2"),
            "AmazonShipping_US"
        );
        assert_eq!(
            business_id(SpapiRegion::Eu, "A1PA6795UKMFR9"),
            "AmazonShipping_UK"
        );
        assert_eq!(
            business_id(SpapiRegion::Eu, "A13V1IB3VIYZZH"),
            "AmazonShipping_FR"
        );
        assert_eq!(
            business_id(SpapiRegion::Fe, "A39IBJ37TRP1C6"),
            "AmazonShipping_JP"
        );
    }

    #[test]
    fn secrets_debug_is_redacted() {
        let s = ConnectionSecrets {
            client_secret: auth::SecretString("amzn1.oa2-cs.v1.SECRET".into()),
            refresh_token: auth::SecretString("Atzr|SECRET".into()),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
        let json = s.to_json();
        let back: ConnectionSecrets = serde_json::from_slice(&json).expect("round trip");
        assert_eq!(back.refresh_token.0, "Atzr|SECRET");
    }
}
