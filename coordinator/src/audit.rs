//! The audit log's hash chain.
//!
//! Every stored entry carries its sequence number, the previous entry's hash and its own hash,
//! `sha256(domain || prev_hash || seq || canonical(entry))`, so removing, reordering or editing
//! any entry breaks the chain from that point on. The canonical encoding is length-prefixed
//! and fixed-order, independent of the JSON the store writes.
//!
//! Entries are appended through [`crate::store::Store::append_audit`] (which serialises
//! appends) and checked with [`crate::store::Store::verify_audit_chain`]; this module holds
//! the pure chain rules, plus [`verify_data_dir`] for `sealprint-coordinator audit verify`. It does not prevent an attacker with the data directory from
//! rewriting the whole chain; anchoring the head elsewhere is future work.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::store::AuditEntry;

const DOMAIN: &[u8] = b"sealprint/audit/v1\0";

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// An entry as stored: the event plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedEntry {
    /// Position, from 0.
    pub seq: u64,
    /// Hex hash of the previous entry ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// Hex hash of this entry.
    pub hash: String,
    /// The event.
    pub entry: AuditEntry,
}

/// Why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// An entry is missing or out of order.
    #[error("audit entry {expected} is missing (found {found})")]
    Gap {
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// An entry does not link to the previous entry's hash.
    #[error("audit entry {0} does not link to its predecessor")]
    BrokenLink(u64),
    /// An entry's content does not match its hash.
    #[error("audit entry {0} was altered")]
    Altered(u64),
    /// A stored entry could not be decoded.
    #[error("audit entry {0} is unreadable")]
    Unreadable(u64),
}

impl ChainError {
    /// The sequence number of the first entry where the chain breaks.
    pub fn seq(&self) -> u64 {
        match self {
            ChainError::Gap { expected, .. } => *expected,
            ChainError::BrokenLink(s) | ChainError::Altered(s) | ChainError::Unreadable(s) => *s,
        }
    }
}

/// Opens the store of `data_dir` with the master key in `master_key_file` and verifies the
/// whole audit chain: `Ok(Ok(entries))` when intact, `Ok(Err(where))` when it breaks. The
/// store must not be open elsewhere (stop `serve` first, or use the API's
/// `GET /v1/tenants/{t}/audit/verify`).
///
/// # Errors
/// [`crate::Error`] when the key or the store cannot be opened.
pub fn verify_data_dir(
    data_dir: &std::path::Path,
    master_key_file: &std::path::Path,
) -> Result<Result<u64, ChainError>, crate::Error> {
    let master = crate::crypto::MasterKey::load(master_key_file)?;
    if !crate::store::db_path(data_dir).is_dir() {
        return Err(crate::Error::NotInitialised);
    }
    let store = crate::store::Store::open(data_dir, master)?;
    match store.verify_audit_chain() {
        Ok(n) => Ok(Ok(n)),
        Err(crate::store::StoreError::Chain(e)) => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

fn put_opt(h: &mut Sha256, s: Option<&str>) {
    match s {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put_str(h, s);
        }
    }
}

/// The hash of `entry` at `seq` after `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: u64, entry: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(entry.at_ms.to_be_bytes());
    put_opt(&mut h, entry.tenant_id.as_deref());
    put_str(&mut h, &entry.actor);
    put_str(&mut h, &entry.action);
    put_opt(&mut h, entry.object.as_deref());
    put_str(&mut h, &entry.outcome);
    h.finalize().into()
}

/// Chains `entry` after `prev` (the last stored entry, `None` for the first).
pub fn chain(prev: Option<&ChainedEntry>, entry: AuditEntry) -> ChainedEntry {
    let (seq, prev_hash) = match prev {
        None => (0, GENESIS),
        Some(p) => {
            let mut h = [0u8; 32];
            // A stored hash we wrote ourselves; a corrupt one makes verification fail later.
            let _ = hex::decode_to_slice(&p.hash, &mut h);
            (p.seq + 1, h)
        }
    };
    let hash = entry_hash(&prev_hash, seq, &entry);
    ChainedEntry {
        seq,
        prev_hash: hex::encode(prev_hash),
        hash: hex::encode(hash),
        entry,
    }
}

/// Checks a whole chain, in order from the first entry.
///
/// # Errors
/// The first [`ChainError`] found.
pub fn verify_chain<I>(entries: I) -> Result<u64, ChainError>
where
    I: IntoIterator<Item = Result<ChainedEntry, u64>>,
{
    let mut prev = GENESIS;
    let mut expected = 0u64;
    for item in entries {
        let e = item.map_err(ChainError::Unreadable)?;
        if e.seq != expected {
            return Err(ChainError::Gap {
                expected,
                found: e.seq,
            });
        }
        if e.prev_hash != hex::encode(prev) {
            return Err(ChainError::BrokenLink(e.seq));
        }
        let h = entry_hash(&prev, e.seq, &e.entry);
        if e.hash != hex::encode(h) {
            return Err(ChainError::Altered(e.seq));
        }
        prev = h;
        expected += 1;
    }
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 1,
            tenant_id: Some("tnt-1".into()),
            actor: "usr-1".into(),
            action: action.into(),
            object: None,
            outcome: "ok".into(),
        }
    }

    fn build(n: usize) -> Vec<ChainedEntry> {
        let mut out: Vec<ChainedEntry> = Vec::new();
        for i in 0..n {
            let c = chain(out.last(), entry(&format!("a{i}")));
            out.push(c);
        }
        out
    }

    #[test]
    fn detects_edit_removal_and_reorder() {
        let good = build(4);
        assert_eq!(verify_chain(good.iter().cloned().map(Ok)), Ok(4));

        let mut edited = good.clone();
        edited[1].entry.outcome = "denied".into();
        assert_eq!(
            verify_chain(edited.into_iter().map(Ok)),
            Err(ChainError::Altered(1))
        );

        let mut removed = good.clone();
        removed.remove(2);
        assert_eq!(
            verify_chain(removed.into_iter().map(Ok)),
            Err(ChainError::Gap {
                expected: 2,
                found: 3
            })
        );

        let mut relinked = good.clone();
        relinked.remove(2);
        relinked[2].seq = 2;
        assert_eq!(
            verify_chain(relinked.into_iter().map(Ok)),
            Err(ChainError::BrokenLink(2))
        );
    }

    #[test]
    fn field_boundaries_matter() {
        let mut a = entry("x");
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = entry("x");
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(entry_hash(&GENESIS, 0, &a), entry_hash(&GENESIS, 0, &b));
    }
}
