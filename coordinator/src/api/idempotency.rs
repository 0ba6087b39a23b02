//! The `Idempotency-Key` header of creating POSTs: a retry with the same key and the same
//! request (method, path, body) within 24 h gets the first answer (same status, same job
//! id) and creates nothing; the same key with another request is 422
//! `idempotency_key_reused`; while the first request runs, 409 `idempotency_key_in_use`.
//! Keys are per tenant, 1 to [`MAX_KEY_LEN`] printable ASCII characters (400
//! `invalid_idempotency_key` otherwise); only hashes are stored (see
//! [`crate::store::Claim`]). Only successful answers are remembered: a failed request
//! releases its key, so a retry runs again.

use hyper::header::HeaderMap;
use hyper::StatusCode;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::error::ApiError;
use super::{ApiState, Reply};
use crate::store::{Claim, StoredAnswer};

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";

/// Longest key.
pub(crate) const MAX_KEY_LEN: usize = 255;

/// The routes (POST, by path template) that honour the header: those that create
/// something and whose answer holds ids and states only (never a secret or PII, since the
/// answer is kept).
pub(crate) const ROUTES: &[&str] = &["/v1/tenants/{tenant}/labels"];

/// A claimed key, to complete or release once the handler answered.
pub(crate) struct Claimed {
    tenant: String,
    key: String,
}

/// What the route runner does with a request.
pub(crate) enum Begin {
    /// Run the handler (with the key claimed, when there was one).
    Run(Option<Claimed>),
    /// Answer this without running the handler.
    Answer(Reply),
}

/// The key of `headers`, checked.
fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let ok =
        |s: &str| (1..=MAX_KEY_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    match v.to_str() {
        Ok(s) if ok(s) => Ok(Some(s.to_owned())),
        _ => Err(ApiError::invalid(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        )),
    }
}

/// Claims the request's key, if it has one (call after authentication and tenant scoping).
pub(crate) fn begin(
    state: &ApiState,
    tenant: &str,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    now: u64,
) -> Result<Begin, ApiError> {
    let Some(key) = key(headers)? else {
        return Ok(Begin::Run(None));
    };
    let mut h = Sha256::new();
    h.update(b"POST ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    let request = hex::encode(h.finalize());
    match state.store.claim_idempotency(tenant, &key, &request, now)? {
        Claim::Fresh => Ok(Begin::Run(Some(Claimed {
            tenant: tenant.to_owned(),
            key,
        }))),
        Claim::Replay(a) => {
            debug!(tenant = %tenant, "idempotent replay");
            let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
            Ok(Begin::Answer(Reply::json(status, a.body)))
        }
        Claim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request in the last 24 hours",
        )),
        Claim::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running: retry later",
        )),
    }
}

/// Remembers a successful answer of a claimed key, or releases the key of a failure.
pub(crate) fn finish(state: &ApiState, claimed: Claimed, result: &Result<Reply, ApiError>) {
    let stored = match result {
        Ok(r) if r.status.is_success() && r.raw.is_none() => {
            let answer = StoredAnswer {
                status: r.status.as_u16(),
                body: r.body.clone(),
            };
            state
                .store
                .complete_idempotency(&claimed.tenant, &claimed.key, answer)
        }
        _ => state
            .store
            .release_idempotency(&claimed.tenant, &claimed.key),
    };
    if let Err(e) = stored {
        warn!(error = %e, tenant = %claimed.tenant, "idempotency key not recorded");
    }
}
