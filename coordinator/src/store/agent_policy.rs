//! A tenant's agent policy: its own minimum agent version, which raises (never lowers) the
//! coordinator's global one. One entry per tenant in `agent_policies`, keyed by tenant id (so
//! a tenant's deletion removes it); the value is the version's text.

use sealprint_protocol::Version;

use super::{Store, StoreError};

const TREE: &str = "agent_policies";

impl Store {
    /// Sets (`Some`) or removes (`None`) the tenant's minimum agent version.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn set_tenant_min_agent_version(
        &self,
        tenant_id: &str,
        min: Option<Version>,
    ) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        match min {
            Some(v) => tree.insert(tenant_id.as_bytes(), v.to_string().as_bytes())?,
            None => tree.remove(tenant_id.as_bytes())?,
        };
        Ok(())
    }

    /// The tenant's minimum agent version, if it set one.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`] when the stored text is not a version.
    pub fn tenant_min_agent_version(&self, tenant_id: &str) -> Result<Option<Version>, StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        let Some(raw) = tree.get(tenant_id.as_bytes())? else {
            return Ok(None);
        };
        std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or(StoreError::Corrupt("agent policy"))
    }
}

#[cfg(test)]
mod tests {
    use crate::core::crypto::MasterKey;
    use crate::store::Store;
    use sealprint_protocol::Version;

    #[test]
    fn set_read_and_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::from_bytes([7; 32])).expect("store");
        assert_eq!(store.tenant_min_agent_version("t").expect("read"), None);
        let v = Version::new(99, 0, 0);
        store
            .set_tenant_min_agent_version("t", Some(v))
            .expect("write");
        assert_eq!(store.tenant_min_agent_version("t").expect("read"), Some(v));
        assert_eq!(store.tenant_min_agent_version("u").expect("read"), None);
        store
            .set_tenant_min_agent_version("t", None)
            .expect("clear");
        assert_eq!(store.tenant_min_agent_version("t").expect("read"), None);
    }
}
