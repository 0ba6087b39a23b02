//! Label submission (`POST /v1/tenants/{t}/labels`) and job state (`GET …/labels/{id}`):
//! thin handlers over [`crate::services::labels`], which holds the one flow (admission,
//! checks, storing, audit, dispatch) and whose [`SubmitError`]s become answers here.
//!
//! A body with a `"source"` (an SP-API label) is admitted by the same flow, then handed to
//! `spapi`, which starts the fetch. It does not pick the printer (the dispatcher does).

use hyper::StatusCode;
use serde_json::json;

use super::auth::Principal;
use super::error::{json_error, ApiError};
use super::{ApiState, Reply};
use crate::core::compliance::LabelMode;
use crate::services::labels::{self as service, SubmitError};
use crate::store::JobStatus;

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::Busy => ApiError::busy(e.to_string()),
            SubmitError::NoTenant => ApiError::not_found("tenant"),
            SubmitError::Gate(refusal) => {
                super::compliance::gate_error(&refusal, "printing labels")
            }
            SubmitError::Canary(alert) => ApiError::refused(
                "canary_order",
                format!(
                    "this order is a canary record that must never be printed: the request was \
                     reported (alert {}) and the tenant's labels are refused until an owner \
                     clears it",
                    alert.id
                ),
            ),
            SubmitError::Restricted(alert) => super::alerts::restricted(&alert.tenant_id, &alert),
            SubmitError::Json(e) => json_error(&e),
            SubmitError::BadRequest(m) => ApiError::bad_request(m),
            SubmitError::Invalid(m) => ApiError::unprocessable(m),
            SubmitError::NoPrinter => ApiError::not_found("printer"),
            SubmitError::Store(e) => e.into(),
        }
    }
}

pub(super) fn submit(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let store = &state.store;
    let mode = service::admit(store, &*state.dispatch, &who.user_id, tenant, body, now)?;
    let redacted = mode == LabelMode::Redacted;
    if super::spapi::is_spapi_source(body) {
        return super::spapi::submit_label(state, who, tenant, body, redacted, now);
    }
    let job = service::submit_upload(
        store,
        &*state.dispatch,
        &who.user_id,
        tenant,
        body,
        mode,
        now,
    )?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"id": job.id, "status": JobStatus::Queued.as_str(), "redacted": job.redacted}),
    ))
}

pub(super) fn get(state: &ApiState, tenant: &str, job_id: &str) -> Result<Reply, ApiError> {
    let Some(job) = state.store.job(tenant, job_id)? else {
        return super::spapi::pending_label(state, tenant, job_id);
    };
    let mut view = json!({
        "id": job.id,
        "status": job.status.as_str(),
        "printer": job.printer,
        "agent": job.agent,
        "pool": job.pool,
        "attempts": job.attempts,
        "error": job.error,
        "redacted": job.redacted,
        "created_at": job.created_at_ms,
        "updated_at": job.updated_at_ms,
    });
    super::spapi::decorate_label(state, tenant, job_id, &mut view)?;
    Ok(Reply::ok(view))
}
