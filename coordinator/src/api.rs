//! The HTTPS admin API: JSON over hyper 1 and rustls (TLS 1.2 and 1.3), routed by axum.
//!
//! # Layout
//! - this file: [`ApiState`], replies and error answers, body limits, [`app`] (the route
//!   table behind tower-http's request ids, tracing, timeout and body limit) and [`handle`]
//!   (one request to one response, no socket: what the unit tests drive);
//! - `server`: [`serve`], the accept loop with TLS, the connection caps, timeouts and HTTP/2
//!   limits ([`ServerLimits`]), and graceful shutdown; it serves [`app`];
//! - `limits`: per-address rate limits of the unauthenticated routes, the login guard and
//!   the bound on password work;
//! - `routes`: every route declared once with the access it needs, and the one place where
//!   authentication, the IP allowlist, the public rate limit and tenant scoping run;
//!   `openapi`: the OpenAPI 3.1 document built from that table (`GET /v1/openapi.json`);
//! - `auth`: principals, actions and the one `authorize` decision; `access`: bearer tokens
//!   (sessions and API keys) to principals, API keys, the IP allowlist, [`PeerAddr`];
//! - one file per resource: `sessions` (login, password change), `admin` (tenants, sites,
//!   enrollment tokens, agents, printers, audit), `agent_policy` (a tenant's minimum agent
//!   version), `labels`, `users`, `compliance`
//!   (subscription, billing webhook, attestation, terms, suspension, audit verification),
//!   `alerts` (alerts, canaries), `security` (audit export and checkpoints, tenant deletion),
//!   `notifications` (notifications, the outgoing webhook), `spapi` (SP-API connections, the
//!   shopping step, labels from SP-API sources);
//! - `error`: the `{"error":{"code","message","request_id"}}` answers; `tls`: rustls
//!   configuration and the self-signed certificate of `init`.
//!
//! Times in answers are unix milliseconds (integers) everywhere. Unknown JSON fields are
//! refused; bodies are capped at [`BODY_LIMIT`] ([`PUBLIC_BODY_LIMIT`] before
//! authentication) and read into buffers that grow with the bytes received. The
//! unauthenticated routes (login, password change, billing webhook) are rate-limited per
//! address (429 with a Retry-After); `GET /healthz` and `GET /v1/openapi.json` are not
//! (they read nothing). Nothing here logs label bytes, names, addresses, tokens or
//! passwords: only ids and hashes.
//!
//! What it does not do: deliver jobs (the mesh does, told through [`Dispatch`]) or call
//! SP-API itself (`spapi` hands that to [`crate::services::spapi`], in the background).

mod access;
mod access_log;
mod admin;
mod agent_policy;
mod alerts;
mod auth;
mod compliance;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod idempotency;
mod labels;
pub mod limits;
mod notifications;
mod openapi;
mod page;
mod releases;
mod route;
mod routes;
mod security;
mod server;
mod sessions;
mod settle;
mod spapi;
mod tls;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;
use tracing::{debug, info_span};
use zeroize::Zeroizing;

pub use access::PeerAddr;
pub use access_log::ACCESS_TARGET;
pub use auth::{authorize, Action, Principal};
pub use error::ApiError;
pub use server::{serve, BodyError, ServerLimits};
pub use tls::{load_tls, self_signed, tls_server_config, TlsError};

use crate::core::dispatcher::Dispatch;
use crate::core::readiness::Readiness;
use crate::store::Store;

/// Largest request body accepted (a base64 label of 8 MiB fits).
pub const BODY_LIMIT: usize = 12 * 1024 * 1024;
/// Largest request body of the unauthenticated routes (login, password change, billing
/// webhook).
pub const PUBLIC_BODY_LIMIT: usize = 64 * 1024;

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
    /// Unauthenticated failures (unknown logins, bad billing signatures), summarised.
    pub failures: crate::services::failures::FailureLog,
    /// Per-address limits of the unauthenticated routes, the login guard, the bound on
    /// password work.
    pub limits: limits::Limits,
    /// The global agent version policy (`--min-agent-version`); tenants may raise theirs.
    pub agent_versions: crate::core::agents::VersionPolicy,
    /// What `GET /readyz` answers.
    pub readiness: Arc<Readiness>,
    /// Agent releases (remote updates): the release public key and the artifacts.
    pub releases: crate::services::releases::Releases,
}

