//! The coordinator's state, embedded in sled.
//!
//! One sled database under `<data dir>/store`, one tree per kind of record; records are JSON
//! (see [`records`]). Every byte that can hold buyer PII (label bytes) is encrypted with
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

mod acceptance;
mod access;
mod alerts;
mod connections;
mod idempotency;
mod job_list;
mod notifications;
mod records;
mod retention;

use std::path::Path;
use std::sync::{Arc, Mutex};

use sealprint_protocol::{Heartbeat, PrinterStatus, PrinterVerdict};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use thiserror::Error;
use zeroize::Zeroizing;

pub use access::ApiKeyRecord;
pub use alerts::{AlertRecord, AlertRule, AlertState};
pub use connections::{FetchState, SpapiConnectionRecord, SpapiFetchRecord, SpapiRegion};
pub use idempotency::{Claim, StoredAnswer, IDEMPOTENCY_PENDING_MS, IDEMPOTENCY_TTL_MS};
pub use job_list::JobFilter;
pub use notifications::{
    Delivery, DeliveryState, NewNotification, NotificationKind, NotificationRecord, WebhookRecord,
};
pub use records::{
    AgentRecord, AuditEntry, EnrollmentTokenRecord, JobRecord, JobStatus, PrinterRecord,
    SessionRecord, SiteRecord, TenantRecord, TokenGrant, UserRecord,
};
pub use retention::{Purged, ShredReport};

use crate::core::accounts::Role;
use crate::core::audit::{self, ChainError, ChainedEntry};
use crate::core::compliance::{provisioning_gate, GateRefusal};
use crate::core::crypto::{random_id, CryptoError, DataKey, MasterKey};
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
const INITIALISED: &[u8] = b"initialised";
const SERIAL: &[u8] = b"serial";

fn scoped(tenant_id: &str, id: &str) -> Vec<u8> {
    format!("{tenant_id}/{id}").into_bytes()
}

fn prefix(tenant_id: &str) -> Vec<u8> {
    format!("{tenant_id}/").into_bytes()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialise")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(what))
}

fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(&v, what)).transpose()
}

fn scan<T: DeserializeOwned>(
    tree: &sled::Tree,
    prefix: &[u8],
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    tree.scan_prefix(prefix)
        .map(|kv| {
            let (_, v) = kv?;
            decode(&v, what)
        })
        .collect()
}

