//! Alerts, canary orders and the restriction they put on labels.
//!
//! - `GET /v1/tenants/{t}/alerts` (owner, admin, auditor): `{"restricted": null | {…},
//!   "alerts": [...]}`, newest first.
//! - `POST /v1/tenants/{t}/alerts/{id}/clear` (owner, platform admin): closes an open alert;
//!   a restricting one stops refusing labels. `POST …/resume` (platform admin) clears every
//!   restricting alert as well as a suspension.
//! - `GET/PUT /v1/tenants/{t}/canaries` `{"order_ids":[…]}` (owner): the orders that must
//!   never be printed. Only owners see the list, so whoever trips it cannot know it.
//!
//! `crate::services::labels::admit` is the hook of label submission: a request naming a canary order (the
//! `order_id` of an upload, the `AmazonOrderId` of an MFN `shipment_request`, the Amazon
//! order of a one-click request's `channelDetails`) is refused, reported and restricts the
//! tenant; a restricted tenant's labels are refused with the alert that restricts it; every request feeds the volume and hour rules
//! ([`crate::services::monitor::label_requested`]). [`login_failed`] feeds the failed-login rule.
//! Every alert, refusal and clearance is audited by id.

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::compliance::valid_label_field;
use crate::services::monitor;
use crate::store::{AlertRecord, AlertState};

/// Most canary orders per tenant.
const MAX_CANARIES: usize = 1000;

fn alert_json(a: &AlertRecord) -> Value {
    json!({
        "id": a.id,
        "rule": a.rule.as_str(),
        "subject": a.subject,
        "message": a.message,
        "restricts": a.restricts,
        "state": a.state.as_str(),
        "opened_at": a.opened_at_ms,
        "last_seen_at": a.last_seen_at_ms,
        "count": a.count,
        "closed_at": a.closed_at_ms,
        "closed_by": a.closed_by,
    })
}

pub(super) fn restricted(tenant: &str, a: &AlertRecord) -> ApiError {
    ApiError::refused(
        "tenant_restricted",
        format!(
            "labels are refused while alert {} ({}) is open: {}. An owner clears it with POST \
             /v1/tenants/{tenant}/alerts/{}/clear",
            a.id,
            a.rule.as_str(),
            a.message,
            a.id
        ),
    )
}

pub(super) fn list(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let mut alerts = state.store.alerts(tenant)?;
    alerts.reverse();
    let restricted = state.store.restriction(tenant)?;
    Ok(Reply::ok(json!({
        "restricted": restricted.as_ref().map(alert_json),
        "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}

pub(super) fn clear(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    id: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    let (alert, closed) = state
        .store
        .close_alert(tenant, id, AlertState::Cleared, &who.user_id, now)?
        .ok_or_else(|| ApiError::not_found("alert"))?;
    if closed {
        state.audit(
            Some(tenant),
            &who.user_id,
            "alert.cleared",
            Some(&alert.id),
            &format!(
                "ok rule={} restricted={}",
                alert.rule.as_str(),
                alert.restricts
            ),
            now,
        );
        info!(tenant = %tenant, alert = %alert.id, "alert cleared");
    }
    Ok(Reply::ok(alert_json(&alert)))
}

/// Clears every open restricting alert of `tenant` (on `resume`); returns how many.
pub(super) fn clear_restrictions(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<usize, ApiError> {
    let mut n = 0;
    for a in state.store.alerts(tenant)? {
        if a.state != AlertState::Open || !a.restricts {
            continue;
        }
        if let Some((_, true)) =
            state
                .store
                .close_alert(tenant, &a.id, AlertState::Cleared, &who.user_id, now)?
        {
            state.audit(
                Some(tenant),
                &who.user_id,
                "alert.cleared",
                Some(&a.id),
                &format!("ok rule={} restricted=true (resume)", a.rule.as_str()),
                now,
            );
            n += 1;
        }
    }
    Ok(n)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Canaries {
    order_ids: Vec<String>,
}

pub(super) fn get_canaries(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(
        json!({"order_ids": state.store.canaries(tenant)?}),
    ))
}

pub(super) fn put_canaries(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: Canaries = parse_json(body)?;
    if req.order_ids.len() > MAX_CANARIES {
        return Err(ApiError::unprocessable(format!(
            "at most {MAX_CANARIES} canary orders"
        )));
    }
    if !req.order_ids.iter().all(|o| valid_label_field(o.trim())) {
        return Err(ApiError::unprocessable(
            "order ids must be 1 to 64 characters of letters, digits, space, '.', '_' or '-'",
        ));
    }
    let mut ids: Vec<String> = req.order_ids.iter().map(|o| o.trim().to_owned()).collect();
    ids.sort();
    ids.dedup();
    state.store.set_canaries(tenant, &ids)?;
    // The count only: the list itself stays with the owners.
    state.audit(
        Some(tenant),
        &who.user_id,
        "canaries.updated",
        Some(tenant),
        &format!("ok count={}", ids.len()),
        now,
    );
    Ok(Reply::ok(json!({"order_ids": ids})))
}

/// Counts a failed login of a user of `tenant` for the failed-login rule; a failure here is
/// logged, never returned (the login answer is already decided).
pub(super) fn login_failed(state: &ApiState, tenant: Option<&str>, now: u64) {
    if let Some(t) = tenant {
        if let Err(e) = monitor::login_failed(&state.store, t, now) {
            warn!(error = %e, "failed login not counted");
        }
    }
}
