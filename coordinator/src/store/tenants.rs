//! Tenants and their data keys: a tenant is created atomically with a fresh data key, kept
//! wrapped by the master key, that seals the tenant's label bytes.

use serde::{Deserialize, Serialize};

use crate::core::compliance::requirements::TierRecord;
use crate::core::compliance::{Attestation, Plan, Subscription, Suspension, TermsAcceptance};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{encode, get, scan, tx_err, update, Store, StoreError};
use crate::core::crypto::{random_id, DataKey};

/// A tenant (a seller account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// `tnt-…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Plan (fields below default when absent, so older records still read).
    #[serde(default)]
    pub plan: Plan,
    /// Terms of service acceptance.
    #[serde(default)]
    pub terms: Option<TermsAcceptance>,
    /// Subscription.
    #[serde(default)]
    pub subscription: Subscription,
    /// Security attestation.
    #[serde(default)]
    pub attestation: Option<Attestation>,
    /// Incident suspension, when suspended.
    #[serde(default)]
    pub suspension: Option<Suspension>,
    /// The tier of record and the deadlines its upgrades opened (set by the monitor).
    #[serde(default)]
    pub tier: TierRecord,
}

impl Store {
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

    pub(super) fn data_key(&self, tenant_id: &str) -> Result<DataKey, StoreError> {
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
}
