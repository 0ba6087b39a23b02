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

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::audit::Checkpoint;

fn checkpoint_json(c: &Checkpoint) -> Value {
    json!({
        "seq": c.seq,
        "hash": c.hash,
        "head_at": c.head_at_ms,
        "signed_at": c.signed_at_ms,
        "signature": c.signature,
    })
}

pub(super) fn list_checkpoints(state: &ApiState) -> Result<Reply, ApiError> {
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
pub(super) fn sign_checkpoint(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<Reply, ApiError> {
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
pub(super) fn export_audit(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
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
pub(super) struct Deletion {
    confirm: String,
}

pub(super) fn delete_tenant(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
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
