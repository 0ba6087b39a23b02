//! Tenants, sites, enrollment tokens, agents, printers and the audit log.
//!
//! Every handler authorises first (see `auth::authorize`), then checks that the tenant exists
//! (404 otherwise), then acts. Enrollment tokens need an active subscription (402) and a
//! tenant that is not suspended (403). Enrollment tokens carry the coordinator's PeerId and advertised
//! mesh addresses; only the secret's hash is stored. Revoking an agent marks it in the store,
//! audits, and tells the mesh through [`super::Dispatch::agent_revoked`].

use hyper::StatusCode;
use rand::RngCore;
use sealprint_protocol::{EnrollmentToken, PrinterStatus, PrinterVerdict};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::auth::{authorize, Action, Principal};
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::agents::outdated;
use crate::store::EnrollmentTokenRecord;

/// Default enrollment token lifetime, seconds.
pub const TOKEN_TTL_DEFAULT_S: u64 = 3600;
/// Longest enrollment token lifetime, seconds.
pub const TOKEN_TTL_MAX_S: u64 = 86_400;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NameBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "name must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

pub(super) fn create_tenant(
    state: &ApiState,
    who: &Principal,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    authorize(who, None, Action::CreateTenant)?;
    let req: NameBody = parse_json(body)?;
    let name = valid_name(&req.name)?;
    let t = state.store.create_tenant(&name, now)?;
    state.audit(
        Some(&t.id),
        &who.user_id,
        "tenant.created",
        Some(&t.id),
        "ok",
        now,
    );
    info!(tenant = %t.id, "tenant created");
    Ok(Reply::json(StatusCode::CREATED, json!({"id": t.id})))
}

pub(super) fn list_tenants(state: &ApiState, who: &Principal) -> Result<Reply, ApiError> {
    authorize(who, None, Action::ListTenants)?;
    let list: Vec<Value> = state
        .store
        .tenants()?
        .into_iter()
        .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at_ms}))
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

pub(super) fn create_site(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: NameBody = parse_json(body)?;
    let name = valid_name(&req.name)?;
    let s = state.store.create_site(tenant, &name, now)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "site.created",
        Some(&s.id),
        "ok",
        now,
    );
    info!(tenant = %tenant, site = %s.id, "site created");
    Ok(Reply::json(StatusCode::CREATED, json!({"id": s.id})))
}

pub(super) fn list_sites(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .sites(tenant)?
        .into_iter()
        .map(|s| json!({"id": s.id, "name": s.name, "created_at": s.created_at_ms}))
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    ttl_seconds: Option<u64>,
}

pub(super) fn create_enrollment_token(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    site: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    if let Err(e) = super::compliance::provisioning_allowed(state, tenant) {
        state.audit(
            Some(tenant),
            &who.user_id,
            "enrollment_token.refused",
            Some(site),
            e.code,
            now,
        );
        return Err(e);
    }
    let req: TokenBody = parse_json(body)?;
    if state.store.site(tenant, site)?.is_none() {
        return Err(ApiError::not_found("site"));
    }
    let ttl = req.ttl_seconds.unwrap_or(TOKEN_TTL_DEFAULT_S);
    if !(1..=TOKEN_TTL_MAX_S).contains(&ttl) {
        return Err(ApiError::unprocessable(format!(
            "ttl_seconds must be 1 to {TOKEN_TTL_MAX_S}"
        )));
    }
    if state.mesh_addrs.is_empty() {
        return Err(ApiError::unavailable("the mesh has no advertised address"));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let expires_at_s = now / 1000 + ttl;
    let token = EnrollmentToken {
        secret,
        tenant_id: tenant.to_owned(),
        site_id: site.to_owned(),
        expires_at: expires_at_s,
        coordinator_peer_id: state.peer_id.clone(),
        coordinator_addrs: state.mesh_addrs.clone(),
        release_public: state.releases.public_key().map(|k| k.to_bytes()),
    };
    zeroize::Zeroize::zeroize(&mut secret);
    state.store.put_enrollment_token(
        &token.secret_hash(),
        &EnrollmentTokenRecord {
            tenant_id: tenant.to_owned(),
            site_id: site.to_owned(),
            expires_at_s,
            used: false,
        },
    )?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "enrollment_token.created",
        Some(site),
        "ok",
        now,
    );
    info!(tenant = %tenant, site = %site, ttl_s = ttl, "enrollment token created");
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({"token": token.to_string(), "expires_at": expires_at_s * 1000}),
    ))
}

