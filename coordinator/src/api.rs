//! The HTTPS admin API: JSON over hyper 1 and rustls (TLS 1.2 and 1.3).
//!
//! # Layout
//! - this file: [`ApiState`], the [`Dispatch`] boundary to the mesh, routing, body limits,
//!   [`handle`] (one request to one response, no socket: what the unit tests drive);
//! - `server`: [`serve`], the accept loop with TLS, the connection caps, timeouts and HTTP/2
//!   limits ([`ServerLimits`]), and graceful shutdown;
//! - `limits`: per-address rate limits of the unauthenticated routes, the login guard and
//!   the bound on password work;
//! - `auth`: bearer tokens to principals, and the one `authorize` decision;
//! - `sessions`: login and password change; `admin`: tenants, sites, enrollment tokens,
//!   agents, printers, audit; `labels`: label submission and job state;
//! - `compliance`: the routes of accounts and compliance (users, subscription and billing
//!   webhook, attestation, terms, suspension, audit verification, compliance state), routed as
//!   one group; `users`: tenant users and roles;
//! - `security`: the routes of retention, monitoring and integration access (alerts, canaries,
//!   API keys, IP allowlist, audit checkpoints, tenant deletion), routed as one group, with
//!   `alerts` and `access` (API keys, IP allowlist, [`PeerAddr`]);
//! - `notifications`: a tenant's notifications and outgoing webhook, routed as one group;
//! - `spapi`: SP-API connections, the shopping step, and labels from SP-API sources;
//! - `error`: the `{"error":{"code","message"}}` answers; `tls`: rustls configuration and the
//!   self-signed certificate of `init`.
//!
//! Times in answers are unix milliseconds (integers) everywhere. Unknown JSON fields are
//! refused; bodies are capped at [`BODY_LIMIT`] ([`PUBLIC_BODY_LIMIT`] before
//! authentication) and read into buffers that grow with the bytes received. The
//! unauthenticated routes (login, password change, billing webhook) are rate-limited per
//! address (429 with a Retry-After); `/healthz` is not (it reads nothing). Nothing here logs label bytes, names,
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
pub mod limits;
mod notifications;
mod security;
mod server;
mod sessions;
mod spapi;
mod tls;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use sealprint_protocol::validate_id;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use zeroize::Zeroizing;

pub use access::PeerAddr;
pub use auth::{authorize, Action, Principal};
pub use error::ApiError;
pub use server::{serve, BodyError, ServerLimits};
pub use tls::{load_tls, self_signed, tls_server_config, TlsError};

use crate::core::dispatcher::Dispatch;
use crate::store::{AuditEntry, Store};

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

