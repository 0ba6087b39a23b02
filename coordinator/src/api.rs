//! The HTTPS admin API: JSON over hyper 1 and rustls (TLS 1.2 and 1.3), routed by axum.
//!
//! # Layout
//! - this file: [`ApiState`], replies and error answers, body limits, [`app`] (the route
//!   table behind tower-http's request ids, tracing, timeout and body limit), [`handle`] (one
//!   request to one response, no socket: what the unit tests drive) and [`serve`] (the accept
//!   loop with TLS and graceful shutdown);
//! - `routes`: every route declared once with the access it needs, and the one place where
//!   authentication, the IP allowlist and tenant scoping run; `openapi`: the OpenAPI 3.1
//!   document built from that table (`GET /v1/openapi.json`);
//! - `auth`: principals, actions and the one `authorize` decision; `access`: bearer tokens
//!   (sessions and API keys) to principals, API keys, the IP allowlist, [`PeerAddr`];
//! - one file per resource: `sessions` (login, password change), `admin` (tenants, sites,
//!   enrollment tokens, agents, printers, audit), `labels`, `users`, `compliance`
//!   (subscription, billing webhook, attestation, terms, suspension, audit verification),
//!   `alerts` (alerts, canaries), `security` (audit export and checkpoints, tenant deletion),
//!   `notifications` (notifications, the outgoing webhook), `spapi` (SP-API connections, the
//!   shopping step, labels from SP-API sources);
//! - `error`: the `{"error":{"code","message","request_id"}}` answers; `tls`: rustls
//!   configuration and the self-signed certificate of `init`.
//!
//! Times in answers are unix milliseconds (integers) everywhere. Unknown JSON fields are
//! refused; bodies are capped at [`BODY_LIMIT`]. Nothing here logs label bytes, names,
//! addresses, tokens or passwords: only ids and hashes.
//!
//! What it does not do: deliver jobs (the mesh does, told through [`Dispatch`]) or call
//! SP-API itself (`spapi` hands that to [`crate::services::spapi`], in the background).

mod access;
mod admin;
mod alerts;
mod auth;
mod compliance;
mod error;
mod labels;
mod notifications;
mod openapi;
mod routes;
mod security;
mod sessions;
mod spapi;
mod tls;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};
use zeroize::Zeroizing;

pub use access::PeerAddr;
pub use auth::{authorize, Action, Principal};
pub use error::ApiError;
pub use tls::{load_tls, self_signed, tls_server_config, TlsError};

use crate::core::dispatcher::Dispatch;
use crate::store::{AuditEntry, Store};

/// Largest request body accepted (a base64 label of 8 MiB fits).
pub const BODY_LIMIT: usize = 12 * 1024 * 1024;
/// Most TLS connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler needs.
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// The mesh (or a test fake).
    pub dispatch: Arc<dyn Dispatch>,
    /// The coordinator's PeerId, for enrollment tokens.
    pub peer_id: String,
    /// The mesh multiaddrs put in enrollment tokens.
    pub mesh_addrs: Vec<String>,
    /// The agents' heartbeat period (an agent is online within three of them).
    pub heartbeat_interval: Duration,
    /// The billing webhook's HMAC secret; `None` turns the webhook off (503).
    pub billing_webhook_secret: Option<Zeroizing<Vec<u8>>>,
    /// The SP-API client (connections, shopping, background label fetches).
    pub spapi: crate::services::spapi::SpApi,
}

impl ApiState {
    /// Appends an audit entry; a failure is logged, not returned (the action already
    /// happened).
    pub(crate) fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
        now_ms: u64,
    ) {
        let entry = AuditEntry {
            at_ms: now_ms,
            tenant_id: tenant_id.map(str::to_owned),
            actor: actor.to_owned(),
            action: action.to_owned(),
            object: object.map(str::to_owned),
            outcome: outcome.to_owned(),
        };
        if let Err(e) = self.store.append_audit(entry) {
            warn!(error = %e, action, "audit entry not written");
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    body: serde_json::Value,
    /// A body that is not one JSON value (JSON lines), with its content type.
    raw: Option<(&'static str, Vec<u8>)>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body,
            raw: None,
        }
    }

    pub(crate) fn raw(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body: serde_json::Value::Null,
            raw: Some((content_type, body)),
        }
    }

    pub(crate) fn ok(body: serde_json::Value) -> Reply {
        Reply::json(StatusCode::OK, body)
    }
}

