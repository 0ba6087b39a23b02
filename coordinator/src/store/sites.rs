//! Sites of a tenant, under `"<tenant>/<site id>"`.

use super::{get, prefix, put, scan, scoped, Store, StoreError};
use crate::core::crypto::random_id;
use serde::{Deserialize, Serialize};

/// A site (warehouse) of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// `site-…`.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
}

impl Store {
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
        put(&self.inner.sites, &scoped(tenant_id, &rec.id), &rec)?;
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
}
