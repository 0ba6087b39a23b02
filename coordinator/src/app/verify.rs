//! `sealprint-coordinator audit verify`: open a stopped coordinator's store and check the
//! whole audit chain.

use std::path::Path;

use crate::app::error::Error;
use crate::core::audit::ChainError;
use crate::core::crypto::MasterKey;
use crate::core::paths::db_path;
use crate::store::{Store, StoreError};

/// Opens the store of `data_dir` with the master key in `master_key_file` and verifies the
/// whole audit chain: `Ok(Ok(entries))` when intact, `Ok(Err(where))` when it breaks. The
/// store must not be open elsewhere (stop `serve` first, or use the API's
/// `GET /v1/tenants/{t}/audit/verify`).
///
/// # Errors
/// [`Error`] when the key or the store cannot be opened.
pub fn verify_data_dir(
    data_dir: &Path,
    master_key_file: &Path,
) -> Result<Result<u64, ChainError>, Error> {
    let master = MasterKey::load(master_key_file)?;
    if !db_path(data_dir).is_dir() {
        return Err(Error::NotInitialised);
    }
    let store = Store::open(data_dir, master)?;
    match store.verify_audit_chain() {
        Ok(n) => Ok(Ok(n)),
        Err(StoreError::Chain(e)) => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}
