//! A tenant's agent policy: its own minimum agent version.
//!
//! - `GET /v1/tenants/{t}/agent-policy` (owner, admin): `{"min_agent_version": "x.y.z" | null,
//!   "global_min_agent_version", "effective_min_agent_version", "next_min_agent_version",
//!   "next_min_agent_version_from"}`: the tenant's own minimum, the coordinator's
//!   (`--min-agent-version`), the one applied (the larger), and the next minimum announced to
//!   agents with the time it takes effect (unix seconds), when there is one.
//! - `PUT` of the same path (owner, admin) `{"min_agent_version": "x.y.z" | null}`: sets or
//!   removes the tenant's minimum (the field is required; `null` removes it). It can raise
//!   the global minimum, never lower it. Audited.
//!
//! Agents are judged on their next heartbeat: one below the effective minimum gets no jobs,
//! is listed `outdated` and raises `agent_outdated` (see [`crate::core::agents`]).

use sealprint_protocol::Version;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tracing::info;

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};

/// The body of `PUT …/agent-policy`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentPolicyBody {
    /// `MAJOR.MINOR.PATCH`, or `null` to follow the coordinator's minimum. Required.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(value_type = Option<String>, example = "0.2.0")]
    min_agent_version: Option<String>,
}

/// Makes an `Option` field required (present, possibly `null`).
fn required_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::deserialize(d)
}

fn policy_json(state: &ApiState, own: Option<Version>, now_ms: u64) -> Value {
    let global = state.agent_versions;
    let effective = global.requirement(own, now_ms / 1000);
    json!({
        "min_agent_version": own.map(|v| v.to_string()),
        "global_min_agent_version": global.requirement(None, now_ms / 1000).min.to_string(),
        "effective_min_agent_version": effective.min.to_string(),
        "next_min_agent_version": effective.next.map(|n| n.min.to_string()),
        "next_min_agent_version_from": effective.next.map(|n| n.from_s),
    })
}

pub(super) fn get(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    let own = state.store.tenant_min_agent_version(tenant)?;
    Ok(Reply::ok(policy_json(state, own, now)))
}

pub(super) fn put(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: AgentPolicyBody = parse_json(body)?;
    let own = match req.min_agent_version.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<Version>().map_err(|_| {
            ApiError::unprocessable(
                "min_agent_version must be MAJOR.MINOR.PATCH (digits only) or null",
            )
        })?),
    };
    state.store.set_tenant_min_agent_version(tenant, own)?;
    let shown = own.map_or_else(|| "none".to_owned(), |v| v.to_string());
    state.audit(
        Some(tenant),
        &who.user_id,
        "agent_policy.updated",
        Some(tenant),
        &format!("ok min_agent_version={shown}"),
        now,
    );
    info!(tenant = %tenant, min_agent_version = %shown, "agent policy updated");
    Ok(Reply::ok(policy_json(state, own, now)))
}