/// Changes the record at `key` with `f`, atomically (compare-and-swap, retried on races).
/// Returns the new record, or `None` when there is none.
fn update<T, F>(
    tree: &sled::Tree,
    key: &[u8],
    what: &'static str,
    mut f: F,
) -> Result<Option<T>, StoreError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(&mut T),
{
    loop {
        let Some(old) = tree.get(key)? else {
            return Ok(None);
        };
        let mut value: T = decode(&old, what)?;
        f(&mut value);
        let new = encode(&value);
        if tree.compare_and_swap(key, Some(old), Some(new))?.is_ok() {
            return Ok(Some(value));
        }
    }
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

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

    /// Whether `init` completed on this store.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn is_initialised(&self) -> Result<bool, StoreError> {
        Ok(self.inner.meta.contains_key(INITIALISED)?)
    }

    /// Records that `init` completed.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn mark_initialised(&self) -> Result<(), StoreError> {
        self.inner.meta.insert(INITIALISED, &b"1"[..])?;
        self.flush()
    }

    /// Stores a coordinator secret `name`, encrypted under the master key. Refuses to
    /// overwrite one.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::Db`].
    pub fn put_secret(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        let key = format!("secret/{name}");
        let sealed = self.inner.master.seal(key.as_bytes(), secret);
        self.inner
            .meta
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(sealed))?
            .map_err(|_| StoreError::Conflict)
    }

    /// A coordinator secret stored with [`Store::put_secret`], decrypted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Crypto`], [`StoreError::Db`].
    pub fn secret(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let key = format!("secret/{name}");
        let sealed = self
            .inner
            .meta
            .get(key.as_bytes())?
            .ok_or(StoreError::NotFound)?;
        Ok(self.inner.master.open(key.as_bytes(), &sealed)?)
    }

    /// The next certificate serial (from 1, never reused).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn next_serial(&self) -> Result<u64, StoreError> {
        let read = |v: Option<&[u8]>| -> u64 {
            v.and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        };
        let new = self
            .inner
            .meta
            .update_and_fetch(SERIAL, |old| Some((read(old) + 1).to_be_bytes().to_vec()))?;
        let n = read(new.as_deref());
        if n == 0 {
            return Err(StoreError::Corrupt("serial counter"));
        }
        Ok(n)
    }

    // ---- tenants and sites -------------------------------------------------------------

    /// Creates a tenant with a fresh data key (atomically with it).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn create_tenant(&self, name: &str, now_ms: u64) -> Result<TenantRecord, StoreError> {
        let rec = TenantRecord {
            id: random_id("tnt"),
            name: name.to_owned(),
            created_at_ms: now_ms,
            plan: Default::default(),
            terms: None,
            subscription: Default::default(),
            attestation: None,
            suspension: None,
            tier: Default::default(),
        };
        let wrapped = DataKey::generate().wrap(&self.inner.master, &rec.id);
        let value = encode(&rec);
        (&self.inner.tenants, &self.inner.tenant_keys)
            .transaction(|(tenants, keys)| {
                if tenants.get(rec.id.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                tenants.insert(rec.id.as_bytes(), value.clone())?;
                keys.insert(rec.id.as_bytes(), wrapped.clone())?;
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(rec)
    }

    /// A tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn tenant(&self, tenant_id: &str) -> Result<Option<TenantRecord>, StoreError> {
        get(&self.inner.tenants, tenant_id.as_bytes(), "tenant")
    }

    /// Every tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        scan(&self.inner.tenants, b"", "tenant")
    }

    /// Changes a tenant atomically with `f` (retried on races, so `f` may run more than
    /// once). Returns the new record, or `None` when there is no such tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn update_tenant<F>(
        &self,
        tenant_id: &str,
        f: F,
    ) -> Result<Option<TenantRecord>, StoreError>
    where
        F: FnMut(&mut TenantRecord),
    {
        update(&self.inner.tenants, tenant_id.as_bytes(), "tenant", f)
    }

    fn data_key(&self, tenant_id: &str) -> Result<DataKey, StoreError> {
        let wrapped = self
            .inner
            .tenant_keys
            .get(tenant_id.as_bytes())?
            .ok_or(StoreError::NotFound)?;
        Ok(DataKey::unwrap_from(
            &self.inner.master,
            tenant_id,
            &wrapped,
        )?)
    }

    /// Creates a site of `tenant_id`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the tenant does not exist, [`StoreError::Db`].
    pub fn create_site(
        &self,
        tenant_id: &str,
        name: &str,
        now_ms: u64,
    ) -> Result<SiteRecord, StoreError> {
        if self.tenant(tenant_id)?.is_none() {
            return Err(StoreError::NotFound);
        }
        let rec = SiteRecord {
            id: random_id("site"),
            tenant_id: tenant_id.to_owned(),
            name: name.to_owned(),
            created_at_ms: now_ms,
        };
        self.inner
            .sites
            .insert(scoped(tenant_id, &rec.id), encode(&rec))?;
        Ok(rec)
    }

    /// A site of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn site(&self, tenant_id: &str, site_id: &str) -> Result<Option<SiteRecord>, StoreError> {
        get(&self.inner.sites, &scoped(tenant_id, site_id), "site")
    }

    /// The sites of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn sites(&self, tenant_id: &str) -> Result<Vec<SiteRecord>, StoreError> {
        scan(&self.inner.sites, &prefix(tenant_id), "site")
    }

    // ---- users and sessions ------------------------------------------------------------

    /// Creates a user. The email is lowercased and must be unique.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the email is taken, [`StoreError::Db`].
    pub fn create_user(
        &self,
        email: &str,
        password_hash: String,
        platform_admin: bool,
        tenant_id: Option<String>,
        roles: Vec<Role>,
        now_ms: u64,
    ) -> Result<UserRecord, StoreError> {
        let rec = UserRecord {
            id: random_id("usr"),
            email: email.trim().to_lowercase(),
            password_hash,
            platform_admin,
            tenant_id,
            created_at_ms: now_ms,
            roles,
            password_changed_at_ms: Some(now_ms),
            failed_logins: Vec::new(),
            locked_until_ms: None,
            disabled: false,
            sessions_revoked_at_ms: None,
        };
        let value = encode(&rec);
        (&self.inner.users, &self.inner.user_emails)
            .transaction(|(users, emails)| {
                if emails.get(rec.email.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                emails.insert(rec.email.as_bytes(), rec.id.as_bytes())?;
                users.insert(rec.id.as_bytes(), value.clone())?;
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(rec)
    }

    /// A user by id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        get(&self.inner.users, user_id.as_bytes(), "user")
    }

    /// Changes a user atomically with `f` (retried on races, so `f` may run more than once).
    /// Returns the new record, or `None` when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn update_user<F>(&self, user_id: &str, f: F) -> Result<Option<UserRecord>, StoreError>
    where
        F: FnMut(&mut UserRecord),
    {
        update(&self.inner.users, user_id.as_bytes(), "user", f)
    }

    /// The users of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn users(&self, tenant_id: &str) -> Result<Vec<UserRecord>, StoreError> {
        let all: Vec<UserRecord> = scan(&self.inner.users, b"", "user")?;
        Ok(all
            .into_iter()
            .filter(|u| u.tenant_id.as_deref() == Some(tenant_id))
            .collect())
    }

    /// A user by email (case-insensitive).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let email = email.trim().to_lowercase();
        match self.inner.user_emails.get(email.as_bytes())? {
            Some(id) => {
                let id = std::str::from_utf8(&id).map_err(|_| StoreError::Corrupt("email"))?;
                self.user(id)
            }
            None => Ok(None),
        }
    }

    /// Stores a session under the sha256 of its token.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn create_session(
        &self,
        token_hash: &[u8; 32],
        rec: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.inner.sessions.insert(token_hash, encode(rec))?;
        Ok(())
    }

    /// The session of a token hash, if it exists and has not expired at `now_ms` (an expired
    /// one is removed).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn session(
        &self,
        token_hash: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(rec) = get::<SessionRecord>(&self.inner.sessions, token_hash, "session")? else {
            return Ok(None);
        };
        if now_ms >= rec.expires_at_ms {
            self.inner.sessions.remove(token_hash)?;
            return Ok(None);
        }
        Ok(Some(rec))
    }

    // ---- enrollment ----------------------------------------------------------------------

    /// Stores an enrollment token under its secret's hash.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the hash is taken, [`StoreError::Db`].
    pub fn put_enrollment_token(
        &self,
        secret_hash: &[u8; 32],
        rec: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError> {
        self.inner
            .tokens
            .compare_and_swap(secret_hash, None as Option<&[u8]>, Some(encode(rec)))?
            .map_err(|_| StoreError::Conflict)
    }

    /// Redeems a token once, atomically: of two concurrent redemptions exactly one succeeds.
    /// The token's tenant must be allowed to provision devices (active subscription, not
    /// suspended); a refused token stays unused.
    ///
    /// # Errors
    /// [`StoreError::TokenUnknown`], [`StoreError::TokenUsed`], [`StoreError::TokenExpired`],
    /// [`StoreError::ProvisioningRefused`], [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn redeem_enrollment_token(
        &self,
        secret_hash: &[u8; 32],
        now_s: u64,
    ) -> Result<TokenGrant, StoreError> {
        if let Some(rec) =
            get::<EnrollmentTokenRecord>(&self.inner.tokens, secret_hash, "enrollment token")?
        {
            let tenant = self
                .tenant(&rec.tenant_id)?
                .ok_or(StoreError::TokenUnknown)?;
            match provisioning_gate(tenant.suspension.as_ref(), tenant.subscription.state) {
                Ok(()) => {}
                Err(GateRefusal::Suspended(_)) => {
                    return Err(StoreError::ProvisioningRefused("the tenant is suspended"))
                }
                Err(GateRefusal::SubscriptionInactive(_)) => {
                    return Err(StoreError::ProvisioningRefused(
                        "the tenant's subscription is not active",
                    ))
                }
                Err(GateRefusal::Restricted(_)) => {
                    return Err(StoreError::ProvisioningRefused("the tenant is restricted"))
                }
            }
        }
        self.inner
            .tokens
            .transaction(|t| {
                let abort = |e| Err(ConflictableTransactionError::Abort(e));
                let Some(raw) = t.get(secret_hash)? else {
                    return abort(StoreError::TokenUnknown);
                };
                let mut rec: EnrollmentTokenRecord = match decode(&raw, "enrollment token") {
                    Ok(r) => r,
                    Err(e) => return abort(e),
                };
                if rec.used {
                    return abort(StoreError::TokenUsed);
                }
                if now_s > rec.expires_at_s {
                    return abort(StoreError::TokenExpired);
                }
                rec.used = true;
                t.insert(&secret_hash[..], encode(&rec))?;
                Ok(TokenGrant {
                    tenant_id: rec.tenant_id,
                    site_id: rec.site_id,
                })
            })
            .map_err(tx_err)
    }

    // ---- agents and printers ---------------------------------------------------------------

    /// Stores (creates or replaces) an agent.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn put_agent(&self, rec: &AgentRecord) -> Result<(), StoreError> {
        self.inner
            .agents
            .insert(rec.device_id.as_bytes(), encode(rec))?;
        Ok(())
    }

    /// An agent by device id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn agent(&self, device_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        get(&self.inner.agents, device_id.as_bytes(), "agent")
    }

    /// The agents of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn agents(&self, tenant_id: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let all: Vec<AgentRecord> = scan(&self.inner.agents, b"", "agent")?;
        Ok(all
            .into_iter()
            .filter(|a| a.tenant_id == tenant_id)
            .collect())
    }

    /// Marks an agent of `tenant_id` revoked (atomically). Returns the record, or `None` when
    /// the tenant has no such agent.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn revoke_agent(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        match self.agent(device_id)? {
            Some(a) if a.tenant_id == tenant_id => {}
            _ => return Ok(None),
        }
        update(
            &self.inner.agents,
            device_id.as_bytes(),
            "agent",
            |a: &mut AgentRecord| a.revoked = true,
        )
    }

    /// The revoked devices of a tenant, sorted: every certificate of each is refused.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn revoked_devices(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        let mut devices: Vec<String> = self
            .agents(tenant_id)?
            .into_iter()
            .filter(|a| a.revoked)
            .map(|a| a.device_id)
            .collect();
        devices.sort();
        Ok(devices)
    }

    /// Records a heartbeat of `device_id` that arrived at `now_ms` (directly, or relayed by
    /// `via`): updates the agent's version, last heartbeat, clock offset and relay
    /// (atomically, so a concurrent revocation is never undone), upserts its printers and
    /// marks the printers it no longer reports offline and unreachable.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown device, [`StoreError::Db`],
    /// [`StoreError::Corrupt`].
    pub fn record_heartbeat(
        &self,
        device_id: &str,
        hb: &Heartbeat,
        via: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let offset = i64::try_from(hb.clock_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(now_ms).unwrap_or(i64::MAX));
        let agent = update(
            &self.inner.agents,
            device_id.as_bytes(),
            "agent",
            |a: &mut AgentRecord| {
                a.version = Some(hb.version.chars().take(32).collect());
                a.last_heartbeat_at_ms = Some(now_ms);
                a.clock_offset_ms = Some(offset);
                a.relay = via.map(str::to_owned);
                a.heartbeat_seq = a.heartbeat_seq.max(hb.seq);
                a.findings = hb
                    .findings
                    .iter()
                    .take(64)
                    .map(|f| f.chars().take(256).collect())
                    .collect();
            },
        )?
        .ok_or(StoreError::NotFound)?;

        let mut batch = sled::Batch::default();
        let mut reported = Vec::with_capacity(hb.printers.len());
        for p in &hb.printers {
            let id = format!("{device_id}.{}", p.name);
            let rec = PrinterRecord {
                id: id.clone(),
                tenant_id: agent.tenant_id.clone(),
                site_id: agent.site_id.clone(),
                agent: device_id.to_owned(),
                name: p.name.clone(),
                pool: p.pool.clone(),
                uri: p.uri.clone(),
                verdict: p.verdict,
                reason: p.reason.clone(),
                identity: p.identity.clone(),
                status: p.status,
                updated_at_ms: now_ms,
            };
            batch.insert(scoped(&agent.tenant_id, &id), encode(&rec));
            reported.push(id);
        }
        let own = format!("{}/{device_id}.", agent.tenant_id);
        for kv in self.inner.printers.scan_prefix(own.as_bytes()) {
            let (k, v) = kv?;
            let mut rec: PrinterRecord = decode(&v, "printer")?;
            if rec.agent != device_id
                || reported.contains(&rec.id)
                || (rec.status == PrinterStatus::Offline
                    && rec.verdict == PrinterVerdict::Unreachable)
            {
                continue;
            }
            rec.status = PrinterStatus::Offline;
            rec.verdict = PrinterVerdict::Unreachable;
            rec.reason = "no longer reported by its agent".into();
            rec.updated_at_ms = now_ms;
            batch.insert(k, encode(&rec));
        }
        self.inner.printers.apply_batch(batch)?;
        Ok(())
    }

    /// The printers of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn printers(&self, tenant_id: &str) -> Result<Vec<PrinterRecord>, StoreError> {
        scan(&self.inner.printers, &prefix(tenant_id), "printer")
    }

    /// A printer of a tenant by id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn printer(
        &self,
        tenant_id: &str,
        printer_id: &str,
    ) -> Result<Option<PrinterRecord>, StoreError> {
        get(
            &self.inner.printers,
            &scoped(tenant_id, printer_id),
            "printer",
        )
    }

    // ---- jobs and labels -----------------------------------------------------------------

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
        self.inner
            .jobs
            .insert(scoped(&job.tenant_id, &job.id), encode(job))?;
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

    // ---- audit -------------------------------------------------------------------------------

    /// Appends an entry to the hash-chained audit log. The entry must hold no PII.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`] when the last entry is unreadable.
    pub fn append_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        // A poisoned lock only means another append panicked; the chain itself is in sled.
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
mod tests;
