//! Listing a tenant's jobs: filters and cursor pages in the `jobs` tree's key order
//! (`"<tenant>/<job id>"`, so by job id), which is stable: a page starts strictly after the
//! id of the previous page's last job, so pages never repeat or skip a job that existed
//! when the first page was read.

use std::ops::Bound;

use super::{decode, prefix, scoped, JobRecord, JobStatus, Store, StoreError};

/// Which jobs to list; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// The job's status.
    pub status: Option<JobStatus>,
    /// The pool asked for.
    pub pool: Option<String>,
    /// The printer asked for or assigned.
    pub printer: Option<String>,
    /// The agent assigned.
    pub agent: Option<String>,
    /// Created at or after, unix ms.
    pub created_after_ms: Option<u64>,
    /// Created before, unix ms.
    pub created_before_ms: Option<u64>,
    /// The caller's reference.
    pub client_reference: Option<String>,
    /// Reprints only (`true`) or no reprints (`false`).
    pub reprint: Option<bool>,
}

impl JobFilter {
    /// Whether `job` matches.
    pub fn matches(&self, job: &JobRecord) -> bool {
        let eq = |want: &Option<String>, have: Option<&String>| {
            want.as_ref().is_none_or(|w| have == Some(w))
        };
        self.status.is_none_or(|s| job.status == s)
            && eq(&self.pool, job.pool.as_ref())
            && (self.printer.is_none()
                || eq(&self.printer, job.printer.as_ref())
                || eq(&self.printer, job.requested_printer.as_ref()))
            && eq(&self.agent, job.agent.as_ref())
            && self.created_after_ms.is_none_or(|t| job.created_at_ms >= t)
            && self.created_before_ms.is_none_or(|t| job.created_at_ms < t)
            && eq(&self.client_reference, job.client_reference.as_ref())
            && self.reprint.is_none_or(|r| job.reprint == r)
    }
}

impl Store {
    /// Up to `limit` jobs of `tenant_id` matching `filter`, after the job id
    /// `starting_after` when given, in job id order; and whether more follow.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn jobs_page(
        &self,
        tenant_id: &str,
        filter: &JobFilter,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<JobRecord>, bool), StoreError> {
        let p = prefix(tenant_id);
        let start = match starting_after {
            Some(id) => Bound::Excluded(scoped(tenant_id, id)),
            None => Bound::Included(p.clone()),
        };
        // The tenant's range ends before "<tenant>0" ('0' follows '/').
        let mut end = p;
        if let Some(last) = end.last_mut() {
            *last = b'0';
        }
        let mut out = Vec::new();
        for kv in self.inner.jobs.range((start, Bound::Excluded(end))) {
            let (_, v) = kv?;
            let job: JobRecord = decode(&v, "job")?;
            if filter.matches(&job) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(job);
            }
        }
        Ok((out, false))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::core::crypto::{random_id, MasterKey};
    use crate::store::encode;

    fn job(tenant: &str, i: u64) -> JobRecord {
        JobRecord {
            id: random_id("job"),
            tenant_id: tenant.into(),
            pool: Some(if i.is_multiple_of(2) { "even" } else { "odd" }.into()),
            requested_printer: None,
            printer: i.is_multiple_of(3).then(|| "p3".to_owned()),
            agent: None,
            status: if i.is_multiple_of(5) {
                JobStatus::InDoubt
            } else {
                JobStatus::Printed
            },
            format: sealprint_protocol::LabelFormat::Zpl,
            label_len: 1,
            label_sha256: String::new(),
            attempts: 0,
            excluded_printers: Vec::new(),
            attempt_deadline_ms: None,
            expires_at_ms: 0,
            created_at_ms: i,
            updated_at_ms: i,
            error: None,
            redacted: false,
            client_reference: Some(format!("PO-{i}")),
            reprint: false,
        }
    }

    /// 10,000 jobs of one tenant (and 500 of another, interleaved in the key space) page
    /// through in a stable order with no duplicate and no gap, also while jobs are added
    /// between pages; filters and the other tenant's range are respected.
    #[test]
    fn ten_thousand_jobs_page_through_without_duplicates_or_gaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let mut ids = BTreeSet::new();
        for i in 0..10_000 {
            let j = job("ten-a", i);
            store
                .inner
                .jobs
                .insert(scoped(&j.tenant_id, &j.id), encode(&j))
                .expect("insert");
            ids.insert(j.id);
        }
        // A tenant whose id extends the first one's: its range must not leak in.
        for i in 0..500 {
            let j = job("ten-a0", i);
            store
                .inner
                .jobs
                .insert(scoped(&j.tenant_id, &j.id), encode(&j))
                .expect("insert");
        }
        let all = JobFilter::default();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let (page, more) = store
                .jobs_page("ten-a", &all, after.as_deref(), 97)
                .expect("page");
            pages += 1;
            assert!(page.len() <= 97);
            assert!(page.iter().all(|j| j.tenant_id == "ten-a"));
            seen.extend(page.iter().map(|j| j.id.clone()));
            if !more {
                break;
            }
            assert_eq!(page.len(), 97);
            after = page.last().map(|j| j.id.clone());
            // New jobs arrive while the client pages: existing ones are still seen once.
            let j = job("ten-a", 20_000 + pages);
            store
                .inner
                .jobs
                .insert(scoped(&j.tenant_id, &j.id), encode(&j))
                .expect("insert");
        }
        let unique: BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "a job was listed twice");
        assert!(ids.is_subset(&unique), "a job was skipped");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "not in id order");

        // Filters: in doubt, even pool, printer p3, a time window, one reference.
        let f = JobFilter {
            status: Some(JobStatus::InDoubt),
            pool: Some("even".into()),
            printer: Some("p3".into()),
            created_after_ms: Some(1000),
            created_before_ms: Some(2000),
            ..JobFilter::default()
        };
        let (page, more) = store.jobs_page("ten-a", &f, None, 1000).expect("page");
        // i in [1000, 2000) with i % 30 == 0.
        assert_eq!((page.len(), more), (33, false));
        assert!(page.iter().all(|j| j.created_at_ms % 30 == 0));
        let f = JobFilter {
            client_reference: Some("PO-4242".into()),
            ..JobFilter::default()
        };
        let (page, _) = store.jobs_page("ten-a", &f, None, 10).expect("page");
        assert_eq!(
            page.iter().map(|j| j.created_at_ms).collect::<Vec<_>>(),
            [4242]
        );
    }
}
