//! Label submission as one flow: admission (backlog, compliance gates, monitoring), then
//! either an uploaded label (checked, stored encrypted, audited by hash, dispatched) or an
//! SP-API source (handed back to the caller, which starts the fetch).
//!
//! - [`admit`]: the backlog bound, the tenant's label gate (suspension, subscription,
//!   requirements, attestation: full or redacted), canary orders and the restriction of an
//!   open alert, and the volume and hour rules (`admission`).
//! - [`submit_upload`]: an uploaded label (`upload`: strict base64, size, format magic,
//!   target, `client_reference`), stored queued under the tenant key, audited by id and
//!   sha256 (never bytes), then handed to the dispatcher.
//!
//! Errors are [`SubmitError`]s; the API turns them into answers. No label bytes, names or
//! addresses in errors, logs or audit entries: ids and hashes only.

mod admission;
mod upload;

use sealprint_protocol::{LabelFormat, PrinterVerdict};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

pub use admission::{admit, named_orders};
pub(crate) use upload::{decode_label, matches_format};
pub use upload::{valid_client_reference, Upload, MAX_CLIENT_REFERENCE};

use crate::core::audit::AuditEntry;
use crate::core::compliance::{self, GateRefusal, LabelMode};
use crate::core::crypto::random_id;
use crate::core::dispatch::JOB_TTL_MS;
use crate::core::dispatcher::Dispatch;
use crate::store::{AlertRecord, JobRecord, JobStatus, Store, StoreError};

/// Why a label is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Too many labels already wait for a printer.
    #[error("too many labels are waiting for a printer; retry later")]
    Busy,
    /// The tenant does not exist.
    #[error("tenant not found")]
    NoTenant,
    /// The tenant's label gate refuses (suspended, subscription, requirements).
    #[error("the tenant may not print labels")]
    Gate(GateRefusal),
    /// The request named a canary order; the alert raised.
    #[error("canary order requested")]
    Canary(Box<AlertRecord>),
    /// An open alert restricts the tenant's labels.
    #[error("the tenant's labels are restricted")]
    Restricted(Box<AlertRecord>),
    /// The body is not the JSON of an upload.
    #[error("body is not a label upload")]
    Json(#[source] serde_json::Error),
    /// Malformed input (400), with a message that echoes no value.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid input (422), with a message that echoes no value.
    #[error("{0}")]
    Invalid(String),
    /// The printer named is not the tenant's.
    #[error("printer not found")]
    NoPrinter,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A label accepted and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The job id.
    pub id: String,
    /// Whether the label was replaced by the redacted stand-in.
    pub redacted: bool,
}

/// Appends an audit entry; a failure is logged, not returned (the action already happened).
pub fn audit(
    store: &Store,
    tenant: &str,
    actor: &str,
    action: &str,
    object: Option<&str>,
    outcome: &str,
    now: u64,
) {
    let entry = AuditEntry {
        at_ms: now,
        tenant_id: Some(tenant.to_owned()),
        actor: actor.to_owned(),
        action: action.to_owned(),
        object: object.map(str::to_owned),
        outcome: outcome.to_owned(),
    };
    if let Err(e) = store.append_audit(entry) {
        warn!(error = %e, action, "audit entry not written");
    }
}

/// Checks the target of a label: exactly one of a verified printer of the tenant or a pool
/// one of its printers serves.
///
/// # Errors
/// [`SubmitError::NoPrinter`], [`SubmitError::Invalid`], [`SubmitError::BadRequest`].
pub fn check_target(
    store: &Store,
    tenant: &str,
    printer: Option<&String>,
    pool: Option<&String>,
) -> Result<(), SubmitError> {
    match (printer, pool) {
        (Some(p), None) => {
            let printer = store.printer(tenant, p)?.ok_or(SubmitError::NoPrinter)?;
            if printer.verdict != PrinterVerdict::Verified {
                return Err(SubmitError::Invalid("the printer is not verified".into()));
            }
        }
        (None, Some(pool)) => {
            if pool.is_empty() || pool.len() > 64 {
                return Err(SubmitError::Invalid("pool must be 1 to 64 bytes".into()));
            }
            if !store.printers(tenant)?.iter().any(|p| &p.pool == pool) {
                return Err(SubmitError::Invalid(
                    "no printer of the tenant serves this pool".into(),
                ));
            }
        }
        _ => {
            return Err(SubmitError::BadRequest(
                "give exactly one of printer or pool".into(),
            ))
        }
    }
    Ok(())
}

/// Stores, audits and dispatches an uploaded label, admitted with `mode` (see [`admit`]).
///
/// # Errors
/// [`SubmitError`]: the body, the target, the label's size or format, the store.
pub fn submit_upload(
    store: &Store,
    dispatch: &dyn Dispatch,
    actor: &str,
    tenant: &str,
    body: &[u8],
    mode: LabelMode,
    now: u64,
) -> Result<Submitted, SubmitError> {
    let req = Upload::parse(body)?;
    check_target(store, tenant, req.printer.as_ref(), req.pool.as_ref())?;
    let (label, format) = req.label()?;
    let redacted = mode == LabelMode::Redacted;
    let (label, format) = if redacted {
        // The real label is dropped (zeroized) here: only the redacted one is ever stored.
        drop(label);
        let zpl = compliance::redacted_zpl(
            req.order_id.as_deref(),
            req.carrier.as_deref(),
            req.tracking.as_deref(),
        );
        (Zeroizing::new(zpl), LabelFormat::Zpl)
    } else {
        (label, format)
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
        // The upload caps the length at 8 MiB.
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
        client_reference: req.client_reference.clone(),
        reprint: false,
    };
    store.create_job(&job, &label)?;
    drop(label);
    let outcome = if redacted {
        format!("ok redacted sha256={sha256}")
    } else {
        format!("ok sha256={sha256}")
    };
    audit(
        store,
        tenant,
        actor,
        "label.requested",
        Some(&job.id),
        &outcome,
        now,
    );
    info!(tenant = %tenant, job = %job.id, sha256 = %sha256, len = job.label_len, format = format.as_str(), redacted, "label queued");
    dispatch.job_submitted(tenant, &job.id);
    Ok(Submitted {
        id: job.id,
        redacted,
    })
}
