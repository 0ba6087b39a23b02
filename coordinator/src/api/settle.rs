//! Settling jobs by hand: `POST …/labels/{id}/resolve` (`{"outcome": "printed" |
//! "not_printed"}`) for a job `in_doubt`, and `POST …/labels/{id}/cancel` for a `queued`
//! job. Operator, admin or owner; the person's id is recorded in the audit log.
//!
//! Both are decided by the dispatcher (the mesh event loop, [`Dispatch::settle`]), which also
//! applies the agents' receipts: whichever of a late receipt and a resolve reaches it first
//! settles the job, and a resolve that comes second answers 409 `not_in_doubt` with the
//! job's status. A job that is no longer queued (already sent) cannot be cancelled: 409
//! `not_queued`. An SP-API label whose fetch has not made a job yet (a purchase in doubt
//! included) has nothing to print or hold back here: 409 as well.
//!
//! [`Dispatch::settle`]: crate::core::dispatcher::Dispatch::settle

use std::time::Duration;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::dispatcher::{SettleAction, SettleAnswer, SettleRequest};

/// How long a settlement may wait for the dispatcher's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The outcome an operator gives a job in doubt.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Outcome {
    /// It did print: the job ends `printed` and its label is deleted.
    Printed,
    /// It did not print: the job is queued again and prints once on a verified printer.
    NotPrinted,
}

/// The body of `POST …/labels/{id}/resolve`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    /// `printed` or `not_printed`.
    outcome: Outcome,
}

/// Why a job the dispatcher does not know cannot be settled: an SP-API label not fetched yet
/// (its purchase may itself be in doubt: that is settled with Amazon, e.g. `cancel-shipment`,
/// not here) is 409; anything else 404.
fn not_a_print_job(
    state: &ApiState,
    tenant: &str,
    job: &str,
    action: SettleAction,
) -> Result<ApiError, ApiError> {
    let Some(fetch) = state.store.spapi_fetch(tenant, job)? else {
        return Ok(ApiError::not_found("label"));
    };
    let code = match action {
        SettleAction::Cancel => "not_queued",
        SettleAction::Printed | SettleAction::NotPrinted => "not_in_doubt",
    };
    Ok(ApiError::new(
        StatusCode::CONFLICT,
        code,
        format!(
            "this SP-API label has no print job yet (its fetch is {:?}): a purchase in doubt \
             is settled with Amazon (cancel-shipment), not here",
            fetch.state
        )
        .to_lowercase(),
    ))
}

/// `POST …/labels/{id}/resolve`.
pub(super) async fn resolve(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    job: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let req: ResolveBody = parse_json(body)?;
    let action = match req.outcome {
        Outcome::Printed => SettleAction::Printed,
        Outcome::NotPrinted => SettleAction::NotPrinted,
    };
    settle(state, who, tenant, job, action).await
}

/// `POST …/labels/{id}/cancel`.
pub(super) async fn cancel(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    job: &str,
) -> Result<Reply, ApiError> {
    settle(state, who, tenant, job, SettleAction::Cancel).await
}

async fn settle(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    job: &str,
    action: SettleAction,
) -> Result<Reply, ApiError> {
    let (tx, rx) = oneshot::channel();
    let request = SettleRequest {
        tenant_id: tenant.to_owned(),
        job_id: job.to_owned(),
        actor: who.user_id.clone(),
        action,
    };
    state.dispatch.settle(
        request,
        Box::new(move |answer| {
            let _ = tx.send(answer);
        }),
    );
    let answer = match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(a)) => a,
        Ok(Err(_)) | Err(_) => SettleAnswer::Unavailable,
    };
    match answer {
        SettleAnswer::Settled(status) => Ok(Reply::ok(json!({"id": job, "status": status}))),
        SettleAnswer::NotFound => Err(not_a_print_job(state, tenant, job, action)?),
        SettleAnswer::WrongState(status) => Err(match action {
            SettleAction::Cancel => ApiError::new(
                StatusCode::CONFLICT,
                "not_queued",
                format!("only a queued job can be cancelled; this one is {status}"),
            ),
            _ => ApiError::new(
                StatusCode::CONFLICT,
                "not_in_doubt",
                format!("only a job in doubt can be resolved; this one is {status}"),
            ),
        }),
        SettleAnswer::Unavailable => Err(ApiError::unavailable(
            "the dispatcher is busy or stopping; try again",
        )),
        SettleAnswer::Failed => Err(ApiError::internal(&"the job's new state was not stored")),
    }
}
