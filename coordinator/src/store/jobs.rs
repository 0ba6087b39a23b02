//! Jobs and their labels: a label is sealed under its tenant's data key and stored in one
//! transaction with its job, then deleted once printed or failed.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use zeroize::Zeroizing;

use super::{
    decode, encode, get, prefix, put, scan, scoped, tx_err, JobRecord, JobStatus, Store, StoreError,
};

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
        put(&self.inner.jobs, &scoped(&job.tenant_id, &job.id), job)
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
