//! The hash-chained audit log: appends (serialised, each linked to the previous entry's
//! hash), reads, and the check of the chain. [`Store::audit`] is the one way the API and the
//! services record an action that already happened.

use tracing::warn;

use super::{decode, encode, scan, AuditEntry, Store, StoreError};
use crate::core::audit::{self, ChainedEntry};

impl Store {
    /// Records that `actor` did `action` (to `object`, of `tenant_id`) at `now_ms` with
    /// `outcome` (`"ok"` or a short reason, never PII). A failure is logged, not returned:
    /// the action already happened.
    pub fn audit(
        &self,
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
        now_ms: u64,
    ) {
        let entry = AuditEntry::new(tenant_id, actor, action, object, outcome, now_ms);
        if let Err(e) = self.append_audit(entry) {
            warn!(error = %e, action, "audit entry not written");
        }
    }

    /// Appends an entry to the hash-chained audit log. The entry must hold no PII.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`] when the last entry is unreadable.
    pub fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        // A poisoned lock only means another append panicked; the chain itself is in sled.
        let started = std::time::Instant::now();
        let _guard = self
            .inner
            .audit_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let last: Option<ChainedEntry> = match self.inner.audit.last()? {
            Some((_, v)) => Some(decode(&v, "audit entry")?),
            None => None,
        };
        let chained = audit::chain(last.as_ref(), entry);
        self.inner
            .audit
            .insert(chained.seq.to_be_bytes(), encode(&chained))?;
        crate::core::metrics::get().audit_appended(started.elapsed());
        Ok(())
    }

    /// Audit entries, oldest first; only those of `tenant_id` when given.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn audit_entries(&self, tenant_id: Option<&str>) -> Result<Vec<ChainedEntry>, StoreError> {
        let all: Vec<ChainedEntry> = scan(&self.inner.audit, b"", "audit entry")?;
        Ok(all
            .into_iter()
            .filter(|e| tenant_id.is_none() || e.entry.tenant_id.as_deref() == tenant_id)
            .collect())
    }

    /// Verifies the whole audit chain and its signed checkpoints now; returns the number of
    /// entries (see [`Store::verify_audit_log`]).
    ///
    /// # Errors
    /// [`StoreError::Chain`] naming the first bad entry, [`StoreError::Db`].
    pub fn verify_audit_chain(&self) -> Result<u64, StoreError> {
        self.verify_audit_log(crate::core::clock::now_ms())
    }

    #[cfg(test)]
    pub(crate) fn audit_tree(&self) -> &sled::Tree {
        &self.inner.audit
    }
}

#[cfg(test)]
mod tests {
    use crate::core::audit::AuditEntry;
    use crate::core::crypto::MasterKey;
    use crate::store::Store;

    #[test]
    fn audit_appends_the_entry_it_is_given_to_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::from_bytes([5; 32])).expect("store");
        store.audit(
            Some("tnt-1"),
            "usr-1",
            "label.requested",
            Some("job-1"),
            "ok",
            7,
        );
        store.audit(None, "coordinator", "audit.pruned", None, "ok entries=1", 8);
        let entries = store.audit_entries(None).expect("entries");
        let got: Vec<&AuditEntry> = entries.iter().map(|e| &e.entry).collect();
        assert_eq!(
            got,
            [
                &AuditEntry {
                    at_ms: 7,
                    tenant_id: Some("tnt-1".into()),
                    actor: "usr-1".into(),
                    action: "label.requested".into(),
                    object: Some("job-1".into()),
                    outcome: "ok".into(),
                },
                &AuditEntry {
                    at_ms: 8,
                    tenant_id: None,
                    actor: "coordinator".into(),
                    action: "audit.pruned".into(),
                    object: None,
                    outcome: "ok entries=1".into(),
                },
            ]
        );
        assert_eq!(store.verify_audit_chain().expect("chain"), 2);
    }
}
