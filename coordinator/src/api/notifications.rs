//! The routes of a tenant's notifications and outgoing webhook, routed as one group:
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /v1/tenants/{t}/notifications` | owner, admin, auditor | notifications, newest first, with their delivery |
//! | `GET /v1/tenants/{t}/webhook` | owner, admin, auditor | the webhook (never its secret) |
//! | `PUT /v1/tenants/{t}/webhook` `{"url"}` | owner, admin | set it; answers a new signing secret, shown once |
//! | `DELETE /v1/tenants/{t}/webhook` | owner, admin | remove it (owed deliveries then fail) |
//! | `POST /v1/tenants/{t}/webhook/test` | owner, admin | a `webhook_test` notification, delivered like the others (202) |
//!
//! Platform admins may do all of it. Each `PUT` makes a new secret (that is how it is
//! rotated); it is stored encrypted under the tenant's key. Changes are audited
//! (`webhook.set`, `webhook.deleted`) without the URL. How deliveries are signed and retried
//! is [`crate::services::notifications`].

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::services::notifications::{self, SIGNATURE_HEADER};
use crate::store::{NewNotification, NotificationKind, NotificationRecord, WebhookRecord};

fn notification_json(n: &NotificationRecord) -> Value {
    let d = &n.delivery;
    let mut v = json!({
        "id": n.id,
        "type": n.kind.as_str(),
        "subject": n.subject,
        "due_at": n.due_at_ms,
        "created_at": n.created_at_ms,
        "delivery": {
            "state": d.state.as_str(),
            "delivered": d.state == crate::store::DeliveryState::Delivered,
            "attempts": d.attempts,
            "last_attempt_at": d.last_attempt_at_ms,
            "last_error": d.last_error,
            "next_attempt_at": d.next_attempt_at_ms,
            "delivered_at": d.delivered_at_ms,
        },
    });
    if let (Some(data), Some(obj)) = (&n.data, v.as_object_mut()) {
        obj.insert(
            "data".to_owned(),
            crate::services::notifications::event_json(data),
        );
    }
    v
}

pub(super) fn list(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .notifications(tenant)?
        .iter()
        .map(notification_json)
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

fn webhook_json(w: &WebhookRecord) -> Value {
    json!({
        "url": w.url,
        "created_at": w.created_at_ms,
        "created_by": w.created_by,
        "signature_header": SIGNATURE_HEADER,
    })
}

pub(super) fn get_webhook(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let hook = state
        .store
        .webhook(tenant)?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Reply::ok(webhook_json(&hook)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookBody {
    url: String,
}

pub(super) fn put_webhook(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: WebhookBody = parse_json(body)?;
    let url = req.url.trim();
    notifications::validate_url(url).map_err(ApiError::unprocessable)?;
    let secret = crate::core::crypto::random_secret("whsec_");
    let rec = WebhookRecord {
        tenant_id: tenant.to_owned(),
        url: url.to_owned(),
        created_at_ms: now,
        created_by: who.user_id.clone(),
    };
    state.store.set_webhook(&rec, secret.as_bytes())?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "webhook.set",
        Some(tenant),
        "ok",
        now,
    );
    info!(tenant = %tenant, "webhook set");
    let mut answer = webhook_json(&rec);
    answer["secret"] = json!(secret.as_str());
    Ok(Reply::ok(answer))
}

pub(super) fn test_webhook(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    if state.store.webhook(tenant)?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let key = crate::core::crypto::random_id("test");
    let new = NewNotification {
        kind: NotificationKind::WebhookTest,
        subject: None,
        due_at_ms: None,
        dedupe_key: &key,
    };
    let n = state
        .store
        .create_notification(tenant, new, now)?
        .ok_or_else(|| ApiError::conflict("a test is already owed"))?;
    Ok(Reply::json(
        hyper::StatusCode::ACCEPTED,
        notification_json(&n),
    ))
}

pub(super) fn delete_webhook(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    if !state.store.delete_webhook(tenant)? {
        return Err(ApiError::not_found("webhook"));
    }
    state.audit(
        Some(tenant),
        &who.user_id,
        "webhook.deleted",
        Some(tenant),
        "ok",
        now,
    );
    info!(tenant = %tenant, "webhook deleted");
    Ok(Reply::ok(json!({"deleted": true})))
}