pub(super) fn list_agents(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    let window = 3 * state.heartbeat_interval.as_millis() as u64;
    let min = state
        .agent_versions
        .requirement(state.store.tenant_min_agent_version(tenant)?, now / 1000)
        .min;
    let list: Vec<Value> = state
        .store
        .agents(tenant)?
        .into_iter()
        .map(|a| {
            let online = !a.revoked
                && a.last_heartbeat_at_ms
                    .is_some_and(|t| now.saturating_sub(t) <= window);
            json!({
                "id": a.device_id,
                "site": a.site_id,
                "version": a.version,
                // Below the tenant's effective minimum: connected, but given no jobs.
                "outdated": !a.revoked && outdated(a.version.as_deref(), &min),
                "min_agent_version": min.to_string(),
                "online": online,
                "last_heartbeat_at": a.last_heartbeat_at_ms,
                "revoked": a.revoked,
                "hostname": a.hostname,
                "relay": a.relay,
                // Its clock minus ours at its last heartbeat (transit makes it look behind).
                "clock_offset_ms": a.clock_offset_ms,
                "findings": a.findings,
            })
        })
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

pub(super) fn revoke_agent(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    device: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    let Some(agent) = state.store.revoke_agent(tenant, device)? else {
        return Err(ApiError::not_found("agent"));
    };
    state.audit(
        Some(tenant),
        &who.user_id,
        "agent.revoked",
        Some(device),
        "ok",
        now,
    );
    info!(tenant = %tenant, device = %device, serial = agent.serial, "agent revoked");
    state.dispatch.agent_revoked(device);
    Ok(Reply::ok(json!({"id": agent.device_id, "revoked": true})))
}

fn verdict_str(v: PrinterVerdict) -> &'static str {
    match v {
        PrinterVerdict::Verified => "verified",
        PrinterVerdict::Refused => "refused",
        PrinterVerdict::Unreachable => "unreachable",
    }
}

fn status_str(s: PrinterStatus) -> &'static str {
    match s {
        PrinterStatus::Ready => "ready",
        PrinterStatus::PaperOut => "paper_out",
        PrinterStatus::HeadOpen => "head_open",
        PrinterStatus::Paused => "paused",
        PrinterStatus::Offline => "offline",
        PrinterStatus::Unknown => "unknown",
    }
}

pub(super) fn list_printers(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .printers(tenant)?
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "agent": p.agent,
                "pool": p.pool,
                "verified": p.verdict == PrinterVerdict::Verified,
                "verdict": verdict_str(p.verdict),
                "reason": p.reason,
                "identity": p.identity,
                "status": status_str(p.status),
            })
        })
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

/// `POST /v1/tenants/{t}/printers/{id}/accept`: an admin accepts the identity the printer
/// answers now (after its device was swapped). The agent records it with its next heartbeat
/// and the printer is verified again; until then it stays refused.
pub(super) fn accept_printer(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    printer_id: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    let printer = state
        .store
        .printer(tenant, printer_id)?
        .ok_or_else(|| ApiError::not_found("printer"))?;
    if printer.verdict == PrinterVerdict::Verified {
        return Err(ApiError::conflict("printer is already verified"));
    }
    let Some(identity) = printer.identity.clone() else {
        return Err(ApiError::unprocessable(
            "the printer answered no identity to accept; it is not a verifiable device",
        ));
    };
    state
        .store
        .accept_printer_identity(tenant, printer_id, &identity)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "printer.identity_accepted",
        Some(printer_id),
        "ok",
        now,
    );
    Ok(Reply::ok(
        json!({"id": printer_id, "accepted_identity": identity}),
    ))
}

pub(super) fn list_audit(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    audit_list(state.store.audit_entries(Some(tenant))?)
}

/// `GET /v1/audit`: the entries of no tenant (platform events, summaries of unauthenticated
/// failures), for platform admins.
pub(super) fn list_system_audit(state: &ApiState, who: &Principal) -> Result<Reply, ApiError> {
    if !who.platform_admin {
        return Err(ApiError::forbidden());
    }
    let entries = state.store.audit_entries(None)?;
    audit_list(
        entries
            .into_iter()
            .filter(|e| e.entry.tenant_id.is_none())
            .collect(),
    )
}

fn audit_list(entries: Vec<crate::core::audit::ChainedEntry>) -> Result<Reply, ApiError> {
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": e.entry.at_ms,
                "actor": e.entry.actor,
                "action": e.entry.action,
                "object": e.entry.object,
                "outcome": e.entry.outcome,
                "hash": e.hash,
            })
        })
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}
