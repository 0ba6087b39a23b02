//! Access records of integrations: API keys and the per-tenant IP allowlist.
//!
//! - An [`ApiKeyRecord`] is stored under the sha256 of its secret in `api_keys` (the secret
//!   itself is never stored), with an index `"<tenant>/<key id>"` → hash in `api_key_ids` for
//!   listing and revocation.
//! - A tenant's allowlist is one JSON list of CIDR strings in `ip_allowlists`, keyed by the
//!   tenant id (already validated by the API).

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{decode, encode, get, prefix, scoped, tx_err, Store, StoreError};
use crate::core::accounts::Role;

const KEYS: &str = "api_keys";
const KEY_IDS: &str = "api_key_ids";
const ALLOWLISTS: &str = "ip_allowlists";

/// An API key of a tenant's integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name given by its creator (for people).
    pub name: String,
    /// Roles it acts with.
    pub roles: Vec<Role>,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Who created it (user id).
    pub created_by: String,
    /// When it stops working, unix ms (`None`: when revoked).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// When it was last used, unix ms (to the minute; see [`Store::touch_api_key`]).
    #[serde(default)]
    pub last_used_at_ms: Option<u64>,
}

impl Store {
    fn access_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Stores a new API key under its secret's hash.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the hash or id exists, [`StoreError::Db`].
    pub fn create_api_key(&self, hash: &[u8; 32], rec: &ApiKeyRecord) -> Result<(), StoreError> {
        let (keys, ids) = (self.access_tree(KEYS)?, self.access_tree(KEY_IDS)?);
        let index = scoped(&rec.tenant_id, &rec.id);
        let value = encode(rec);
        (&keys, &ids)
            .transaction(|(k, i)| {
                if k.get(hash)?.is_some() || i.get(&index)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                k.insert(&hash[..], value.clone())?;
                i.insert(index.as_slice(), &hash[..])?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// The API key of a secret's hash.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        get(&self.access_tree(KEYS)?, hash, "api key")
    }

    /// Records that the key of `hash` was used at `now_ms` (a revoked key stays revoked).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn touch_api_key(&self, hash: &[u8; 32], now_ms: u64) -> Result<(), StoreError> {
        super::update(
            &self.access_tree(KEYS)?,
            hash,
            "api key",
            |k: &mut ApiKeyRecord| {
                k.last_used_at_ms = Some(k.last_used_at_ms.unwrap_or(0).max(now_ms));
            },
        )?;
        Ok(())
    }

    /// The API keys of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let keys = self.access_tree(KEYS)?;
        let mut out = Vec::new();
        for kv in self.access_tree(KEY_IDS)?.scan_prefix(prefix(tenant_id)) {
            let (_, hash) = kv?;
            if let Some(v) = keys.get(hash)? {
                out.push(decode::<ApiKeyRecord>(&v, "api key")?);
            }
        }
        out.sort_by_key(|k| k.created_at_ms);
        Ok(out)
    }

    /// Deletes (revokes) an API key of a tenant; returns it, or `None` when there is none.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn revoke_api_key(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let (keys, ids) = (self.access_tree(KEYS)?, self.access_tree(KEY_IDS)?);
        let index = scoped(tenant_id, id);
        let out = (&keys, &ids)
            .transaction(|(k, i)| {
                let Some(hash) = i.remove(index.as_slice())? else {
                    return Ok(None);
                };
                Ok(k.remove(hash)?)
            })
            .map_err(tx_err)?;
        self.flush()?;
        out.map(|v| decode(&v, "api key")).transpose()
    }

    /// Replaces a tenant's IP allowlist (CIDR strings, already validated; empty allows all).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn set_ip_allowlist(&self, tenant_id: &str, cidrs: &[String]) -> Result<(), StoreError> {
        let tree = self.access_tree(ALLOWLISTS)?;
        if cidrs.is_empty() {
            tree.remove(tenant_id.as_bytes())?;
        } else {
            tree.insert(tenant_id.as_bytes(), encode(&cidrs))?;
        }
        Ok(())
    }

    /// A tenant's IP allowlist (empty: every address is allowed).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn ip_allowlist(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(get(
            &self.access_tree(ALLOWLISTS)?,
            tenant_id.as_bytes(),
            "ip allowlist",
        )?
        .unwrap_or_default())
    }
}
