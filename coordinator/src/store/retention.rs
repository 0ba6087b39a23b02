//! Retention and deletion in the store: purging PII past its retention, crypto-shredding a
//! tenant, and the audit log's signed checkpoints and pruning.
//!
//! - [`Store::purge_pii`] deletes label ciphertexts of jobs created at or before a cutoff
//!   (and orphaned ones), and clears the shipment and tracking ids of label fetches created
//!   by then. Job records stay: they hold ids, states and hashes only.
//! - [`Store::shred_tenant`] first destroys the tenant's wrapped data key (so every
//!   ciphertext of the tenant, including copies left in backups or in sled's log, no longer
//!   opens), then deletes every record of the tenant in every tree except the audit log.
//! - [`Store::checkpoint_audit`], [`Store::prune_audit`] and [`Store::verify_audit_log`]:
//!   see [`crate::core::audit`] for what checkpoints prove.
//!
//! What it does not do: decide the retention periods or audit (see `services::retention` and
//! the API), or guarantee that sled has physically overwritten deleted values (hence the
//! shredding of the key).

use std::collections::HashSet;

use ed25519_dalek::SigningKey;
use serde::Deserialize;

use super::{decode, encode, update, JobRecord, SpapiFetchRecord, Store, StoreError};
use crate::core::audit::{self, ChainError, ChainedEntry, Checkpoint};

const FETCHES: &str = "spapi_fetches";
const CHECKPOINTS: &str = "audit_checkpoints";
/// Meta key: the sequence number of the checkpointed entry the pruned chain starts at.
const AUDIT_BASE: &[u8] = b"audit_base";

/// What [`Store::purge_pii`] removed, per job: `(tenant, job id, what)`, `what` being
/// `label` or `shipment_ids`.
pub type Purged = Vec<(String, String, &'static str)>;

/// What [`Store::shred_tenant`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShredReport {
    /// Records deleted (audit entries excluded).
    pub records: u64,
    /// The tenant's devices, whose connections should be dropped.
    pub devices: Vec<String>,
}

