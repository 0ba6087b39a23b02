//! Idempotency keys of creating POSTs: per tenant, the sha256 of the request (method, path,
//! body) and the first answer (status and JSON body, ids only), kept
//! [`IDEMPOTENCY_TTL_MS`].
//!
//! Records live in the `idempotency` tree under `"<tenant>/<sha256 of the key>"`: neither
//! the key nor the body is stored, only hashes, so a client that puts something personal in
//! either leaves nothing readable on disk. A claim is a compare-and-swap, so two concurrent
//! requests with one key never both run: the second sees the first in progress.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{decode, encode, prefix, scoped, Store, StoreError};

const TREE: &str = "idempotency";

/// How long a key is remembered: a retry with it within this time gets the first answer.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// How long a claim without an answer holds its key: past it (the coordinator stopped in
/// the middle of the request), a retry runs the request again.
pub const IDEMPOTENCY_PENDING_MS: u64 = 2 * 60 * 1000;

/// The first answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// Its HTTP status.
    pub status: u16,
    /// Its JSON body (ids and states only).
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyRecord {
    /// Hex sha256 of the request the key was first used with.
    request_sha256: String,
    /// When the key was first used, unix ms.
    created_at_ms: u64,
    /// The first answer, once there is one.
    answer: Option<StoredAnswer>,
}

/// What a request with an idempotency key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or expired): run the request, then [`Store::complete_idempotency`]
    /// or [`Store::release_idempotency`].
    Fresh,
    /// The same request was answered: answer this again.
    Replay(StoredAnswer),
    /// The key was used with another request.
    Mismatch,
    /// The same request is running now.
    InProgress,
}

fn key_of(tenant_id: &str, key: &str) -> Vec<u8> {
    scoped(tenant_id, &hex::encode(Sha256::digest(key.as_bytes())))
}

