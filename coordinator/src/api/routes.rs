//! The route table: every route of the admin API, declared once with the access it needs,
//! and the one place where a request is checked before its handler runs.
//!
//! [`ROUTES`] lists `(method, path, access, handler)`; [`router`] turns it into an axum
//! [`Router`] (unknown paths 404, known paths with another method 405 with `Allow`), and
//! the OpenAPI document (`openapi`) is built from the same table. [`run`] does the checks of
//! every route, in this order: path ids (404), authentication (401), the IP allowlist (403),
//! the body (400/413), then for a tenant route the permission and the tenant (403/404).
//! Handlers get a [`Call`] that already passed them.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, Method, Request};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use sealprint_protocol::validate_id;

use super::access_log::templated;
use super::auth::Action;
use super::error::ApiError;
use super::route::{any_object, schema, Access, BodySchema, Call, Route};
use super::{
    access, admin, agent_policy, alerts, compliance, idempotency, labels, notifications, openapi,
    page, public_rate, read_body, readyz, releases, respond, security, sessions, settle, spapi,
    tenant_scope, users, ApiState, PeerAddr, Reply, BODY_LIMIT, PUBLIC_BODY_LIMIT,
};

/// Declares one route: `route!(METHOD "path", access, "summary", body, |c| handler)`.
macro_rules! route {
    ($method:ident $path:literal, $access:expr, $summary:literal, $body:expr, |$c:ident| $run:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            access: $access,
            summary: $summary,
            body: $body,
            handler: |$c: Call| Box::pin(async move { $run }),
        }
    };
}

use Access::{Label, Public, Signed, Tenant};

/// No body.
const NONE: Option<BodySchema> = None;

/// The OpenAPI document of [`ROUTES`], built once.
fn openapi_document() -> serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| openapi::document_json(ROUTES)).clone()
}

