//! Label submission (`POST /v1/tenants/{t}/labels`) and job state (`GET …/labels/{id}`).
//!
//! A label is checked before it is stored: strict base64, 1 byte to
//! [`MAX_LABEL_LEN`](sealprint_protocol::envelope::MAX_LABEL_LEN) decoded, and bytes that
//! match the declared format (PDF `%PDF-`, PNG signature, ZPL containing `^XA`). The target
//! is exactly one of a known printer of the tenant (verified) or a pool the tenant has seen.
//! The job is stored queued with its label encrypted under the tenant key, audited by id and
//! sha256 (never bytes), then handed to the dispatcher. Decoded buffers are zeroized.
//!
//! Gates (see [`crate::core::compliance::label_gate`]): a suspended tenant is refused (403
//! `tenant_suspended`, with the reason), one without an active subscription too (402); until
//! the tenant's security attestation is complete (or once it is a year old) the label is
//! replaced, here, before anything is stored, by a redacted ZPL label (order id, carrier and
//! tracking when given, no PII), and the job says `"redacted": true`.
//!
//! A body with a `"source"` (an SP-API label) is handed to `spapi` after the gates. It does
//! not pick the printer (the dispatcher does).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hyper::StatusCode;
use sealprint_protocol::envelope::MAX_LABEL_LEN;
use sealprint_protocol::{LabelFormat, PrinterVerdict};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;
use zeroize::{Zeroize, Zeroizing};

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::compliance::{self, LabelMode};
use crate::core::crypto::random_id;
use crate::store::{JobRecord, JobStatus};

pub use crate::core::dispatch::JOB_TTL_MS;

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    Zpl,
    Pdf,
    Png,
}

