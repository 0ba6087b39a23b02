//! The mesh event loop's audit entries, appended by a [`StoreWriter`] task of their own (see
//! there for order, back-pressure and shutdown).

use tracing::warn;

use crate::core::audit::AuditEntry;
use crate::services::store_writer::{StoreRecord, StoreWriter};
use crate::store::Store;

/// The handle the event loop appends audit entries through.
pub type AuditWriter = StoreWriter<AuditEntry>;

impl StoreRecord for AuditEntry {
    fn write_to(self, store: &Store) {
        let action = self.action.clone();
        if let Err(e) = store.append_audit(self) {
            warn!(error = %e, %action, "audit entry not written");
        }
    }
}
