//! The small generic helper every record family is written over: records are JSON values in
//! sled trees, read and written typed (`get`, `put`, `scan` by key prefix, `update` by
//! compare-and-swap), under tenant-scoped keys `"<tenant_id>/<id>"`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::TransactionError;

use super::StoreError;

/// The key of record `id` of `tenant_id` (ids never hold `/`).
pub(super) fn scoped(tenant_id: &str, id: &str) -> Vec<u8> {
    format!("{tenant_id}/{id}").into_bytes()
}

/// The key prefix of every record of `tenant_id`.
pub(super) fn prefix(tenant_id: &str) -> Vec<u8> {
    format!("{tenant_id}/").into_bytes()
}

/// A record as stored.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialise")
}

/// A stored record, or [`StoreError::Corrupt`] naming `what`.
pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt(what))
}

/// The record at `key`, if any.
pub(super) fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(&v, what)).transpose()
}

/// Every record whose key starts with `prefix`, in key order.
pub(super) fn scan<T: DeserializeOwned>(
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
pub(super) fn update<T, F>(
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

/// Stores `value` at `key` (creating or replacing it).
pub(super) fn put<T: Serialize>(
    tree: &sled::Tree,
    key: &[u8],
    value: &T,
) -> Result<(), StoreError> {
    tree.insert(key, encode(value))?;
    Ok(())
}

/// The error of a failed transaction: the abort's reason, or the storage failure.
pub(super) fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}