impl From<Format> for LabelFormat {
    fn from(f: Format) -> LabelFormat {
        match f {
            Format::Zpl => LabelFormat::Zpl,
            Format::Pdf => LabelFormat::Pdf,
            Format::Png => LabelFormat::Png,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Submit {
    printer: Option<String>,
    pool: Option<String>,
    format: Format,
    content_base64: String,
    /// Printed on a redacted label (1 to 64 of `[A-Za-z0-9 ._-]`).
    order_id: Option<String>,
    /// Printed on a redacted label.
    carrier: Option<String>,
    /// Printed on a redacted label.
    tracking: Option<String>,
}

impl Drop for Submit {
    fn drop(&mut self) {
        self.content_base64.zeroize();
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Whether `bytes` look like `format`.
pub(super) fn matches_format(format: LabelFormat, bytes: &[u8]) -> bool {
    match format {
        LabelFormat::Pdf => bytes.starts_with(b"%PDF-"),
        LabelFormat::Png => bytes.starts_with(PNG_MAGIC),
        LabelFormat::Zpl => bytes.windows(3).any(|w| w == b"^XA"),
    }
}

pub(super) fn decode_label(b64: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    // Bound the work before decoding: 4 base64 chars per 3 bytes.
    if b64.len() > MAX_LABEL_LEN.div_ceil(3) * 4 {
        return Err(ApiError::unprocessable(format!(
            "label is larger than {MAX_LABEL_LEN} bytes"
        )));
    }
    // Reserve the full size first so the buffer holding the label is never reallocated.
    let mut buf = Zeroizing::new(Vec::with_capacity(b64.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(b64, &mut buf)
        .map_err(|_| ApiError::bad_request("content_base64 is not valid base64"))?;
    if buf.is_empty() || buf.len() > MAX_LABEL_LEN {
        return Err(ApiError::unprocessable(format!(
            "label must be 1 to {MAX_LABEL_LEN} bytes"
        )));
    }
    Ok(buf)
}

pub(super) fn submit(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    if state.dispatch.backlog_full() {
        return Err(ApiError::busy(
            "too many labels are waiting for a printer; retry later",
        ));
    }
    let t = super::compliance::tenant_record(state, tenant)?;
    let mode = match compliance::label_gate(
        t.suspension.as_ref(),
        t.subscription.state,
        t.attestation.as_ref(),
        &t.tier,
        now,
    ) {
        Ok(mode) => mode,
        Err(refusal) => {
            let e = super::compliance::gate_error(&refusal, "printing labels");
            state.audit(
                Some(tenant),
                &who.user_id,
                "label.refused",
                None,
                e.code,
                now,
            );
            return Err(e);
        }
    };
    // Monitoring: canary orders, restrictions, volume and hours (issue 4).
    super::alerts::before_label(state, who, tenant, body, now)?;
    if super::spapi::is_spapi_source(body) {
        let redacted = mode == LabelMode::Redacted;
        return super::spapi::submit_label(state, who, tenant, body, redacted, now);
    }
    let req: Submit = parse_json(body)?;
    for field in [&req.order_id, &req.carrier, &req.tracking]
        .into_iter()
        .flatten()
    {
        if !compliance::valid_label_field(field) {
            return Err(ApiError::unprocessable(
                "order_id, carrier and tracking must be 1 to 64 characters of letters, digits, \
                 space, '.', '_' or '-'",
            ));
        }
    }
    let format = LabelFormat::from(req.format);
    match (&req.printer, &req.pool) {
        (Some(p), None) => {
            let printer = state
                .store
                .printer(tenant, p)?
                .ok_or_else(|| ApiError::not_found("printer"))?;
            if printer.verdict != PrinterVerdict::Verified {
                return Err(ApiError::unprocessable("the printer is not verified"));
            }
        }
        (None, Some(pool)) => {
            if pool.is_empty() || pool.len() > 64 {
                return Err(ApiError::unprocessable("pool must be 1 to 64 bytes"));
            }
            if !state
                .store
                .printers(tenant)?
                .iter()
                .any(|p| &p.pool == pool)
            {
                return Err(ApiError::unprocessable(
                    "no printer of the tenant serves this pool",
                ));
            }
        }
        _ => return Err(ApiError::bad_request("give exactly one of printer or pool")),
    }
    let mut label = decode_label(&req.content_base64)?;
    if !matches_format(format, &label) {
        return Err(ApiError::unprocessable(format!(
            "the content is not a {} label",
            format.as_str()
        )));
    }
    let redacted = mode == LabelMode::Redacted;
    let format = if redacted {
        // The real label is dropped (zeroized) here: only the redacted one is ever stored.
        label = Zeroizing::new(compliance::redacted_zpl(
            req.order_id.as_deref(),
            req.carrier.as_deref(),
            req.tracking.as_deref(),
        ));
        LabelFormat::Zpl
    } else {
        format
    };
    let sha256 = hex::encode(Sha256::digest(label.as_slice()));
    let job = JobRecord {
        id: random_id("job"),
        tenant_id: tenant.to_owned(),
        pool: req.pool.clone(),
        requested_printer: req.printer.clone(),
        printer: None,
        agent: None,
        status: JobStatus::Queued,
        format,
        // decode_label caps the length at 8 MiB.
        label_len: u32::try_from(label.len()).unwrap_or(u32::MAX),
        label_sha256: sha256.clone(),
        attempts: 0,
        excluded_printers: Vec::new(),
        attempt_deadline_ms: None,
        expires_at_ms: now + JOB_TTL_MS,
        created_at_ms: now,
        updated_at_ms: now,
        error: None,
        redacted,
    };
    state.store.create_job(&job, &label)?;
    drop(label);
    state.audit(
        Some(tenant),
        &who.user_id,
        "label.requested",
        Some(&job.id),
        &if redacted {
            format!("ok redacted sha256={sha256}")
        } else {
            format!("ok sha256={sha256}")
        },
        now,
    );
    info!(tenant = %tenant, job = %job.id, sha256 = %sha256, len = job.label_len, format = format.as_str(), redacted, "label queued");
    state.dispatch.job_submitted(tenant, &job.id);
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"id": job.id, "status": JobStatus::Queued.as_str(), "redacted": redacted}),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_checks() {
        assert!(matches_format(LabelFormat::Pdf, b"%PDF-1.7 ..."));
        assert!(!matches_format(LabelFormat::Pdf, b"PDF"));
        assert!(matches_format(LabelFormat::Png, b"\x89PNG\r\n\x1a\n...."));
        assert!(!matches_format(LabelFormat::Png, b"\x89PNG"));
        assert!(matches_format(LabelFormat::Zpl, b"  ^XA^FO50,50^FDx^FS^XZ"));
        assert!(!matches_format(LabelFormat::Zpl, b"hello"));
    }

    #[test]
    fn base64_is_strict_and_bounded() {
        assert!(decode_label("Xlhh").is_ok());
        assert_eq!(
            decode_label("Xlhh\n").map_err(|e| e.status).err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            decode_label("Xlh").map_err(|e| e.status).err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            decode_label("").map_err(|e| e.status).err(),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        let big = "A".repeat((MAX_LABEL_LEN / 3 + 1) * 4);
        assert_eq!(
            decode_label(&big).map_err(|e| e.status).err(),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
    }
}