impl ApiState {
    /// Appends an audit entry through [`Store::audit`] (a failure is logged, not returned).
    pub(crate) fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
        now_ms: u64,
    ) {
        self.store
            .audit(tenant_id, actor, action, object, outcome, now_ms);
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    body: serde_json::Value,
    /// A body that is not one JSON value (JSON lines), with its content type.
    raw: Option<(&'static str, Vec<u8>)>,
    /// Headers to add (pagination).
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body,
            raw: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn raw(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body: serde_json::Value::Null,
            raw: Some((content_type, body)),
            headers: Vec::new(),
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
        Ok(r) => {
            let mut resp = json_response(r.status, &r.body);
            for (name, value) in r.headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        }
        Err(e) => {
            let mut body = e.body();
            if let (Some(id), Some(err)) = (request_id, body.get_mut("error")) {
                err["request_id"] = serde_json::Value::from(id);
            }
            let mut resp = json_response(e.status, &body);
            let retry_after = e
                .retry_after_secs
                .or((e.status == StatusCode::TOO_MANY_REQUESTS)
                    .then_some(error::BUSY_RETRY_AFTER_SECS));
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
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

/// Reads a body of at most `limit` bytes into a zeroizing buffer that grows with the bytes
/// received (never reserved from a declared length): 413 past it, whether announced by
/// Content-Length or not; 408 when the server's body deadline ([`BodyError::Deadline`])
/// passes.
async fn read_body(
    body: axum::body::Body,
    content_length: Option<usize>,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut buf = Zeroizing::new(Vec::new());
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            // The cause sits somewhere down the chain (axum and tower-http box it).
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(c) = cause {
                if c.is::<http_body_util::LengthLimitError>() {
                    return ApiError::too_large(BODY_LIMIT);
                }
                if matches!(c.downcast_ref::<BodyError>(), Some(BodyError::Deadline)) {
                    debug!("request body too slow");
                    return ApiError::body_timeout();
                }
                cause = c.source();
            }
            debug!(error = %e, "request body not read");
            ApiError::bad_request("request body could not be read")
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            crate::core::buffer::push_zeroizing(&mut buf, &data, limit);
        }
    }
    Ok(buf)
}

/// The per-address rate limit of the unauthenticated routes.
pub(crate) fn public_rate(
    state: &ApiState,
    peer: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    state
        .limits
        .public
        .check(limits::AddressKey::of(peer), Instant::now())
        .map_err(|secs| {
            debug!("unauthenticated request over the address's rate");
            ApiError::rate_limited("too many requests from this address: retry later", secs)
        })
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
/// made when absent and echoed), the access log, tracing, a [`REQUEST_TIMEOUT`] and the
/// [`BODY_LIMIT`].
pub fn app(state: Arc<ApiState>) -> axum::Router {
    with_middleware(routes::router(state))
}

/// What answers on the API's address while the coordinator starts (until the store, the CA
/// and the mesh are up) and while it drains: `GET /healthz` 200, `GET /readyz` 503 with
/// what is up, anything else 503 `unavailable` with a Retry-After; behind the same
/// middleware as [`app`] (request ids, access log).
pub fn standby(readiness: Arc<Readiness>) -> axum::Router {
    use axum::routing::get;
    let router = axum::Router::new()
        .route(
            "/healthz",
            get(|| async {
                access_log::templated(
                    respond(Ok(Reply::ok(serde_json::json!({"status": "ok"}))), None),
                    "/healthz",
                )
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                access_log::templated(respond(Ok(readyz(&readiness)), None), "/readyz")
            }),
        )
        .fallback(|req: Request<axum::body::Body>| async move {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut e = ApiError::unavailable("the coordinator is starting or draining: retry");
            e.retry_after_secs = Some(1);
            respond(Err(e), id.as_deref())
        });
    with_middleware(router)
}

/// `GET /readyz`: 200 when every part is up and the coordinator is not draining, else 503;
/// the body names the parts either way.
pub(crate) fn readyz(readiness: &Readiness) -> Reply {
    let s = readiness.snapshot();
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Reply::json(
        status,
        serde_json::json!({
            "status": s.status(),
            "store": s.store,
            "ca": s.ca,
            "mesh": s.mesh,
            "draining": s.draining,
        }),
    )
}

/// Caps every request body at [`BODY_LIMIT`], except a release artifact's upload (streamed to
/// a file, capped by its manifest's size and [`releases::ARTIFACT_LIMIT`]).
async fn body_limit(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    if releases::is_artifact_upload(req.uri().path()) {
        return next.run(req).await;
    }
    let too_long = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > BODY_LIMIT);
    if too_long {
        return axum::response::IntoResponse::into_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let (parts, body) = req.into_parts();
    let limited = axum::body::Body::new(http_body_util::Limited::new(body, BODY_LIMIT));
    next.run(Request::from_parts(parts, limited)).await
}

fn with_middleware(router: axum::Router) -> axum::Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let header = hyper::header::HeaderName::from_static(REQUEST_ID);
    // The last layer added runs first.
    router
        .layer(axum::middleware::from_fn(body_limit))
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
        .layer(axum::middleware::from_fn(access_log::log))
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

#[cfg(test)]
mod tests;
