//! Printer identities an admin accepted after a device was swapped, until the agent reports
//! the printer verified with that identity. Serials and device ids only; no PII.

use super::{scoped, Store, StoreError};

const TREE: &str = "accepted_identities";

impl Store {
    /// Records that an admin accepted `identity` for `printer_id` of `tenant_id`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn accept_printer_identity(
        &self,
        tenant_id: &str,
        printer_id: &str,
        identity: &str,
    ) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        tree.insert(scoped(tenant_id, printer_id), identity.as_bytes())?;
        Ok(())
    }

    /// The identity accepted for a printer and not yet taken up by its agent.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn accepted_printer_identity(
        &self,
        tenant_id: &str,
        printer_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        Ok(tree
            .get(scoped(tenant_id, printer_id))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Forgets an accepted identity (the agent took it up).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn clear_accepted_printer_identity(
        &self,
        tenant_id: &str,
        printer_id: &str,
    ) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        tree.remove(scoped(tenant_id, printer_id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::core::crypto::MasterKey;
    use crate::store::Store;

    #[test]
    fn accept_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::from_bytes([7; 32])).expect("store");
        assert_eq!(
            store.accepted_printer_identity("t", "d.p").expect("read"),
            None
        );
        store
            .accept_printer_identity("t", "d.p", "SN2")
            .expect("write");
        assert_eq!(
            store
                .accepted_printer_identity("t", "d.p")
                .expect("read")
                .as_deref(),
            Some("SN2")
        );
        store
            .clear_accepted_printer_identity("t", "d.p")
            .expect("clear");
        assert_eq!(
            store.accepted_printer_identity("t", "d.p").expect("read"),
            None
        );
    }
}