fn respond(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Healthz,
    Sessions,
    Tenants,
    Sites(&'a str),
    EnrollmentTokens(&'a str, &'a str),
    Agents(&'a str),
    Revoke(&'a str, &'a str),
    Printers(&'a str),
    AcceptPrinter(&'a str, &'a str),
    Labels(&'a str),
    Label(&'a str, &'a str),
    Audit(&'a str),
    /// Audit entries of no tenant (platform admins): summaries of strangers' failures.
    SystemAudit,
    Compliance(compliance::Route<'a>),
    Security(security::Route<'a>),
    Notifications(notifications::Route<'a>),
    /// `…/spapi-connections…`: the tenant and the rest of the path (checked in `spapi`).
    Spapi(&'a str, &'a str),
}

impl Route<'_> {
    fn allows(&self, m: &Method) -> bool {
        match self {
            Route::Healthz
            | Route::Agents(_)
            | Route::Printers(_)
            | Route::Label(..)
            | Route::Audit(_)
            | Route::SystemAudit => m == Method::GET,
            Route::Sessions
            | Route::EnrollmentTokens(..)
            | Route::Revoke(..)
            | Route::AcceptPrinter(..)
            | Route::Labels(_) => m == Method::POST,
            Route::Tenants | Route::Sites(_) => m == Method::GET || m == Method::POST,
            Route::Compliance(r) => r.allows(m),
            Route::Security(r) => r.allows(m),
            Route::Notifications(r) => r.allows(m),
            Route::Spapi(..) => m == Method::GET || m == Method::POST,
        }
    }
}

fn route(path: &str) -> Option<Route<'_>> {
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let ids_ok = |ids: &[&str]| ids.iter().all(|s| validate_id(s).is_ok());
    if let Some(r) = compliance::route(&segs) {
        return Some(Route::Compliance(r));
    }
    if let Some(r) = security::route(&segs) {
        return Some(Route::Security(r));
    }
    if let Some(r) = notifications::route(&segs) {
        return Some(Route::Notifications(r));
    }
    let r = match segs.as_slice() {
        ["healthz"] => Route::Healthz,
        ["v1", "sessions"] => Route::Sessions,
        ["v1", "tenants"] => Route::Tenants,
        ["v1", "tenants", t, "sites"] => Route::Sites(t),
        ["v1", "tenants", t, "sites", s, "enrollment-tokens"] => Route::EnrollmentTokens(t, s),
        ["v1", "tenants", t, "agents"] => Route::Agents(t),
        ["v1", "tenants", t, "agents", a, "revoke"] => Route::Revoke(t, a),
        ["v1", "tenants", t, "printers"] => Route::Printers(t),
        ["v1", "tenants", t, "printers", p, "accept"] => Route::AcceptPrinter(t, p),
        ["v1", "tenants", t, "labels"] => Route::Labels(t),
        ["v1", "tenants", t, "labels", j] => Route::Label(t, j),
        ["v1", "tenants", t, "audit"] => Route::Audit(t),
        ["v1", "audit"] => Route::SystemAudit,
        ["v1", "tenants", t, "spapi-connections", ..] => Route::Spapi(
            t,
            path.split_once("/spapi-connections").map_or("", |(_, r)| r),
        ),
        _ => return None,
    };
    let ok = match r {
        Route::Healthz
        | Route::Sessions
        | Route::Tenants
        | Route::SystemAudit
        | Route::Compliance(_)
        | Route::Security(_)
        | Route::Notifications(_) => true,
        Route::Sites(t)
        | Route::Agents(t)
        | Route::Printers(t)
        | Route::Labels(t)
        | Route::Audit(t)
        | Route::Spapi(t, _) => ids_ok(&[t]),
        Route::EnrollmentTokens(t, x)
        | Route::Revoke(t, x)
        | Route::AcceptPrinter(t, x)
        | Route::Label(t, x) => ids_ok(&[t, x]),
    };
    ok.then_some(r)
}

/// Reads a body of at most `limit` bytes into a zeroizing buffer that grows with the bytes
/// received (never reserved from a declared length).
async fn read_body<B>(
    body: B,
    content_length: Option<usize>,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + 'static,
{
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut buf = Zeroizing::new(Vec::new());
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: &(dyn std::error::Error + 'static) = &e;
            if matches!(e.downcast_ref::<BodyError>(), Some(BodyError::Deadline)) {
                debug!("request body too slow");
                ApiError::body_timeout()
            } else {
                debug!(error = %e, "request body not read");
                ApiError::bad_request("request body could not be read")
            }
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
fn public_rate(state: &ApiState, peer: Option<std::net::IpAddr>) -> Result<(), ApiError> {
    state
        .limits
        .public
        .check(limits::AddressKey::of(peer), Instant::now())
        .map_err(|secs| {
            debug!("unauthenticated request over the address's rate");
            ApiError::rate_limited("too many requests from this address: retry later", secs)
        })
}

/// Answers one request. Never panics on bad input; every failure is a JSON error answer.
pub async fn handle<B>(state: &ApiState, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + 'static,
{
    match handle_inner(state, req).await {
        Ok(Reply {
            status,
            raw: Some((content_type, bytes)),
            ..
        }) => {
            let mut resp = respond(status, &serde_json::Value::Null);
            *resp.body_mut() = Full::new(Bytes::from(bytes));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        }
        Ok(r) => respond(r.status, &r.body),
        Err(e) => {
            let mut resp = respond(e.status, &e.body());
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

async fn handle_inner<B>(state: &ApiState, req: Request<B>) -> Result<Reply, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + 'static,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let r = route(path).ok_or_else(|| ApiError::not_found("route"))?;
    if !r.allows(&parts.method) {
        return Err(ApiError::method_not_allowed());
    }
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let now = crate::core::clock::now_ms();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    match r {
        Route::Healthz => return Ok(Reply::ok(serde_json::json!({"status": "ok"}))),
        Route::Sessions => {
            public_rate(state, peer)?;
            let body = read_body(body, content_length, PUBLIC_BODY_LIMIT).await?;
            return sessions::create(state, &body, peer).await;
        }
        Route::Compliance(c) if c.is_public() => {
            public_rate(state, peer)?;
            let body = read_body(body, content_length, PUBLIC_BODY_LIMIT).await?;
            return compliance::handle_public(state, c, &parts.headers, &body, peer).await;
        }
        _ => {}
    }
    let who = auth::authenticate(state, &parts.headers, now)?;
    access::check_ip(state, &who, peer, now)?;
    let body = read_body(body, content_length, BODY_LIMIT).await?;
    let post = parts.method == Method::POST;
    match r {
        Route::Tenants if post => admin::create_tenant(state, &who, &body, now),
        Route::Tenants => admin::list_tenants(state, &who),
        Route::Sites(t) if post => admin::create_site(state, &who, t, &body, now),
        Route::Sites(t) => admin::list_sites(state, &who, t),
        Route::EnrollmentTokens(t, s) => {
            admin::create_enrollment_token(state, &who, t, s, &body, now)
        }
        Route::Agents(t) => admin::list_agents(state, &who, t, now),
        Route::Revoke(t, a) => admin::revoke_agent(state, &who, t, a, now),
        Route::Printers(t) => admin::list_printers(state, &who, t),
        Route::AcceptPrinter(t, p) => admin::accept_printer(state, &who, t, p, now),
        Route::Labels(t) => labels::submit(state, &who, t, &body, now),
        Route::Label(t, j) => labels::get(state, &who, t, j),
        Route::Audit(t)
            if parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "format=jsonl")) =>
        {
            security::export_audit(state, &who, t)
        }
        Route::Audit(t) => admin::list_audit(state, &who, t),
        Route::SystemAudit => admin::list_system_audit(state, &who),
        Route::Compliance(c) => compliance::handle(state, &who, c, &parts.method, &body, now).await,
        Route::Security(r) => security::handle(state, &who, r, &parts.method, &body, peer, now),
        Route::Notifications(r) => notifications::handle(state, &who, r, &parts.method, &body, now),
        Route::Spapi(t, rest) => {
            spapi::route(state, &who, t, rest, &parts.method, &body, now).await
        }
        Route::Healthz | Route::Sessions => Err(ApiError::not_found("route")),
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
