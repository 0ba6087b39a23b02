//! The coordinator's state, embedded in sled.
//!
//! One sled database under `<data dir>/store`, one tree per kind of record; records are JSON,
//! and none holds label bytes or other buyer PII (labels are stored apart, encrypted). Every byte that can hold buyer PII (label bytes) is encrypted with
//! AES-256-GCM under the tenant's data key, which is stored wrapped by the master key; the
//! coordinator's identity secrets are encrypted under the master key. Records that several
//! tasks change (agents, jobs, tokens) are updated with compare-and-swap or sled
//! transactions, never with a blind read-modify-write.
//!
//! Keys: tenant-scoped records live under `"<tenant_id>/<id>"` (ids never hold `/`), so a
//! tenant's records are one prefix scan. Agents are keyed by device id alone (the mesh knows
//! only that), enrollment tokens and sessions by the sha256 of their secret.
//!
//! What it does not do: authorisation (the API does), and it is not yet behind a storage
//! trait (the PostgreSQL backend of the architecture is future work).
//!
//! # Layout
//! This file holds the [`Store`] handle, its trees and [`Store::open`]; `table` is the typed
//! get/put/scan/update helper the record families are written over, and each family has a
//! file of its own: `meta` (init flag, secrets, serials), `tenants`, `sites`, `users`,
//! `sessions`, `enrollment`, `agents` (and their printers), `jobs` (and their labels),
//! `audit`, `access` (API keys, allowlists), `acceptance`, `alerts`, `connections` (SP-API),
//! `notifications`, `retention`, `agent_policy` (a tenant's minimum agent version), `releases` (release manifests and
//! desired versions). Each family's file holds its record types too.

mod acceptance;
mod access;
mod agent_policy;
mod agents;
mod alerts;
mod audit;
mod connections;
mod enrollment;
mod idempotency;
mod job_list;
mod jobs;
mod meta;
mod notifications;
mod releases;
mod retention;
mod sessions;
mod sites;
mod table;
mod tenants;
mod users;

use std::path::Path;
use std::sync::{Arc, Mutex};

use thiserror::Error;

pub use access::ApiKeyRecord;
pub use agents::{AgentRecord, PrinterRecord};
pub use alerts::{AlertRecord, AlertRule, AlertState};
pub use connections::{FetchState, SpapiConnectionRecord, SpapiFetchRecord, SpapiRegion};
pub use enrollment::{EnrollmentTokenRecord, TokenGrant};
pub use idempotency::{Claim, StoredAnswer, IDEMPOTENCY_PENDING_MS, IDEMPOTENCY_TTL_MS};
pub use job_list::JobFilter;
pub use jobs::{JobRecord, JobStatus};
pub use notifications::{
    Delivery, DeliveryState, EventData, NewNotification, NotificationKind, NotificationRecord,
    WebhookRecord,
};
pub use releases::DesiredRecord;
pub use retention::{Purged, ShredReport};
pub use sessions::SessionRecord;
pub use sites::SiteRecord;
pub use tenants::TenantRecord;
pub use users::UserRecord;

use table::{decode, encode, get, prefix, put, scan, scoped, tx_err, update};

pub use crate::core::audit::AuditEntry;
use crate::core::audit::ChainError;
use crate::core::crypto::{CryptoError, MasterKey};
use crate::core::paths::db_path;

/// Why a store operation failed. Messages never hold PII.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("storage failure: {0}")]
    Db(#[from] sled::Error),
    /// A stored record could not be decoded.
    #[error("stored record is unreadable ({0})")]
    Corrupt(&'static str),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The master key is not the one this store was created with.
    #[error("the master key does not match this data directory")]
    WrongMasterKey,
    /// The record does not exist (or, for a label, was deleted).
    #[error("not found")]
    NotFound,
    /// The record already exists (id or email taken, identity already created).
    #[error("already exists")]
    Conflict,
    /// No enrollment token has this secret.
    #[error("enrollment token unknown")]
    TokenUnknown,
    /// The enrollment token was already redeemed.
    #[error("enrollment token already used")]
    TokenUsed,
    /// The enrollment token has expired.
    #[error("enrollment token expired")]
    TokenExpired,
    /// The audit chain does not verify.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The tenant may not provision devices now (subscription not active, or suspended).
    #[error("provisioning refused: {0}")]
    ProvisioningRefused(&'static str),
}

/// A handle to the store. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

struct Inner {
    db: sled::Db,
    master: MasterKey,
    meta: sled::Tree,
    tenants: sled::Tree,
    tenant_keys: sled::Tree,
    sites: sled::Tree,
    users: sled::Tree,
    user_emails: sled::Tree,
    sessions: sled::Tree,
    tokens: sled::Tree,
    agents: sled::Tree,
    printers: sled::Tree,
    jobs: sled::Tree,
    labels: sled::Tree,
    audit: sled::Tree,
    /// Appends to the audit chain are serialised: each needs the previous entry's hash.
    audit_lock: Mutex<()>,
}

const KEY_CHECK: &[u8] = b"key_check";
const KEY_CHECK_AAD: &[u8] = b"sealprint/key-check/v1";

impl Store {
    /// Opens (creating if needed) the store of `data_dir`, and checks that `master_key` is
    /// the key it was created with.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::WrongMasterKey`].
    pub fn open(data_dir: &Path, master_key: MasterKey) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(db_path(data_dir)).open()?;
        let tree = |name: &str| db.open_tree(name);
        let inner = Inner {
            meta: tree("meta")?,
            tenants: tree("tenants")?,
            tenant_keys: tree("tenant_keys")?,
            sites: tree("sites")?,
            users: tree("users")?,
            user_emails: tree("user_emails")?,
            sessions: tree("sessions")?,
            tokens: tree("enrollment_tokens")?,
            agents: tree("agents")?,
            printers: tree("printers")?,
            jobs: tree("jobs")?,
            labels: tree("labels")?,
            audit: tree("audit")?,
            audit_lock: Mutex::new(()),
            master: master_key,
            db,
        };
        match inner.meta.get(KEY_CHECK)? {
            Some(check) => {
                inner
                    .master
                    .open(KEY_CHECK_AAD, &check)
                    .map_err(|_| StoreError::WrongMasterKey)?;
            }
            None => {
                let check = inner.master.seal(KEY_CHECK_AAD, b"sealprint");
                inner.meta.insert(KEY_CHECK, check)?;
            }
        }
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// Writes everything to disk.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// [`Store::open`] for a test that dropped its own handle of `data_dir` just before. sled
    /// lets go of its file lock when its background flusher drops the database, a moment
    /// after the last handle: a reopen at once can find the lock still held (seen in a CI
    /// run), so that one error is retried (30 s at most). Another process's lock is released
    /// when the process ends, so the coordinator itself never needs this.
    #[cfg(test)]
    pub(crate) fn reopen(data_dir: &Path, master_key: &MasterKey) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Store::open(data_dir, master_key.clone()) {
                Err(StoreError::Db(sled::Error::Io(e)))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests;