impl Store {
    /// Claims `key` of `tenant_id` for the request hashed `request_sha256` at `now_ms`.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn claim_idempotency(
        &self,
        tenant_id: &str,
        key: &str,
        request_sha256: &str,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        let k = key_of(tenant_id, key);
        let fresh = encode(&IdempotencyRecord {
            request_sha256: request_sha256.to_owned(),
            created_at_ms: now_ms,
            answer: None,
        });
        loop {
            let old = tree.get(&k)?;
            if let Some(bytes) = &old {
                let rec: IdempotencyRecord = decode(bytes, "idempotency key")?;
                let age = now_ms.saturating_sub(rec.created_at_ms);
                let live = match rec.answer {
                    Some(_) => age < IDEMPOTENCY_TTL_MS,
                    None => age < IDEMPOTENCY_PENDING_MS,
                };
                if live {
                    return Ok(if rec.request_sha256 != request_sha256 {
                        Claim::Mismatch
                    } else if let Some(answer) = rec.answer {
                        Claim::Replay(answer)
                    } else {
                        Claim::InProgress
                    });
                }
            }
            if tree.compare_and_swap(&k, old, Some(fresh.clone()))?.is_ok() {
                return Ok(Claim::Fresh);
            }
        }
    }

    /// Records the answer of a [`Claim::Fresh`] request, durably.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn complete_idempotency(
        &self,
        tenant_id: &str,
        key: &str,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        super::update(
            &tree,
            &key_of(tenant_id, key),
            "idempotency key",
            |r: &mut IdempotencyRecord| {
                r.answer = Some(answer.clone());
            },
        )?;
        tree.flush()?;
        Ok(())
    }

    /// Gives up a [`Claim::Fresh`] whose request failed: a retry runs it again.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn release_idempotency(&self, tenant_id: &str, key: &str) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        tree.remove(key_of(tenant_id, key))?;
        Ok(())
    }

    /// Deletes the keys of `tenant_id` (every tenant when `None`) that expired at `now_ms`;
    /// returns how many.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn purge_idempotency(
        &self,
        tenant_id: Option<&str>,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let tree = self.inner.db.open_tree(TREE)?;
        let p = tenant_id.map(prefix).unwrap_or_default();
        let mut n = 0;
        for kv in tree.scan_prefix(p) {
            let (k, v) = kv?;
            let rec: IdempotencyRecord = decode(&v, "idempotency key")?;
            if now_ms.saturating_sub(rec.created_at_ms) >= IDEMPOTENCY_TTL_MS
                && tree.compare_and_swap(&k, Some(v), None::<&[u8]>)?.is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::MasterKey;

    fn answer(id: &str) -> StoredAnswer {
        StoredAnswer {
            status: 202,
            body: serde_json::json!({"id": id}),
        }
    }

    #[test]
    fn a_key_replays_its_first_answer_and_refuses_another_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        assert_eq!(
            store.claim_idempotency("t1", "k", "h1", 0).ok(),
            Some(Claim::Fresh)
        );
        assert_eq!(
            store.claim_idempotency("t1", "k", "h1", 1).ok(),
            Some(Claim::InProgress)
        );
        store
            .complete_idempotency("t1", "k", answer("job-1"))
            .expect("complete");
        assert_eq!(
            store.claim_idempotency("t1", "k", "h1", 2).ok(),
            Some(Claim::Replay(answer("job-1")))
        );
        assert_eq!(
            store.claim_idempotency("t1", "k", "h2", 3).ok(),
            Some(Claim::Mismatch)
        );
        // Keys are per tenant.
        assert_eq!(
            store.claim_idempotency("t2", "k", "h2", 3).ok(),
            Some(Claim::Fresh)
        );
        // Expired after 24 h: the key is new again.
        assert_eq!(
            store
                .claim_idempotency("t1", "k", "h2", IDEMPOTENCY_TTL_MS)
                .ok(),
            Some(Claim::Fresh)
        );
    }

    #[test]
    fn keys_survive_a_restart_and_neither_key_nor_body_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = MasterKey::generate();
        let key = "order-4711-customer-jane";
        {
            let store = Store::open(dir.path(), master.clone()).expect("store");
            assert_eq!(
                store.claim_idempotency("t1", key, "h1", 0).ok(),
                Some(Claim::Fresh)
            );
            store
                .complete_idempotency("t1", key, answer("job-1"))
                .expect("complete");
        }
        let store = Store::reopen(dir.path(), &master).expect("reopen");
        assert_eq!(
            store.claim_idempotency("t1", key, "h1", 5).ok(),
            Some(Claim::Replay(answer("job-1")))
        );
        let tree = store.inner.db.open_tree(TREE).expect("tree");
        for kv in tree.iter() {
            let (k, v) = kv.expect("kv");
            assert!(!String::from_utf8_lossy(&k).contains("jane"));
            assert!(!String::from_utf8_lossy(&v).contains("jane"));
        }
    }

    #[test]
    fn a_claim_left_without_answer_is_taken_over_and_failures_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        assert_eq!(
            store.claim_idempotency("t1", "k", "h1", 0).ok(),
            Some(Claim::Fresh)
        );
        assert_eq!(
            store
                .claim_idempotency("t1", "k", "h1", IDEMPOTENCY_PENDING_MS)
                .ok(),
            Some(Claim::Fresh)
        );
        store.release_idempotency("t1", "k").expect("release");
        assert_eq!(
            store.claim_idempotency("t1", "k", "h2", 1).ok(),
            Some(Claim::Fresh)
        );
    }

    #[test]
    fn concurrent_claims_let_one_request_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let claims: Vec<Option<Claim>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| s.spawn(|| store.claim_idempotency("t1", "k", "h1", 0).ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let fresh = claims.iter().filter(|c| **c == Some(Claim::Fresh)).count();
        let waiting = claims
            .iter()
            .filter(|c| **c == Some(Claim::InProgress))
            .count();
        assert_eq!((fresh, waiting), (1, 15), "{claims:?}");
    }

    #[test]
    fn expired_keys_are_purged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        store.claim_idempotency("t1", "a", "h", 0).expect("claim");
        store
            .complete_idempotency("t1", "a", answer("job-1"))
            .expect("complete");
        store.claim_idempotency("t1", "b", "h", 10).expect("claim");
        assert_eq!(
            store.purge_idempotency(None, IDEMPOTENCY_TTL_MS).ok(),
            Some(1)
        );
        assert_eq!(
            store.claim_idempotency("t1", "b", "h", 11).ok(),
            Some(Claim::InProgress)
        );
    }
}