/// The header that carries a request's id (set when the client sent none, echoed back).
pub(crate) const REQUEST_ID: &str = "x-request-id";
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(axum::body::Body::from(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The answer for a handler's result; an error carries `request_id`.
pub(crate) fn respond(result: Result<Reply, ApiError>, request_id: Option<&str>) -> Response {
    match result {
        Ok(Reply {
            status,
            raw: Some((content_type, bytes)),
            ..
        }) => {
            let mut resp = json_response(status, &serde_json::Value::Null);
            *resp.body_mut() = axum::body::Body::from(bytes);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Ok(r) => json_response(r.status, &r.body),
        Err(e) => {
            let mut body = e.body();
            if let (Some(id), Some(err)) = (request_id, body.get_mut("error")) {
                err["request_id"] = serde_json::Value::from(id);
            }
            let mut resp = json_response(e.status, &body);
            if e.status == StatusCode::TOO_MANY_REQUESTS {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(error::BUSY_RETRY_AFTER_SECS));
            }
            resp
        }
    }
}

/// Parses a JSON body into `T` (which should `deny_unknown_fields`); an empty body counts as
/// `{}`.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| error::json_error(&e))
}

/// Reads a whole body of at most [`BODY_LIMIT`] bytes (413 past it, whether announced by
/// Content-Length or not).
async fn read_body(body: axum::body::Body) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if declared > BODY_LIMIT {
        return Err(ApiError::too_large(BODY_LIMIT));
    }
    // Reserve up front so the buffer (which may hold PII) is not reallocated and left behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(declared));
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let limited = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if limited {
                return ApiError::too_large(BODY_LIMIT);
            }
            debug!(error = %e, "request body not read");
            ApiError::bad_request("request body could not be read")
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > BODY_LIMIT {
                return Err(ApiError::too_large(BODY_LIMIT));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Gives a JSON error body (with the request id) to the answers that the middleware makes
/// itself: 408 on timeout, 413 past the body limit.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let status = resp.status();
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let e = match status {
        StatusCode::REQUEST_TIMEOUT => ApiError::timeout(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(BODY_LIMIT),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
        StatusCode::NOT_FOUND => ApiError::not_found("route"),
        _ => ApiError::bad_request("request refused"),
    };
    let mut out = respond(Err(ApiError { status, ..e }), id.as_deref());
    for (name, value) in resp.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The API as one tower service: the route table behind request ids (`x-request-id`,
/// made when absent and echoed), tracing, a [`REQUEST_TIMEOUT`] and the [`BODY_LIMIT`].
pub fn app(state: Arc<ApiState>) -> axum::Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let header = hyper::header::HeaderName::from_static(REQUEST_ID);
    // The last layer added runs first.
    routes::router(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &Request<axum::body::Body>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    info_span!("api_request", method = %req.method(), request_id = %id)
                },
            ),
        )
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// Answers one request through [`app`] (no socket: what the unit tests drive). Never panics
/// on bad input; every failure is a JSON error answer.
pub async fn handle<B>(state: &Arc<ApiState>, req: Request<B>) -> Response
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let req = req.map(axum::body::Body::new);
    match tower::ServiceExt::oneshot(app(state.clone()), req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Checks that `principal` may do `action` on `tenant_id` and that the tenant exists.
pub(crate) fn tenant_scope(
    state: &ApiState,
    principal: &Principal,
    tenant_id: &str,
    action: Action,
) -> Result<(), ApiError> {
    authorize(principal, Some(tenant_id), action)?;
    if state.store.tenant(tenant_id)?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    Ok(())
}

/// Serves the API on `listener` until `shutdown`: TLS per connection (10 s handshake
/// timeout), HTTP/1.1 and HTTP/2, at most [`MAX_CONNECTIONS`] at once. On shutdown it stops
/// accepting and asks every connection to finish its in-flight requests; connection tasks run
/// on `tracker`, so the caller drains them with a grace period.
///
/// Cancel-safe: it returns when `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<ApiState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = app(state);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                let _permit = permit;
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            debug!(error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!("tls handshake timed out");
                            return;
                        }
                    };
                let svc =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        // The IP allowlist is checked against the TCP peer (never a header).
                        req.extensions_mut().insert(PeerAddr(peer));
                        tower::ServiceExt::oneshot(app.clone(), req)
                    });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(tls), svc);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            debug!(error = %e, "connection ended with an error");
                        }
                    }
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        if let Err(e) = conn.await {
                            debug!(error = %e, "connection ended with an error while draining");
                        }
                    }
                }
            }
            .instrument(info_span!("api_conn", %peer)),
        );
    }
    info!("api stopped accepting");
}

#[cfg(test)]
mod tests;
