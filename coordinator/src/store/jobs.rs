//! Jobs and their labels: a label is sealed under its tenant's data key and stored in one
//! transaction with its job, then deleted once printed or failed.

use sealprint_protocol::LabelFormat;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use zeroize::Zeroizing;

use super::{decode, encode, get, prefix, put, scan, scoped, tx_err, Store, StoreError};
use crate::core::metrics;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a printer.
    Queued,
    /// Sent to an agent; waiting for its answer.
    Dispatched,
    /// Printed (final).
    Printed,
    /// Not printed and will not be (final).
    Failed,
    /// Printing started but its result is unknown: an operator decides; never reprinted
    /// automatically.
    InDoubt,
    /// Cancelled by an operator while queued: never sent (final).
    Cancelled,
}

impl JobStatus {
    /// The API name (`queued`, `dispatched`, `printed`, `failed`, `in_doubt`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Dispatched => "dispatched",
            JobStatus::Printed => "printed",
            JobStatus::Failed => "failed",
            JobStatus::InDoubt => "in_doubt",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// A print job. Holds the label's length and hash, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `job-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Pool asked for.
    pub pool: Option<String>,
    /// Printer id asked for.
    pub requested_printer: Option<String>,
    /// Printer id assigned.
    pub printer: Option<String>,
    /// Device id of the agent assigned.
    pub agent: Option<String>,
    /// Status.
    pub status: JobStatus,
    /// Label format.
    pub format: LabelFormat,
    /// Label length in bytes.
    pub label_len: u32,
    /// Hex sha256 of the label, for logs and audit.
    pub label_sha256: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Printers that said they did not print it.
    pub excluded_printers: Vec<String>,
    /// Deadline of the current attempt, unix ms.
    pub attempt_deadline_ms: Option<u64>,
    /// When the job gives up waiting for a printer, unix ms.
    pub expires_at_ms: u64,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Last change, unix ms.
    pub updated_at_ms: u64,
    /// Last error, for a person; no PII.
    pub error: Option<String>,
    /// The label was replaced by the redacted stand-in (attestation not complete); the real
    /// bytes were never stored.
    #[serde(default)]
    pub redacted: bool,
    /// The caller's own reference (an order number of its system, `[A-Za-z0-9._:/#-]`, not
    /// PII), searchable.
    #[serde(default)]
    pub client_reference: Option<String>,
    /// The label was bought and fetched before (an SP-API reprint source): a `pii_reader`
    /// asked for it, and it is flagged in views, lists, audit entries and events.
    #[serde(default)]
    pub reprint: bool,
}

impl Store {
    fn label_aad(tenant_id: &str, job_id: &str) -> Vec<u8> {
        format!("sealprint/label/v1\0{tenant_id}\0{job_id}").into_bytes()
    }

    /// Stores a new job and its label, the label encrypted under the tenant's data key, both
    /// in one transaction, and flushes it to disk before returning: a job the API accepted
    /// survives a crash.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the tenant has no data key, [`StoreError::Conflict`]
    /// when the job id exists, [`StoreError::Db`], [`StoreError::Crypto`].
    pub fn create_job(&self, job: &JobRecord, label: &[u8]) -> Result<(), StoreError> {
        let key = self.data_key(&job.tenant_id)?;
        let sealed = key.seal(&Self::label_aad(&job.tenant_id, &job.id), label);
        let k = scoped(&job.tenant_id, &job.id);
        let value = encode(job);
        (&self.inner.jobs, &self.inner.labels)
            .transaction(|(jobs, labels)| {
                if jobs.get(&k)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                jobs.insert(k.as_slice(), value.clone())?;
                labels.insert(k.as_slice(), sealed.clone())?;
                Ok(())
            })
            .map_err(tx_err)?;
        metrics::get().job_entered(job.status.as_str());
        self.flush()
    }

    /// A job of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn job(&self, tenant_id: &str, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        get(&self.inner.jobs, &scoped(tenant_id, job_id), "job")
    }

    /// Replaces a job's record.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn update_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        put(&self.inner.jobs, &scoped(&job.tenant_id, &job.id), job)?;
        // Every rewrite of a job record is a change of its state.
        metrics::get().job_entered(job.status.as_str());
        Ok(())
    }

    /// Jobs still queued, dispatched or in doubt, across tenants (to resume after a restart:
    /// an in-doubt job may yet be settled by its agent's receipts).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let all: Vec<JobRecord> = scan(&self.inner.jobs, b"", "job")?;
        Ok(all
            .into_iter()
            .filter(|j| {
                matches!(
                    j.status,
                    JobStatus::Queued | JobStatus::Dispatched | JobStatus::InDoubt
                )
            })
            .collect())
    }

    /// How many jobs a tenant created at or after `since_ms`.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn jobs_created_since(&self, tenant_id: &str, since_ms: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.inner.jobs.scan_prefix(prefix(tenant_id)) {
            let (_, v) = kv?;
            let job: JobRecord = decode(&v, "job")?;
            if job.created_at_ms >= since_ms {
                n += 1;
            }
        }
        Ok(n)
    }

    /// A job's label, decrypted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it was deleted (or never existed), [`StoreError::Crypto`]
    /// when it does not decrypt (tenant key shredded or data tampered with).
    pub fn label(&self, tenant_id: &str, job_id: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let sealed = self
            .inner
            .labels
            .get(scoped(tenant_id, job_id))?
            .ok_or(StoreError::NotFound)?;
        let key = self.data_key(tenant_id)?;
        Ok(key.open(&Self::label_aad(tenant_id, job_id), &sealed)?)
    }

    /// Deletes a job's label (idempotent).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn delete_label(&self, tenant_id: &str, job_id: &str) -> Result<(), StoreError> {
        self.inner.labels.remove(scoped(tenant_id, job_id))?;
        Ok(())
    }
}
