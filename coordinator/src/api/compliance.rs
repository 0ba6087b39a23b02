//! The routes of accounts and compliance (issue 4), routed as one group so that the main
//! router in `api.rs` only forwards to [`route`] and [`handle`]:
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /v1/sessions/password` | anyone with the current password | change a password |
//! | `POST /v1/billing/webhook` | the billing provider (HMAC signature) | subscription events |
//! | `GET/POST /v1/tenants/{t}/users` | see `users` | list / create users |
//! | `PATCH /v1/tenants/{t}/users/{id}` | see `users` | change roles, disable or enable |
//! | `PUT /v1/tenants/{t}/subscription` | platform admin | set the subscription state |
//! | `GET/PUT /v1/tenants/{t}/attestation` | auditor, owner / owner | the security attestation |
//! | `PUT /v1/tenants/{t}/terms` | owner | accept the terms of service |
//! | `POST /v1/tenants/{t}/suspend`, `/resume` | platform admin | incident suspension (`resume` also clears restricting alerts) |
//! | `GET /v1/tenants/{t}/audit/verify` | auditor, owner | check the audit hash chain |
//! | `GET /v1/tenants/{t}/compliance` | auditor, owner | tier, requirements, restrictions |
//!
//! Every change here is audited (ids and states only). The gates themselves are pure
//! ([`crate::core::compliance`]); [`provisioning_allowed`] and [`gate_error`] turn them into answers
//! for the other handlers.

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::compliance::billing::{self, BillingEvent};
use crate::core::compliance::{
    self, attestation_state, requirements, AttestationState, GateRefusal, Plan, Questionnaire,
    SubscriptionState, Suspension, TermsAcceptance,
};
use crate::services::notifications::notify_event;
use crate::store::{NotificationKind, StoreError, TenantRecord};

/// The signature header of the billing webhook.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// The answer for a gate's refusal: 403 `tenant_suspended` with the reason, or 402.
pub(super) fn gate_error(refusal: &GateRefusal, what: &str) -> ApiError {
    match refusal {
        GateRefusal::Suspended(reason) => ApiError::refused(
            "tenant_suspended",
            format!("the tenant is suspended ({reason}): {what} refused until it is resumed"),
        ),
        GateRefusal::SubscriptionInactive(s) => ApiError::payment_required(format!(
            "the tenant's subscription is {}: {what} needs an active subscription",
            s.as_str()
        )),
        GateRefusal::Restricted(reason) => {
            ApiError::refused("compliance_restricted", format!("{what} refused: {reason}"))
        }
    }
}

/// Whether `tenant` may provision devices (enrollment tokens).
pub(super) fn provisioning_allowed(state: &ApiState, tenant: &str) -> Result<(), ApiError> {
    let t = tenant_record(state, tenant)?;
    compliance::provisioning_gate(t.suspension.as_ref(), t.subscription.state)
        .map_err(|r| gate_error(&r, "device provisioning"))
}

pub(super) fn tenant_record(state: &ApiState, tenant: &str) -> Result<TenantRecord, ApiError> {
    state
        .store
        .tenant(tenant)?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

fn updated(r: Result<Option<TenantRecord>, StoreError>) -> Result<TenantRecord, ApiError> {
    r?.ok_or_else(|| ApiError::not_found("tenant"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionBody {
    state: SubscriptionState,
    plan: Option<Plan>,
}

pub(super) fn put_subscription(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: SubscriptionBody = parse_json(body)?;
    let t = updated(state.store.update_tenant(tenant, |t| {
        t.subscription.state = req.state;
        t.subscription.updated_at_ms = now;
        t.subscription.source.clone_from(&who.user_id);
        if let Some(p) = req.plan {
            t.plan = p;
        }
    }))?;
    let outcome = format!("ok state={} source=admin", req.state.as_str());
    state.audit(
        Some(tenant),
        &who.user_id,
        "subscription.updated",
        Some(tenant),
        &outcome,
        now,
    );
    info!(tenant = %tenant, state = req.state.as_str(), "subscription set");
    Ok(Reply::ok(json!({
        "state": t.subscription.state.as_str(),
        "plan": t.plan,
        "updated_at": t.subscription.updated_at_ms,
    })))
}

pub(super) fn billing_webhook(
    state: &ApiState,
    header: Option<Result<&str, hyper::header::ToStrError>>,
    body: &[u8],
    peer: Option<std::net::IpAddr>,
    now: u64,
) -> Result<Reply, ApiError> {
    let Some(secret) = state.billing_webhook_secret.as_deref() else {
        return Err(ApiError::unavailable(
            "the billing webhook is not configured",
        ));
    };
    let header = header.and_then(Result::ok);
    if let Err(e) = billing::verify_signature(secret, header, body, now / 1000) {
        // Anyone can post to the webhook: failures are summarised per address.
        state.failures.record(
            &crate::services::failures::source_of(peer),
            crate::core::failures::FailureKind::BadBillingSignature,
            &e.to_string(),
        );
        warn!(error = %e, "billing webhook refused");
        return Err(ApiError::bad_request(e.to_string()));
    }
    let event = billing::parse_event(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let BillingEvent::Subscription {
        tenant_id,
        state: sub,
        created_s,
    } = event
    else {
        return Ok(Reply::ok(json!({"received": true, "applied": false})));
    };
    let at = if created_s == 0 {
        now
    } else {
        created_s.saturating_mul(1000)
    };
    let mut applied = false;
    let t = state.store.update_tenant(&tenant_id, |t| {
        // An older event (retried or out of order) never overrides a newer state.
        applied = at >= t.subscription.updated_at_ms;
        if applied {
            t.subscription.state = sub;
            t.subscription.updated_at_ms = at;
            t.subscription.source = "billing".into();
        }
    })?;
    let outcome = match (&t, applied) {
        (None, _) => "ignored: unknown tenant".to_owned(),
        (Some(_), false) => format!("ignored: stale state={}", sub.as_str()),
        (Some(_), true) => format!("ok state={} source=billing", sub.as_str()),
    };
    let tenant = t.as_ref().map(|_| tenant_id.as_str());
    state.audit(
        tenant,
        "billing",
        "subscription.updated",
        tenant,
        &outcome,
        now,
    );
    info!(outcome = %outcome, "billing event");
    Ok(Reply::ok(
        json!({"received": true, "applied": t.is_some() && applied}),
    ))
}

fn attestation_json(t: &TenantRecord, now: u64) -> Value {
    let st = attestation_state(t.attestation.as_ref(), now);
    let expires_at = match st {
        AttestationState::Complete { expires_at_ms } => Some(expires_at_ms),
        AttestationState::Expired { expired_at_ms } => Some(expired_at_ms),
        _ => None,
    };
    json!({
        "state": st.as_str(),
        "missing": t.attestation.as_ref().map(|a| a.answers.missing()).unwrap_or_default(),
        "attested_at": t.attestation.as_ref().map(|a| a.attested_at_ms),
        "expires_at": expires_at,
        "answers": t.attestation.as_ref().map(|a| &a.answers),
    })
}

pub(super) fn get_attestation(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    Ok(Reply::ok(attestation_json(
        &tenant_record(state, tenant)?,
        now,
    )))
}

pub(super) fn put_attestation(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let answers: Questionnaire = parse_json(body)?;
    if let Some(c) = &answers.security_contact {
        if c.len() > 254 || !c.contains('@') || c.chars().any(|c| c.is_whitespace()) {
            return Err(ApiError::unprocessable(
                "security_contact must be an email address",
            ));
        }
    }
    let missing = answers.missing();
    let t = updated(state.store.update_tenant(tenant, |t| {
        t.attestation = Some(compliance::Attestation {
            answers: answers.clone(),
            attested_at_ms: now,
            attested_by: who.user_id.clone(),
        });
    }))?;
    let outcome = if missing.is_empty() {
        "ok complete".to_owned()
    } else {
        format!("ok incomplete missing={}", missing.join(","))
    };
    state.audit(
        Some(tenant),
        &who.user_id,
        "attestation.updated",
        Some(tenant),
        &outcome,
        now,
    );
    info!(tenant = %tenant, complete = missing.is_empty(), "attestation recorded");
    Ok(Reply::ok(attestation_json(&t, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TermsBody {
    version: String,
}

pub(super) fn put_terms(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: TermsBody = parse_json(body)?;
    if !compliance::valid_label_field(&req.version) {
        return Err(ApiError::unprocessable(
            "version must be 1 to 64 characters of letters, digits, space, '.', '_' or '-'",
        ));
    }
    updated(state.store.update_tenant(tenant, |t| {
        t.terms = Some(TermsAcceptance {
            version: req.version.clone(),
            at_ms: now,
            by: who.user_id.clone(),
        });
    }))?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "terms.accepted",
        Some(tenant),
        &format!("ok version={}", req.version),
        now,
    );
    Ok(Reply::ok(
        json!({"version": req.version, "accepted_at": now}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuspendBody {
    reason: String,
}

pub(super) fn suspend(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: SuspendBody = parse_json(body)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "reason must be 1 to 200 characters without control characters",
        ));
    }
    updated(state.store.update_tenant(tenant, |t| {
        t.suspension = Some(Suspension {
            reason: reason.to_owned(),
            at_ms: now,
            by: who.user_id.clone(),
        });
    }))?;
    // The reason is free text: kept on the tenant, not copied into the audit log.
    state.audit(
        Some(tenant),
        &who.user_id,
        "tenant.suspended",
        Some(tenant),
        "ok",
        now,
    );
    warn!(tenant = %tenant, "tenant suspended");
    notify_event(
        &state.store,
        tenant,
        NotificationKind::TenantSuspended,
        None,
        now,
    );
    Ok(Reply::ok(
        json!({"suspended": true, "reason": reason, "since": now}),
    ))
}

pub(super) fn resume(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    let mut was = false;
    updated(state.store.update_tenant(tenant, |t| {
        was = t.suspension.take().is_some();
    }))?;
    // Resuming after an incident also lifts the automatic restrictions (audited each).
    let cleared = super::alerts::clear_restrictions(state, who, tenant, now)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "tenant.resumed",
        Some(tenant),
        if was { "ok" } else { "ok (was not suspended)" },
        now,
    );
    info!(tenant = %tenant, "tenant resumed");
    notify_event(
        &state.store,
        tenant,
        NotificationKind::TenantResumed,
        None,
        now,
    );
    Ok(Reply::ok(
        json!({"suspended": false, "restrictions_cleared": cleared}),
    ))
}

pub(super) fn verify_audit(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let own = state.store.audit_entries(Some(tenant))?.len();
    match state.store.verify_audit_chain() {
        Ok(n) => Ok(Reply::ok(json!({
            "intact": true,
            "entries": n,
            "tenant_entries": own,
        }))),
        Err(StoreError::Chain(e)) => Ok(Reply::ok(json!({
            "intact": false,
            "first_bad_entry": e.seq(),
            "problem": e.to_string(),
            "tenant_entries": own,
        }))),
        Err(e) => Err(e.into()),
    }
}

fn requirement(id: &str, met: bool, state: &str, due_at: Option<u64>) -> Value {
    json!({"id": id, "met": met, "state": state, "due_at": due_at})
}

pub(super) fn get_compliance(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    let t = tenant_record(state, tenant)?;
    let usage = crate::services::monitor::renewals::usage(&state.store, tenant, now)?;
    let evaluated = requirements::evaluate(t.attestation.as_ref(), &t.tier, now);
    let mut reqs = vec![
        requirement(
            "terms_of_service",
            t.terms.is_some(),
            if t.terms.is_some() {
                "accepted"
            } else {
                "missing"
            },
            None,
        ),
        requirement(
            "subscription",
            t.subscription.state == SubscriptionState::Active,
            t.subscription.state.as_str(),
            None,
        ),
    ];
    reqs.extend(evaluated.iter().map(|r| {
        requirement(
            r.id.as_str(),
            r.state.met(),
            r.state.as_str(),
            r.state.due_at_ms(),
        )
    }));

    let mut restrictions = Vec::new();
    let mut labels = match compliance::label_gate(
        t.suspension.as_ref(),
        t.subscription.state,
        t.attestation.as_ref(),
        &t.tier,
        now,
    ) {
        Ok(compliance::LabelMode::Full) => "full",
        Ok(compliance::LabelMode::Redacted) => {
            restrictions.push(json!({
                "kind": "labels_redacted",
                "reason": "labels are redacted until the security attestation is complete",
            }));
            "redacted"
        }
        Err(GateRefusal::Suspended(reason)) => {
            restrictions.push(json!({
                "kind": "suspended",
                "reason": reason,
                "since": t.suspension.as_ref().map(|s| s.at_ms),
            }));
            "refused"
        }
        Err(GateRefusal::SubscriptionInactive(s)) => {
            restrictions.push(json!({
                "kind": "subscription_inactive",
                "reason": format!(
                    "the subscription is {}: labels and device provisioning are refused",
                    s.as_str()
                ),
            }));
            "refused"
        }
        Err(GateRefusal::Restricted(_)) => "refused",
    };
    // Listed even while a suspension hides it from the gate: resuming would not lift it.
    if let Some((r, reason)) = requirements::restriction(&evaluated) {
        restrictions.push(json!({
            "kind": "requirement",
            "requirement": r.id.as_str(),
            "reason": reason,
            "since": r.state.due_at_ms(),
        }));
        labels = "refused";
    }
    if let Some(a) = state.store.restriction(tenant)? {
        restrictions.push(json!({
            "kind": "alert",
            "reason": format!("alert {} ({}): {}", a.id, a.rule.as_str(), a.message),
            "since": a.opened_at_ms,
        }));
        labels = "refused";
    }
    Ok(Reply::ok(json!({
        "tenant": tenant,
        "plan": t.plan,
        "tier": t.tier.tier.as_str(),
        "tier_since": (t.tier.since_ms > 0).then_some(t.tier.since_ms),
        "measured_tier": usage.tier().as_str(),
        "usage": {
            "labels_30d": usage.labels_30d,
            "print_stations": usage.stations,
            "merchants": usage.merchants,
        },
        "subscription": {
            "state": t.subscription.state.as_str(),
            "updated_at": t.subscription.updated_at_ms,
        },
        "attestation": attestation_json(&t, now),
        "terms": t.terms.as_ref().map(|x| json!({"version": x.version, "accepted_at": x.at_ms})),
        "requirements": reqs,
        "labels": labels,
        "restrictions": restrictions,
    })))
}
