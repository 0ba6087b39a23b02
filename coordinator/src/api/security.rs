//! The routes of retention, monitoring and integration access (issue 4), routed as one group
//! so that the main router in `api.rs` only forwards to [`route`] and [`handle`]:
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /v1/tenants/{t}/alerts` | owner, admin, auditor | alerts and the restriction |
//! | `POST /v1/tenants/{t}/alerts/{id}/clear` | owner | clear an alert (lifts its restriction) |
//! | `GET/PUT /v1/tenants/{t}/canaries` | owner | canary order ids |
//! | `GET/POST /v1/tenants/{t}/api-keys` | owner, admin | list / create API keys |
//! | `DELETE /v1/tenants/{t}/api-keys/{id}` | owner, admin | revoke an API key |
//! | `GET /v1/tenants/{t}/ip-allowlist` | owner, auditor | the IP allowlist |
//! | `PUT /v1/tenants/{t}/ip-allowlist` | owner | set the IP allowlist |
//! | `GET/POST /v1/tenants/{t}/audit/checkpoints` | owner, auditor | list / sign audit checkpoints |
//! | `POST /v1/tenants/{t}/deletion` | owner | crypto-shred the tenant |
//!
//! Platform admins may do all of it. `GET /v1/tenants/{t}/audit?format=jsonl` ([`export_audit`])
//! is routed from `api.rs` (same path as the JSON list).
//!
//! Deletion (`{"confirm":"<tenant id>"}`, so it is never an accident) runs at once: the data
//! key is destroyed first, then every record of the tenant except its audit entries; its
//! devices are disconnected; the answer (200) says how many records went. The audit entries
//! stay (ids only) and `tenant.deleted` is added.

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::{Action, Principal};
use super::error::ApiError;
use super::{access, alerts, parse_json, tenant_scope, ApiState, Reply};
use crate::core::audit::Checkpoint;

/// A route of this group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route<'a> {
    Alerts(&'a str),
    ClearAlert(&'a str, &'a str),
    Canaries(&'a str),
    ApiKeys(&'a str),
    ApiKey(&'a str, &'a str),
    IpAllowlist(&'a str),
    Checkpoints(&'a str),
    Deletion(&'a str),
}

impl Route<'_> {
    pub(super) fn allows(&self, m: &Method) -> bool {
        match self {
            Route::Alerts(_) => m == Method::GET,
            Route::ClearAlert(..) | Route::Deletion(_) => m == Method::POST,
            Route::Canaries(_) | Route::IpAllowlist(_) => m == Method::GET || m == Method::PUT,
            Route::ApiKeys(_) | Route::Checkpoints(_) => m == Method::GET || m == Method::POST,
            Route::ApiKey(..) => m == Method::DELETE,
        }
    }
}

/// The route of `segs` (the path split on `/`, without the leading empty one), if it is one
/// of this group's; ids are checked with `validate_id`.
pub(super) fn route<'a>(segs: &[&'a str]) -> Option<Route<'a>> {
    let (r, ids): (Route<'a>, Vec<&str>) = match segs {
        ["v1", "tenants", t, "alerts"] => (Route::Alerts(t), vec![t]),
        ["v1", "tenants", t, "alerts", a, "clear"] => (Route::ClearAlert(t, a), vec![t, a]),
        ["v1", "tenants", t, "canaries"] => (Route::Canaries(t), vec![t]),
        ["v1", "tenants", t, "api-keys"] => (Route::ApiKeys(t), vec![t]),
        ["v1", "tenants", t, "api-keys", k] => (Route::ApiKey(t, k), vec![t, k]),
        ["v1", "tenants", t, "ip-allowlist"] => (Route::IpAllowlist(t), vec![t]),
        ["v1", "tenants", t, "audit", "checkpoints"] => (Route::Checkpoints(t), vec![t]),
        ["v1", "tenants", t, "deletion"] => (Route::Deletion(t), vec![t]),
        _ => return None,
    };
    ids.iter()
        .all(|s| sealprint_protocol::validate_id(s).is_ok())
        .then_some(r)
}

/// Answers a route of this group.
pub(super) fn handle(
    state: &ApiState,
    who: &Principal,
    r: Route<'_>,
    method: &Method,
    body: &[u8],
    peer: Option<std::net::IpAddr>,
    now: u64,
) -> Result<Reply, ApiError> {
    let get = method == Method::GET;
    match r {
        Route::Alerts(t) => alerts::list(state, who, t),
        Route::ClearAlert(t, a) => alerts::clear(state, who, t, a, now),
        Route::Canaries(t) if get => alerts::get_canaries(state, who, t),
        Route::Canaries(t) => alerts::put_canaries(state, who, t, body, now),
        Route::ApiKeys(t) if get => access::list_keys(state, who, t, now),
        Route::ApiKeys(t) => access::create_key(state, who, t, body, now),
        Route::ApiKey(t, k) => access::revoke_key(state, who, t, k, now),
        Route::IpAllowlist(t) if get => access::get_allowlist(state, who, t),
        Route::IpAllowlist(t) => access::put_allowlist(state, who, t, body, peer, now),
        Route::Checkpoints(t) if get => list_checkpoints(state, who, t),
        Route::Checkpoints(t) => sign_checkpoint(state, who, t, now),
        Route::Deletion(t) => delete_tenant(state, who, t, body, now),
    }
}

fn checkpoint_json(c: &Checkpoint) -> Value {
    json!({
        "seq": c.seq,
        "hash": c.hash,
        "head_at": c.head_at_ms,
        "signed_at": c.signed_at_ms,
        "signature": c.signature,
    })
}

fn list_checkpoints(state: &ApiState, who: &Principal, tenant: &str) -> Result<Reply, ApiError> {
    tenant_scope(state, who, tenant, Action::ReadAudit)?;
    let ca = crate::services::ca::Identity::load(&state.store)
        .map(|i| hex::encode(i.ca_public()))
        .ok();
    let list: Vec<Value> = state
        .store
        .audit_checkpoints()?
        .iter()
        .map(checkpoint_json)
        .collect();
    Ok(Reply::ok(json!({"ca_public_key": ca, "checkpoints": list})))
}

/// Signs the current head now (201), or answers the checkpoint that already covers it (200).
fn sign_checkpoint(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    tenant_scope(state, who, tenant, Action::ReadAudit)?;
    let identity = crate::services::ca::Identity::load(&state.store)
        .map_err(|_| ApiError::unavailable("the coordinator has no signing key"))?;
    // The request itself is audited first, so the checkpoint covers it.
    state.audit(
        Some(tenant),
        &who.user_id,
        "audit.checkpoint_requested",
        None,
        "ok",
        now,
    );
    match state
        .store
        .checkpoint_audit(identity.ca_signing_key(), now)?
    {
        Some(cp) => Ok(Reply::json(StatusCode::CREATED, checkpoint_json(&cp))),
        None => {
            let last = state.store.audit_checkpoints()?.pop();
            Ok(Reply::ok(
                last.as_ref().map(checkpoint_json).unwrap_or(Value::Null),
            ))
        }
    }
}

/// `GET …/audit?format=jsonl`: the tenant's audit entries as JSON lines, with their chain
/// hashes (to compare with checkpoints).
pub(super) fn export_audit(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
) -> Result<Reply, ApiError> {
    tenant_scope(state, who, tenant, Action::ReadAudit)?;
    let mut out = Vec::new();
    for e in state.store.audit_entries(Some(tenant))? {
        let line = json!({
            "seq": e.seq,
            "at": e.entry.at_ms,
            "tenant": e.entry.tenant_id,
            "actor": e.entry.actor,
            "action": e.entry.action,
            "object": e.entry.object,
            "outcome": e.entry.outcome,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        });
        serde_json::to_writer(&mut out, &line).map_err(|e| ApiError::internal(&e))?;
        out.push(b'\n');
    }
    Ok(Reply::raw(StatusCode::OK, "application/x-ndjson", out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deletion {
    confirm: String,
}

fn delete_tenant(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    tenant_scope(state, who, tenant, Action::DeleteTenant)?;
    let req: Deletion = parse_json(body)?;
    if req.confirm != tenant {
        return Err(ApiError::unprocessable(
            "confirm must be the tenant's id: deletion cannot be undone",
        ));
    }
    state.audit(
        Some(tenant),
        &who.user_id,
        "tenant.deletion_started",
        Some(tenant),
        "ok",
        now,
    );
    let report = state.store.shred_tenant(tenant)?;
    for device in &report.devices {
        state.dispatch.agent_revoked(device);
    }
    state.audit(
        Some(tenant),
        &who.user_id,
        "tenant.deleted",
        Some(tenant),
        &format!(
            "ok data_key=destroyed records={} devices={}",
            report.records,
            report.devices.len()
        ),
        crate::core::clock::now_ms().max(now),
    );
    warn!(tenant = %tenant, records = report.records, "tenant crypto-shredded");
    info!(tenant = %tenant, devices = report.devices.len(), "tenant devices disconnected");
    Ok(Reply::ok(json!({
        "tenant": tenant,
        "deleted": true,
        "data_key": "destroyed",
        "records_deleted": report.records,
        "devices_disconnected": report.devices.len(),
        "completed_at": crate::core::clock::now_ms().max(now),
    })))
}