#[derive(Deserialize)]
struct TenantOf {
    tenant_id: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn split_key(k: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(k).ok()?;
    let (t, id) = s.split_once('/')?;
    Some((t.to_owned(), id.to_owned()))
}

impl Store {
    /// Deletes the PII of labels created at or before `cutoff_ms`: label ciphertexts (also
    /// those whose job record is gone) and the shipment and tracking ids of label fetches.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn purge_pii(&self, cutoff_ms: u64) -> Result<Purged, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.labels.iter() {
            let (k, _) = kv?;
            let job: Option<JobRecord> = match self.inner.jobs.get(&k)? {
                Some(v) => Some(decode(&v, "job")?),
                None => None,
            };
            if job.is_none_or(|j| j.created_at_ms <= cutoff_ms) {
                self.inner.labels.remove(&k)?;
                if let Some((t, id)) = split_key(&k) {
                    out.push((t, id, "label"));
                }
            }
        }
        let fetches = self.inner.db.open_tree(FETCHES)?;
        for kv in fetches.iter() {
            let (k, v) = kv?;
            let rec: SpapiFetchRecord = decode(&v, "spapi fetch")?;
            let has_ids = rec.shipment_id.is_some() || rec.tracking_id.is_some();
            if rec.created_at_ms <= cutoff_ms && has_ids {
                update(&fetches, &k, "spapi fetch", |r: &mut SpapiFetchRecord| {
                    r.shipment_id = None;
                    r.tracking_id = None;
                })?;
                out.push((rec.tenant_id, rec.job_id, "shipment_ids"));
            }
        }
        self.flush()?;
        Ok(out)
    }

    /// Crypto-shreds a tenant: destroys its data key (flushed to disk first), then deletes
    /// every record of the tenant except audit entries. Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn shred_tenant(&self, tenant_id: &str) -> Result<ShredReport, StoreError> {
        let mut report = ShredReport::default();
        // The key first: from here on nothing of the tenant decrypts, whatever else remains.
        if self
            .inner
            .tenant_keys
            .remove(tenant_id.as_bytes())?
            .is_some()
        {
            report.records += 1;
        }
        self.flush()?;

        let scoped_prefix = super::prefix(tenant_id);
        let mut users = HashSet::new();
        for name in self.inner.db.tree_names() {
            if name == b"audit" || name == CHECKPOINTS.as_bytes() {
                continue;
            }
            let tree = self.inner.db.open_tree(&name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                let by_key = k.as_ref() == tenant_id.as_bytes() || k.starts_with(&scoped_prefix);
                // Records keyed otherwise (users, agents, enrollment tokens, API keys) name
                // their tenant.
                let by_value = !by_key
                    && serde_json::from_slice::<TenantOf>(&v)
                        .is_ok_and(|r| r.tenant_id.as_deref() == Some(tenant_id));
                if !(by_key || by_value) {
                    continue;
                }
                if by_value && name == b"users" {
                    users.insert(String::from_utf8_lossy(&k).into_owned());
                }
                if by_value && name == b"agents" {
                    if let Ok(r) = serde_json::from_slice::<TenantOf>(&v) {
                        report.devices.extend(r.device_id.or(r.id));
                    }
                }
                tree.remove(&k)?;
                report.records += 1;
            }
        }
        // What points at the deleted users: sessions and the email index.
        for (tree, field_is_user) in [
            (&self.inner.sessions, true),
            (&self.inner.user_emails, false),
        ] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                let user = if field_is_user {
                    serde_json::from_slice::<super::SessionRecord>(&v)
                        .map(|s| s.user_id)
                        .unwrap_or_default()
                } else {
                    String::from_utf8_lossy(&v).into_owned()
                };
                if users.contains(&user) {
                    tree.remove(&k)?;
                    report.records += 1;
                }
            }
        }
        self.flush()?;
        Ok(report)
    }

    fn checkpoint_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(CHECKPOINTS)?)
    }

    /// Signs the audit chain's head with `key` and stores the checkpoint; `None` when the
    /// log is empty or its head is already checkpointed.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn checkpoint_audit(
        &self,
        key: &SigningKey,
        now_ms: u64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let _guard = self
            .inner
            .audit_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some((_, v)) = self.inner.audit.last()? else {
            return Ok(None);
        };
        let head: ChainedEntry = decode(&v, "audit entry")?;
        let tree = self.checkpoint_tree()?;
        if tree.contains_key(head.seq.to_be_bytes())? {
            return Ok(None);
        }
        let cp = Checkpoint::sign(key, &head, now_ms);
        tree.insert(cp.seq.to_be_bytes(), encode(&cp))?;
        self.flush()?;
        Ok(Some(cp))
    }

    /// The audit checkpoints, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        super::scan(&self.checkpoint_tree()?, b"", "audit checkpoint")
    }

    /// The sequence number the (pruned) audit chain starts at, if it was pruned.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn audit_base(&self) -> Result<Option<u64>, StoreError> {
        self.inner
            .meta
            .get(AUDIT_BASE)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("audit base"))
            })
            .transpose()
    }

    /// Deletes the audit entries older than `cutoff_ms`, up to the newest checkpoint whose
    /// entry is older than that (that entry is kept and becomes the chain's start). Returns
    /// how many entries were deleted.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn prune_audit(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let _guard = self
            .inner
            .audit_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(base) = self
            .audit_checkpoints()?
            .into_iter()
            .filter(|c| c.head_at_ms < cutoff_ms)
            .map(|c| c.seq)
            .max()
        else {
            return Ok(0);
        };
        let mut n = 0;
        for kv in self.inner.audit.range(..base.to_be_bytes()) {
            let (k, _) = kv?;
            self.inner.audit.remove(k)?;
            n += 1;
        }
        let cps = self.checkpoint_tree()?;
        for kv in cps.range(..base.to_be_bytes()) {
            let (k, _) = kv?;
            cps.remove(k)?;
        }
        self.inner.meta.insert(AUDIT_BASE, &base.to_be_bytes())?;
        self.flush()?;
        Ok(n)
    }

    /// Verifies the audit log at `now_ms`: the hash chain from its start, every checkpoint's
    /// signature under the CA key stored in this data directory, and that no checkpointed
    /// entry is missing or changed. Returns the number of entries.
    ///
    /// # Errors
    /// [`StoreError::Chain`] naming the first bad entry, [`StoreError::Db`].
    pub fn verify_audit_log(&self, now_ms: u64) -> Result<u64, StoreError> {
        let ca = match self.secret(crate::core::paths::CA_SECRET) {
            Ok(raw) => <[u8; 32]>::try_from(raw.as_slice())
                .ok()
                .map(|k| SigningKey::from_bytes(&k).verifying_key()),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let mut items = Vec::new();
        let base = self.audit_base()?;
        for (i, kv) in self.inner.audit.iter().enumerate() {
            let (_, v) = kv?;
            let at = base.unwrap_or(0) + i as u64;
            items.push(serde_json::from_slice::<ChainedEntry>(&v).map_err(|_| at));
        }
        let checkpoints: Vec<Checkpoint> = match self.audit_checkpoints() {
            Ok(c) => c,
            Err(StoreError::Corrupt(_)) => {
                return Err(StoreError::Chain(ChainError::BadCheckpoint(
                    base.unwrap_or(0),
                )))
            }
            Err(e) => return Err(e),
        };
        Ok(audit::verify_log(
            items,
            base,
            &checkpoints,
            ca.as_ref(),
            now_ms,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use sealprint_protocol::LabelFormat;

    use crate::core::crypto::MasterKey;
    use crate::store::{
        AuditEntry, FetchState, JobRecord, JobStatus, SpapiFetchRecord, Store, StoreError,
    };

    const DAY: u64 = 24 * 3600 * 1000;

    fn job(tenant: &str, id: &str, at: u64) -> JobRecord {
        JobRecord {
            id: id.into(),
            tenant_id: tenant.into(),
            pool: Some("default".into()),
            requested_printer: None,
            printer: None,
            agent: None,
            status: JobStatus::Printed,
            format: LabelFormat::Zpl,
            label_len: 3,
            label_sha256: "00".into(),
            attempts: 1,
            excluded_printers: vec![],
            attempt_deadline_ms: None,
            expires_at_ms: at + 1,
            created_at_ms: at,
            updated_at_ms: at,
            error: None,
            redacted: false,
            client_reference: None,
            reprint: false,
        }
    }

    fn fetch(tenant: &str, id: &str, at: u64) -> SpapiFetchRecord {
        SpapiFetchRecord {
            job_id: id.into(),
            tenant_id: tenant.into(),
            connection_id: "spc-1".into(),
            source: "mfn".into(),
            state: FetchState::Fetched,
            pool: None,
            printer: None,
            job_ttl_ms: 1,
            shipment_id: Some("shp-1".into()),
            tracking_id: Some("1Z999".into()),
            idempotency_key: None,
            failed_call: None,
            error_code: None,
            request_id: None,
            error: None,
            checksum: None,
            redacted: false,
            label_format_fallback: false,
            created_at_ms: at,
            updated_at_ms: at,
        }
    }

    #[test]
    fn purge_removes_labels_and_shipment_ids_past_the_cutoff_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 0).expect("tenant").id;
        store
            .create_job(&job(&t, "job-old", DAY), b"^XAold")
            .expect("old");
        store
            .create_job(&job(&t, "job-new", 20 * DAY), b"^XAnew")
            .expect("new");
        store
            .create_spapi_fetch(&fetch(&t, "job-old", DAY))
            .expect("f");
        store
            .create_spapi_fetch(&fetch(&t, "job-new", 20 * DAY))
            .expect("f");
        let purged = store.purge_pii(10 * DAY).expect("purge");
        assert_eq!(purged.len(), 2, "{purged:?}");
        assert!(matches!(
            store.label(&t, "job-old"),
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store.label(&t, "job-new").expect("kept").as_slice(),
            b"^XAnew"
        );
        let old = store
            .spapi_fetch(&t, "job-old")
            .expect("read")
            .expect("kept");
        assert_eq!((old.shipment_id, old.tracking_id), (None, None));
        let new = store
            .spapi_fetch(&t, "job-new")
            .expect("read")
            .expect("kept");
        assert!(new.tracking_id.is_some());
        assert!(
            store.job(&t, "job-old").expect("read").is_some(),
            "ids stay"
        );
        assert!(store.purge_pii(10 * DAY).expect("again").is_empty());
    }

    #[test]
    fn shredded_tenant_data_no_longer_decrypts_and_records_are_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 0).expect("tenant").id;
        let other = store.create_tenant("o", 0).expect("tenant").id;
        store
            .create_job(&job(&t, "job-1", 1), b"^XAsecret")
            .expect("job");
        store
            .create_job(&job(&other, "job-2", 1), b"^XAkeep")
            .expect("job");
        store.create_site(&t, "DC1", 1).expect("site");
        let u = store
            .create_user("a@t.example", "h".into(), false, Some(t.clone()), vec![], 1)
            .expect("user");
        store
            .create_session(
                &[7; 32],
                &crate::store::SessionRecord {
                    user_id: u.id.clone(),
                    expires_at_ms: u64::MAX,
                    created_at_ms: 1,
                },
            )
            .expect("session");
        store
            .append_audit(AuditEntry {
                at_ms: 1,
                tenant_id: Some(t.clone()),
                actor: u.id.clone(),
                action: "label.requested".into(),
                object: Some("job-1".into()),
                outcome: "ok".into(),
            })
            .expect("audit");
        let sealed = store
            .inner
            .labels
            .get(format!("{t}/job-1"))
            .expect("get")
            .expect("ciphertext");

        let report = store.shred_tenant(&t).expect("shred");
        assert!(report.records >= 6, "{report:?}");
        // A ciphertext that survived somewhere (a backup) no longer opens.
        store
            .inner
            .labels
            .insert(format!("{t}/job-1"), sealed)
            .expect("restore");
        assert!(store.label(&t, "job-1").is_err());
        assert!(store.tenant(&t).expect("read").is_none());
        assert!(store.job(&t, "job-1").expect("read").is_none());
        assert!(store.sites(&t).expect("read").is_empty());
        assert!(store.user(&u.id).expect("read").is_none());
        assert!(store.user_by_email("a@t.example").expect("read").is_none());
        assert!(store.session(&[7; 32], 0).expect("read").is_none());
        // Audit entries (ids only) stay, and the other tenant is untouched.
        assert_eq!(store.audit_entries(Some(&t)).expect("audit").len(), 1);
        assert_eq!(
            store.label(&other, "job-2").expect("kept").as_slice(),
            b"^XAkeep"
        );
        assert!(store.tenant(&other).expect("read").is_some());
    }

    #[test]
    fn audit_is_pruned_only_behind_an_old_checkpoint_and_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let identity = crate::services::ca::Identity::create(&store).expect("identity");
        let key = identity.ca_signing_key();
        let entry = |at| AuditEntry {
            at_ms: at,
            tenant_id: None,
            actor: "coordinator".into(),
            action: "x".into(),
            object: None,
            outcome: "ok".into(),
        };
        for d in 0..5 {
            store.append_audit(entry(d * DAY)).expect("append");
        }
        let now = 200 * DAY;
        assert_eq!(
            store.prune_audit(now - 90 * DAY).expect("prune"),
            0,
            "no checkpoint"
        );
        let cp = store
            .checkpoint_audit(key, 5 * DAY)
            .expect("cp")
            .expect("some");
        assert_eq!(cp.seq, 4);
        assert!(store.checkpoint_audit(key, 5 * DAY).expect("cp").is_none());
        store.append_audit(entry(150 * DAY)).expect("append");
        assert_eq!(store.verify_audit_log(now).expect("intact"), 6);

        // Truncating after the checkpoint is detected.
        let saved: Vec<_> = store
            .inner
            .audit
            .range(4u64.to_be_bytes()..)
            .map(|kv| kv.expect("kv"))
            .collect();
        for (k, _) in &saved {
            store.inner.audit.remove(k).expect("rm");
        }
        assert!(matches!(
            store.verify_audit_log(now),
            Err(StoreError::Chain(
                crate::core::audit::ChainError::Truncated {
                    last: 3,
                    checkpoint: 4
                }
            ))
        ));
        for (k, v) in saved {
            store.inner.audit.insert(k, v).expect("restore");
        }
        assert_eq!(store.verify_audit_log(now).expect("intact again"), 6);

        // Retention prunes up to the checkpoint, and the chain verifies from there.
        assert_eq!(store.prune_audit(now - 90 * DAY).expect("prune"), 4);
        assert_eq!(store.audit_base().expect("base"), Some(4));
        assert_eq!(store.verify_audit_log(now).expect("intact"), 2);
        // Deleting the kept start is caught.
        store.inner.audit.remove(4u64.to_be_bytes()).expect("rm");
        assert!(store.verify_audit_log(now).is_err());
    }
}
