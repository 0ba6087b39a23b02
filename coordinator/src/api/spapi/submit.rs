//! Labels from SP-API sources: `POST /v1/tenants/{t}/labels` with a `"source"` (handed
//! over by `labels` after its gates) records the fetch, starts it in the background and
//! answers 202 with the job `queued`; the job view shows the fetch while there is no job
//! yet, and the shipment, tracking id and failing SP-API call afterwards.

use hyper::StatusCode;
use sealprint_protocol::validate_id;
use serde_json::{json, Value};
use tracing::info;

use super::sources::parse;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::{ApiState, Reply};
use crate::core::crypto::random_id;
use crate::store::{FetchState, SpapiFetchRecord};

/// The same target rules as raw uploads: exactly one of a verified printer of the tenant or
/// a pool one of its printers serves.
fn check_target(
    state: &ApiState,
    tenant: &str,
    printer: Option<&String>,
    pool: Option<&String>,
) -> Result<(), ApiError> {
    Ok(crate::services::labels::check_target(
        &state.store,
        tenant,
        printer,
        pool,
    )?)
}

/// `POST …/labels` with a `"source"`: checks, records the fetch, starts it, answers 202.
/// `redacted`: the tenant's labels are replaced by the redacted label (compliance gate).
pub(in crate::api) fn submit_label(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    redacted: bool,
    now: u64,
) -> Result<Reply, ApiError> {
    let job_id = random_id("job");
    let p = parse(body, &job_id)?;
    if validate_id(&p.connection).is_err()
        || state
            .store
            .spapi_connection(tenant, &p.connection)?
            .is_none()
    {
        return Err(ApiError::not_found("spapi connection"));
    }
    check_target(state, tenant, p.printer.as_ref(), p.pool.as_ref())?;
    let rec = SpapiFetchRecord {
        job_id: job_id.clone(),
        tenant_id: tenant.to_owned(),
        connection_id: p.connection,
        source: p.source.name().to_owned(),
        state: FetchState::Fetching,
        pool: p.pool,
        printer: p.printer,
        job_ttl_ms: crate::core::dispatch::JOB_TTL_MS,
        shipment_id: None,
        tracking_id: None,
        idempotency_key: p.idempotency_key,
        failed_call: None,
        error_code: None,
        request_id: None,
        error: None,
        checksum: None,
        redacted,
        label_format_fallback: false,
        created_at_ms: now,
        updated_at_ms: now,
    };
    state.store.create_spapi_fetch(&rec)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "label.requested",
        Some(&job_id),
        &format!("ok source={}", rec.source),
        now,
    );
    info!(tenant = %tenant, job = %job_id, source = %rec.source, connection = %rec.connection_id, "label fetch started");
    let source_name = rec.source.clone();
    state.spapi.spawn_fetch(rec, p.source);
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"id": job_id, "status": "queued", "source": source_name, "redacted": redacted}),
    ))
}

fn fetch_view(r: &SpapiFetchRecord) -> Value {
    json!({
        "source": r.source,
        "connection": r.connection_id,
        "state": match r.state {
            FetchState::Fetching => "fetching",
            FetchState::Fetched => "fetched",
            FetchState::Failed => "failed",
            FetchState::InDoubt => "in_doubt",
        },
        "shipment_id": r.shipment_id,
        "tracking_id": r.tracking_id,
        "idempotency_key": r.idempotency_key,
        "failed_call": r.failed_call,
        "error_code": r.error_code,
        "request_id": r.request_id,
        "checksum": r.checksum,
        "label_format_fallback": r.label_format_fallback,
    })
}

/// The view of a label that has no job yet (fetching, or the fetch failed): 404 when there
/// is no fetch either.
pub(in crate::api) fn pending_label(
    state: &ApiState,
    tenant: &str,
    job_id: &str,
) -> Result<Reply, ApiError> {
    let r = state
        .store
        .spapi_fetch(tenant, job_id)?
        .ok_or_else(|| ApiError::not_found("label"))?;
    let status = match r.state {
        FetchState::Fetching | FetchState::Fetched => "queued",
        FetchState::Failed => "failed",
        FetchState::InDoubt => "in_doubt",
    };
    Ok(Reply::ok(json!({
        "id": r.job_id,
        "status": status,
        "printer": null,
        "pool": r.pool,
        "attempts": 0,
        "error": r.error,
        "redacted": r.redacted,
        "created_at": r.created_at_ms,
        "updated_at": r.updated_at_ms,
        "shipment_id": r.shipment_id,
        "tracking_id": r.tracking_id,
        "spapi": fetch_view(&r),
    })))
}

/// Adds the SP-API fields to a job's view when it came from SP-API.
pub(in crate::api) fn decorate_label(
    state: &ApiState,
    tenant: &str,
    job_id: &str,
    view: &mut Value,
) -> Result<(), ApiError> {
    if let (Some(r), Some(m)) = (
        state.store.spapi_fetch(tenant, job_id)?,
        view.as_object_mut(),
    ) {
        m.insert("shipment_id".into(), json!(r.shipment_id));
        m.insert("tracking_id".into(), json!(r.tracking_id));
        m.insert("spapi".into(), fetch_view(&r));
    }
    Ok(())
}