/// Every route of the API. Keep README.md's route table in step (a test compares them).
pub(crate) static ROUTES: &[Route] = &[
    route!(GET "/healthz", Public, "Liveness", NONE, |_c| Ok(Reply::ok(serde_json::json!({"status": "ok"})))),
    route!(GET "/readyz", Public, "Readiness: 503 until the store, the CA and the mesh listener are up, and while draining", NONE, |c| Ok(readyz(&c.state.readiness))),
    route!(GET "/v1/openapi.json", Public, "This API's OpenAPI 3.1 document", NONE, |_c| Ok(Reply::ok(openapi_document()))),
    route!(POST "/v1/sessions", Public, "Log in (email, password): a session token", Some(schema::<sessions::Login>), |c| sessions::create(&c.state, &c.body, c.peer).await),
    route!(POST "/v1/sessions/password", Public, "Change a password (email, old and new password)", Some(schema::<sessions::ChangePassword>), |c| sessions::change_password(&c.state, &c.body, c.peer).await),
    route!(POST "/v1/billing/webhook", Public, "The billing provider's signed webhook", Some(any_object), |c| compliance::billing_webhook(
        &c.state,
        c.headers.get(compliance::SIGNATURE_HEADER).map(|v| v.to_str()),
        &c.body,
        c.peer,
        c.now,
    )),
    route!(GET "/v1/tenants", Signed, "List tenants (platform admin)", NONE, |c| admin::list_tenants(&c.state, c.who()?)),
    route!(POST "/v1/tenants", Signed, "Create a tenant (platform admin)", Some(schema::<admin::NameBody>), |c| admin::create_tenant(&c.state, c.who()?, &c.body, c.now)),
    route!(GET "/v1/audit", Signed, "Entries of no tenant: summaries of strangers' failures (platform admin)", NONE, |c| admin::list_system_audit(&c.state, c.who()?)),
    route!(GET "/v1/tenants/{tenant}/sites", Tenant(Action::ReadSites), "List sites", NONE, |c| admin::list_sites(&c.state, c.param(0))),
    route!(POST "/v1/tenants/{tenant}/sites", Tenant(Action::CreateSite), "Create a site", Some(schema::<admin::NameBody>), |c| admin::create_site(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(POST "/v1/tenants/{tenant}/sites/{site}/enrollment-tokens", Tenant(Action::CreateEnrollmentToken), "Create an enrollment token for a site", Some(schema::<admin::TokenBody>), |c| admin::create_enrollment_token(&c.state, c.who()?, c.param(0), c.param(1), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/agents", Tenant(Action::ReadAgents), "List agents", NONE, |c| admin::list_agents(&c.state, c.param(0), c.now)),
    route!(POST "/v1/tenants/{tenant}/agents/{agent}/revoke", Tenant(Action::RevokeAgent), "Revoke an agent", NONE, |c| admin::revoke_agent(&c.state, c.who()?, c.param(0), c.param(1), c.now)),
    route!(GET "/v1/tenants/{tenant}/agent-policy", Tenant(Action::ManageAgentPolicy), "The tenant's minimum agent version, the global one and the one applied", NONE, |c| agent_policy::get(&c.state, c.param(0), c.now)),
    route!(PUT "/v1/tenants/{tenant}/agent-policy", Tenant(Action::ManageAgentPolicy), "Set or remove the tenant's minimum agent version (raises the global one)", Some(schema::<agent_policy::AgentPolicyBody>), |c| agent_policy::put(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/desired-version", Tenant(Action::ManageAgentPolicy), "The desired agent version and rollout of the tenant (`?site=` for a site's own)", NONE, |c| releases::get_desired(&c.state, c.param(0), c.query.as_deref())),
    route!(PUT "/v1/tenants/{tenant}/desired-version", Tenant(Action::ManageAgentPolicy), "Set or remove the desired agent version and rollout percentage of the tenant or one of its sites (remote updates)", Some(schema::<releases::DesiredBody>), |c| releases::put_desired(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/releases", Signed, "Uploaded agent releases and their artifacts (platform admin)", NONE, |c| releases::list(&c.state, c.who()?)),
    route!(PUT "/v1/releases/{version}/manifest", Signed, "Upload a release's signed manifest, verified against the release public key (platform admin)", Some(any_object), |c| releases::put_manifest(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(PUT "/v1/releases/{version}/artifacts/{artifact}", Signed, "Upload a release artifact's bytes (octet-stream, streamed; size and SHA-256 checked against the manifest; platform admin)", NONE, |c| {
        let mut c = c;
        let upload = c.upload.take();
        releases::put_artifact(&c.state, c.who()?, c.param(0), c.param(1), upload, c.now).await
    }),
    route!(GET "/v1/tenants/{tenant}/printers", Tenant(Action::ReadPrinters), "List printers", NONE, |c| admin::list_printers(&c.state, c.param(0))),
    route!(POST "/v1/tenants/{tenant}/printers/{printer}/accept", Tenant(Action::AcceptPrinter), "Accept a printer", NONE, |c| admin::accept_printer(&c.state, c.who()?, c.param(0), c.param(1), c.now)),
    route!(POST "/v1/tenants/{tenant}/labels", Label, "Submit a label (bytes, or an SP-API source; a reprint needs pii_reader)", Some(any_object), |c| labels::submit(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/labels", Tenant(Action::ReadLabel), "List label jobs (filters: status, pool, printer, agent, created_after, created_before, client_reference, reprint; pages: limit, starting_after)", NONE, |c| labels::list(&c.state, c.param(0), c.query.as_deref())),
    route!(GET "/v1/tenants/{tenant}/labels/{job}", Tenant(Action::ReadLabel), "A label job's state", NONE, |c| labels::get(&c.state, c.param(0), c.param(1))),
    route!(POST "/v1/tenants/{tenant}/labels/{job}/resolve", Tenant(Action::SettleLabel), "Resolve a job in doubt (outcome printed: it ends printed; not_printed: it is queued again); 409 not_in_doubt otherwise", Some(schema::<settle::ResolveBody>), |c| settle::resolve(&c.state, c.who()?, c.param(0), c.param(1), &c.body).await),
    route!(POST "/v1/tenants/{tenant}/labels/{job}/cancel", Tenant(Action::SettleLabel), "Cancel a queued job (never sent, its label deleted); 409 not_queued once dispatched", NONE, |c| settle::cancel(&c.state, c.who()?, c.param(0), c.param(1)).await),
    route!(GET "/v1/tenants/{tenant}/audit", Tenant(Action::ReadAudit), "The tenant's audit entries (`?format=jsonl`: JSON lines with chain hashes)", NONE, |c| {
        let jsonl = c.query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "format=jsonl"));
        if jsonl {
            security::export_audit(&c.state, c.param(0))
        } else {
            admin::list_audit(&c.state, c.param(0))
        }
    }),
    route!(GET "/v1/tenants/{tenant}/audit/verify", Tenant(Action::ReadAudit), "Verify the audit chain", NONE, |c| compliance::verify_audit(&c.state, c.param(0))),
    route!(GET "/v1/tenants/{tenant}/audit/checkpoints", Tenant(Action::ReadAudit), "List signed audit checkpoints", NONE, |c| security::list_checkpoints(&c.state)),
    route!(POST "/v1/tenants/{tenant}/audit/checkpoints", Tenant(Action::ReadAudit), "Sign an audit checkpoint", NONE, |c| security::sign_checkpoint(&c.state, c.who()?, c.param(0), c.now)),
    route!(GET "/v1/tenants/{tenant}/compliance", Tenant(Action::ReadCompliance), "The tenant's compliance state", NONE, |c| compliance::get_compliance(&c.state, c.param(0), c.now)),
    route!(GET "/v1/tenants/{tenant}/users", Tenant(Action::ReadUsers), "List users", NONE, |c| users::list(&c.state, c.param(0), c.now)),
    route!(POST "/v1/tenants/{tenant}/users", Tenant(Action::ManageUsers), "Create a user", Some(schema::<users::NewUser>), |c| users::create(&c.state, c.who()?, c.param(0), &c.body, c.now).await),
    route!(PATCH "/v1/tenants/{tenant}/users/{user}", Tenant(Action::ManageUsers), "Change a user's roles or disable it", Some(schema::<users::UserPatch>), |c| users::update(&c.state, c.who()?, c.param(0), c.param(1), &c.body, c.now)),
    route!(PUT "/v1/tenants/{tenant}/subscription", Tenant(Action::UpdateSubscription), "Set the subscription (platform admin)", Some(any_object), |c| compliance::put_subscription(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/attestation", Tenant(Action::ReadCompliance), "The security attestation", NONE, |c| compliance::get_attestation(&c.state, c.param(0), c.now)),
    route!(PUT "/v1/tenants/{tenant}/attestation", Tenant(Action::Attest), "Answer the security attestation", Some(any_object), |c| compliance::put_attestation(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(PUT "/v1/tenants/{tenant}/terms", Tenant(Action::Attest), "Accept the terms", Some(any_object), |c| compliance::put_terms(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(POST "/v1/tenants/{tenant}/suspend", Tenant(Action::SuspendTenant), "Suspend the tenant (platform admin)", Some(any_object), |c| compliance::suspend(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(POST "/v1/tenants/{tenant}/resume", Tenant(Action::SuspendTenant), "Lift a suspension (platform admin)", NONE, |c| compliance::resume(&c.state, c.who()?, c.param(0), c.now)),
    route!(GET "/v1/tenants/{tenant}/alerts", Tenant(Action::ReadAlerts), "List alerts", NONE, |c| alerts::list(&c.state, c.param(0))),
    route!(POST "/v1/tenants/{tenant}/alerts/{alert}/clear", Tenant(Action::ClearAlert), "Clear an alert", NONE, |c| alerts::clear(&c.state, c.who()?, c.param(0), c.param(1), c.now)),
    route!(GET "/v1/tenants/{tenant}/canaries", Tenant(Action::ManageCanaries), "The canary order ids", NONE, |c| alerts::get_canaries(&c.state, c.param(0))),
    route!(PUT "/v1/tenants/{tenant}/canaries", Tenant(Action::ManageCanaries), "Set the canary order ids", Some(any_object), |c| alerts::put_canaries(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/api-keys", Tenant(Action::ManageApiKeys), "List API keys", NONE, |c| access::list_keys(&c.state, c.param(0), c.now)),
    route!(POST "/v1/tenants/{tenant}/api-keys", Tenant(Action::ManageApiKeys), "Create an API key", Some(any_object), |c| access::create_key(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(DELETE "/v1/tenants/{tenant}/api-keys/{key}", Tenant(Action::ManageApiKeys), "Revoke an API key", NONE, |c| access::revoke_key(&c.state, c.who()?, c.param(0), c.param(1), c.now)),
    route!(GET "/v1/tenants/{tenant}/ip-allowlist", Tenant(Action::ReadCompliance), "The IP allowlist", NONE, |c| access::get_allowlist(&c.state, c.param(0))),
    route!(PUT "/v1/tenants/{tenant}/ip-allowlist", Tenant(Action::ManageNetwork), "Set the IP allowlist", Some(any_object), |c| access::put_allowlist(&c.state, c.who()?, c.param(0), &c.body, c.peer, c.now)),
    route!(POST "/v1/tenants/{tenant}/deletion", Tenant(Action::DeleteTenant), "Delete the tenant (crypto-shred)", Some(any_object), |c| security::delete_tenant(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(GET "/v1/tenants/{tenant}/notifications", Tenant(Action::ReadNotifications), "List notifications", NONE, |c| notifications::list(&c.state, c.param(0))),
    route!(GET "/v1/tenants/{tenant}/webhook", Tenant(Action::ReadNotifications), "The outgoing webhook", NONE, |c| notifications::get_webhook(&c.state, c.param(0))),
    route!(PUT "/v1/tenants/{tenant}/webhook", Tenant(Action::ManageWebhook), "Set the outgoing webhook", Some(any_object), |c| notifications::put_webhook(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(DELETE "/v1/tenants/{tenant}/webhook", Tenant(Action::ManageWebhook), "Delete the outgoing webhook", NONE, |c| notifications::delete_webhook(&c.state, c.who()?, c.param(0), c.now)),
    route!(POST "/v1/tenants/{tenant}/webhook/test", Tenant(Action::ManageWebhook), "Send a test event to the webhook", NONE, |c| notifications::test_webhook(&c.state, c.param(0), c.now)),
    route!(GET "/v1/tenants/{tenant}/spapi-connections", Tenant(Action::ReadSites), "List SP-API connections", NONE, |c| spapi::list_connections(&c.state, c.param(0))),
    route!(POST "/v1/tenants/{tenant}/spapi-connections", Tenant(Action::CreateSite), "Create an SP-API connection", Some(any_object), |c| spapi::create_connection(&c.state, c.who()?, c.param(0), &c.body, c.now)),
    route!(POST "/v1/tenants/{tenant}/spapi-connections/{connection}/eligible-services", Tenant(Action::SubmitLabel), "Shopping: eligible shipping services", Some(any_object), |c| spapi::eligible_services(&c.state, c.param(0), c.param(1), &c.body).await),
    route!(POST "/v1/tenants/{tenant}/spapi-connections/{connection}/additional-seller-inputs", Tenant(Action::SubmitLabel), "Shopping: additional seller inputs", Some(any_object), |c| spapi::additional_seller_inputs(&c.state, c.param(0), c.param(1), &c.body).await),
    route!(POST "/v1/tenants/{tenant}/spapi-connections/{connection}/rates", Tenant(Action::SubmitLabel), "Shopping: rates", Some(any_object), |c| spapi::rates(&c.state, c.param(0), c.param(1), &c.body).await),
    route!(POST "/v1/tenants/{tenant}/spapi-connections/{connection}/additional-inputs", Tenant(Action::SubmitLabel), "Shopping: additional inputs of a rate", Some(any_object), |c| spapi::additional_inputs(&c.state, c.param(0), c.param(1), &c.body).await),
    route!(POST "/v1/tenants/{tenant}/spapi-connections/{connection}/cancel-shipment", Tenant(Action::SubmitLabel), "Cancel a shipment", Some(any_object), |c| spapi::cancel_shipment(&c.state, c.who()?, c.param(0), c.param(1), &c.body, c.now).await),
];

/// The checks of `route`'s [`Access`], then its handler.
async fn run(
    route: &'static Route,
    state: Arc<ApiState>,
    req: Request<Body>,
) -> Result<Reply, ApiError> {
    let (mut parts, body) = req.into_parts();
    let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(p) => p.iter().map(|(_, v)| v.to_owned()).collect::<Vec<_>>(),
        Err(_) => return Err(ApiError::not_found("route")),
    };
    if params.iter().any(|p| validate_id(p).is_err()) {
        return Err(ApiError::not_found("route"));
    }
    let now = crate::core::clock::now_ms();
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
    let who = match route.access {
        Public => {
            // Anyone may call these: each address gets a bounded rate (what reads nothing,
            // `/healthz` and the OpenAPI document, is exempt), and a small body.
            if route.method != Method::GET {
                public_rate(&state, peer)?;
            }
            None
        }
        Signed | Tenant(_) | Label => {
            let who = access::authenticate(&state, &parts.headers, now)?;
            access::check_ip(&state, &who, peer, now)?;
            Some(who)
        }
    };
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = if who.is_some() {
        BODY_LIMIT
    } else {
        PUBLIC_BODY_LIMIT
    };
    let (body, upload) = if route.path == releases::ARTIFACT_ROUTE && who.is_some() {
        (zeroize::Zeroizing::new(Vec::new()), Some(body))
    } else {
        (read_body(body, content_length, limit).await?, None)
    };
    if let Some(who) = &who {
        let tenant = params.first().map_or("", String::as_str);
        match route.access {
            Tenant(action) => tenant_scope(&state, who, tenant, action)?,
            Label => {
                let pii = spapi::pii_actions(&body);
                if pii.is_empty() {
                    tenant_scope(&state, who, tenant, Action::SubmitLabel)?;
                }
                for action in pii {
                    tenant_scope(&state, who, tenant, *action)?;
                }
            }
            Public | Signed => {}
        }
    }
    let claimed = if who.is_some()
        && route.method == Method::POST
        && idempotency::ROUTES.contains(&route.path)
    {
        let tenant = params.first().map_or("", String::as_str);
        match idempotency::begin(&state, tenant, &parts.headers, parts.uri.path(), &body, now)? {
            idempotency::Begin::Run(claimed) => claimed,
            idempotency::Begin::Answer(reply) => return Ok(reply),
        }
    } else {
        None
    };
    let paged = match page::paged(route.path) {
        Some(how) if route.method == Method::GET => {
            let mut pairs = page::pairs(parts.uri.query())?;
            let page = page::Page::take(&mut pairs, page::MAX_LIMIT)?;
            let audit = how.1 == "seq";
            pairs.retain(|(k, v)| !(audit && k == "format" && v == "jsonl"));
            page::no_more(&pairs, if audit { ", format=jsonl" } else { "" })?;
            Some((how, page))
        }
        _ => None,
    };
    let call = Call {
        state: state.clone(),
        who,
        params,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        upload,
        peer,
        now,
    };
    // The handlers of idempotent routes answer within one poll once started, so a client
    // that goes away cannot leave a job created and its key unanswered.
    let result = (route.handler)(call).await;
    if let Some(claimed) = claimed {
        idempotency::finish(&state, claimed, &result);
    }
    match (result, paged) {
        (Ok(reply), Some(((field, cursor), page))) => page_reply(reply, field, cursor, &page),
        (result, _) => result,
    }
}

/// Cuts the list in `reply` (its body, or the body's `field`) to `page`, with the
/// pagination headers; a raw body (the audit's JSON lines) is left whole.
fn page_reply(
    mut reply: Reply,
    field: Option<&str>,
    cursor: &str,
    page: &page::Page,
) -> Result<Reply, ApiError> {
    if reply.raw.is_some() {
        return Ok(reply);
    }
    let list = match field {
        Some(f) => reply.body.get_mut(f),
        None => Some(&mut reply.body),
    };
    if let Some(serde_json::Value::Array(items)) = list {
        let (more, next) = page::cut(items, cursor, page)?;
        reply.headers.push((page::HAS_MORE, more.to_string()));
        if let Some(next) = next {
            reply.headers.push((page::NEXT, next));
        }
    }
    Ok(reply)
}

/// The request id that `SetRequestId` put on the request.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn serve_route(route: &'static Route, state: Arc<ApiState>, req: Request<Body>) -> Response {
    let id = request_id(req.headers());
    templated(
        respond(run(route, state, req).await, id.as_deref()),
        route.path,
    )
}

async fn not_found(req: Request<Body>) -> Response {
    let id = request_id(req.headers());
    respond(Err(ApiError::not_found("route")), id.as_deref())
}

async fn method_not_allowed(req: Request<Body>) -> Response {
    let id = request_id(req.headers());
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| r.path == m.as_str()))
        .map_or("-", |r| r.path);
    templated(
        respond(Err(ApiError::method_not_allowed()), id.as_deref()),
        template,
    )
}

fn filter(m: &Method) -> MethodFilter {
    match *m {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::PATCH => MethodFilter::PATCH,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

/// The router of [`ROUTES`], without middleware (see `super::app`).
pub(crate) fn router(state: Arc<ApiState>) -> Router {
    let mut paths: Vec<(&'static str, MethodRouter<Arc<ApiState>>)> = Vec::new();
    for route in ROUTES {
        let handler = move |State(state): State<Arc<ApiState>>, req: Request<Body>| {
            serve_route(route, state, req)
        };
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, m)) => *m = std::mem::take(m).on(filter(&route.method), handler),
            None => paths.push((
                route.path,
                MethodRouter::new().on(filter(&route.method), handler),
            )),
        }
    }
    let mut router = Router::new();
    for (path, m) in paths {
        router = router.route(path, m.fallback(method_not_allowed));
    }
    router.fallback(not_found).with_state(state)
}

#[cfg(test)]
mod tests;
