//! Label submission (`POST /v1/tenants/{t}/labels`), the list (`GET …/labels`, filtered
//! and paged: see `page`) and job state (`GET …/labels/{id}`):
//! thin handlers over [`crate::services::labels`], which holds the one flow (admission,
//! checks, storing, audit, dispatch) and whose [`SubmitError`]s become answers here.
//!
//! A body with a `"source"` (an SP-API label) is admitted by the same flow, then handed to
//! `spapi`, which starts the fetch. It does not pick the printer (the dispatcher does).

use hyper::StatusCode;
use serde_json::{json, Value};

use super::auth::Principal;
use super::error::{json_error, ApiError};
use super::page::{self, Page};
use super::{ApiState, Reply};
use crate::core::compliance::LabelMode;
use crate::services::labels::{self as service, SubmitError};
use crate::store::{JobFilter, JobRecord, JobStatus};

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
        "client_reference": job.client_reference,
        "reprint": job.reprint,
        "created_at": job.created_at_ms,
        "updated_at": job.updated_at_ms,
    });
    super::spapi::decorate_label(state, tenant, job_id, &mut view)?;
    Ok(Reply::ok(view))
}

/// The statuses a `status` filter takes.
const STATUSES: [JobStatus; 6] = [
    JobStatus::Queued,
    JobStatus::Dispatched,
    JobStatus::Printed,
    JobStatus::Failed,
    JobStatus::InDoubt,
    JobStatus::Cancelled,
];

fn bad_filter(message: &str) -> ApiError {
    ApiError::invalid("invalid_filter", message)
}

fn id_filter(name: &str, v: String) -> Result<String, ApiError> {
    if sealprint_protocol::validate_id(&v).is_err() {
        return Err(bad_filter(&format!("{name} is not a valid id")));
    }
    Ok(v)
}

fn time_filter(name: &str, v: &str) -> Result<u64, ApiError> {
    v.parse()
        .map_err(|_| bad_filter(&format!("{name} must be unix milliseconds")))
}

/// The filter and page of a `GET …/labels` query.
fn list_query(query: Option<&str>) -> Result<(JobFilter, Page), ApiError> {
    let mut pairs = page::pairs(query)?;
    let page = Page::take(&mut pairs, page::DEFAULT_LIMIT)?;
    let mut f = JobFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "status" => {
                f.status = Some(STATUSES.into_iter().find(|s| s.as_str() == v).ok_or_else(
                    || {
                        bad_filter(
                            "status must be one of queued, dispatched, printed, failed, \
                                 in_doubt, cancelled",
                        )
                    },
                )?);
            }
            "pool" => {
                if !(1..=64).contains(&v.len()) {
                    return Err(bad_filter("pool must be 1 to 64 bytes"));
                }
                f.pool = Some(v);
            }
            "printer" => f.printer = Some(id_filter("printer", v)?),
            "agent" => f.agent = Some(id_filter("agent", v)?),
            "created_after" => f.created_after_ms = Some(time_filter("created_after", &v)?),
            "created_before" => f.created_before_ms = Some(time_filter("created_before", &v)?),
            "reprint" => {
                f.reprint = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad_filter("reprint must be true or false")),
                });
            }
            "client_reference" => {
                if !service::valid_client_reference(&v) {
                    return Err(bad_filter("client_reference is not a valid reference"));
                }
                f.client_reference = Some(v);
            }
            _ => {
                return Err(bad_filter(
                    "unknown query parameter (labels take limit, starting_after, status, pool, \
                     printer, agent, created_after, created_before, client_reference, reprint)",
                ))
            }
        }
    }
    Ok((f, page))
}

/// A job as lists show it: ids, states and times, no PII.
fn list_item(job: &JobRecord) -> Value {
    json!({
        "id": job.id,
        "status": job.status.as_str(),
        "pool": job.pool,
        "printer": job.printer.as_ref().or(job.requested_printer.as_ref()),
        "agent": job.agent,
        "attempts": job.attempts,
        "redacted": job.redacted,
        "client_reference": job.client_reference,
        "reprint": job.reprint,
        "created_at": job.created_at_ms,
        "updated_at": job.updated_at_ms,
    })
}

/// `GET /v1/tenants/{t}/labels`: the tenant's jobs, filtered, by job id, a page at a time.
pub(super) fn list(state: &ApiState, tenant: &str, query: Option<&str>) -> Result<Reply, ApiError> {
    let (filter, page) = list_query(query)?;
    let (jobs, has_more) =
        state
            .store
            .jobs_page(tenant, &filter, page.starting_after.as_deref(), page.limit)?;
    let next = if has_more {
        jobs.last().map(|j| j.id.clone())
    } else {
        None
    };
    Ok(Reply::ok(json!({
        "data": jobs.iter().map(list_item).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_starting_after": next,
    })))
}
