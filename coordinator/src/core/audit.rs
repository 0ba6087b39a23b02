//! The audit log's hash chain.
//!
//! Every stored entry carries its sequence number, the previous entry's hash and its own hash,
//! `sha256(domain || prev_hash || seq || canonical(entry))`, so removing, reordering or editing
//! any entry breaks the chain from that point on. The canonical encoding is length-prefixed
//! and fixed-order, independent of the JSON the store writes.
//!
//! Entries are appended through the store's `Store::append_audit` (which serialises appends)
//! and checked with its `Store::verify_audit_chain`; this module holds the pure chain rules
//! and the entry itself ([`AuditEntry`]). It imports nothing of the crate: the store and the
//! `audit verify` command (`app::verify`) build on it.
//!
//! Checkpoints ([`Checkpoint`]) anchor the chain: the coordinator's CA key signs the head's
//! sequence number and hash, periodically and on demand. [`verify_log`] checks every
//! checkpoint's signature and that the chain still reaches it with the same hash, so deleting
//! the newest entries (truncation) or rewriting history behind a checkpoint is detected.
//! Retention prunes old entries only up to a checkpoint, which then becomes the trusted start
//! of the chain; a start younger than [`MIN_RETENTION_MS`] is reported as a truncation. What
//! it does not prevent: an attacker holding the data directory *and* the master key can sign
//! new checkpoints; copies of checkpoints kept elsewhere (the API returns them) are the
//! defence there.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// One audit event. Never holds PII: ids, actions and short outcomes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, unix ms.
    pub at_ms: u64,
    /// Tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// User id, device id or `"coordinator"`.
    pub actor: String,
    /// What happened, e.g. `label.requested`.
    pub action: String,
    /// The object id (job, device, tenant…).
    pub object: Option<String>,
    /// `"ok"` or a short reason.
    pub outcome: String,
}

impl AuditEntry {
    /// The entry of `actor` doing `action` (to `object`, of `tenant_id`) at `at_ms`.
    pub fn new(
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        object: Option<&str>,
        outcome: &str,
        at_ms: u64,
    ) -> AuditEntry {
        AuditEntry {
            at_ms,
            tenant_id: tenant_id.map(str::to_owned),
            actor: actor.to_owned(),
            action: action.to_owned(),
            object: object.map(str::to_owned),
            outcome: outcome.to_owned(),
        }
    }
}

const DOMAIN: &[u8] = b"sealprint/audit/v1\0";
const CHECKPOINT_DOMAIN: &[u8] = b"sealprint/audit-checkpoint/v1\0";

/// Audit entries are kept at least this long: 90 days, ms. Configurations may keep them
/// longer, never shorter.
pub const MIN_RETENTION_MS: u64 = 90 * 24 * 3600 * 1000;

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
    /// Entries after `last` were deleted: a signed checkpoint covers entry `checkpoint`.
    #[error(
        "audit entries after {last} were deleted (a signed checkpoint covers entry {checkpoint})"
    )]
    Truncated {
        /// The last entry present.
        last: u64,
        /// The checkpointed entry that is missing.
        checkpoint: u64,
    },
    /// The entry at a signed checkpoint no longer has the checkpointed hash (history was
    /// rewritten).
    #[error("audit entry {0} differs from its signed checkpoint")]
    CheckpointMismatch(u64),
    /// A checkpoint's signature does not verify under the coordinator's CA key.
    #[error("the checkpoint of audit entry {0} is not signed by this coordinator")]
    BadCheckpoint(u64),
    /// The chain starts at a checkpoint younger than the minimum retention: recent entries
    /// before it were deleted.
    #[error("audit entries before {0} were deleted before the minimum retention of 90 days")]
    PrunedTooEarly(u64),
}

impl ChainError {
    /// The sequence number of the first entry where the chain breaks.
    pub fn seq(&self) -> u64 {
        match self {
            ChainError::Gap { expected, .. } => *expected,
            ChainError::Truncated { last, .. } => last + 1,
            ChainError::BrokenLink(s)
            | ChainError::Altered(s)
            | ChainError::Unreadable(s)
            | ChainError::CheckpointMismatch(s)
            | ChainError::BadCheckpoint(s)
            | ChainError::PrunedTooEarly(s) => *s,
        }
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

/// Checks that `e` is entry `expected` of the chain, linked to `prev` and unaltered; returns
/// its hash (the next entry's link).
fn next_link(prev: &[u8; 32], expected: u64, e: &ChainedEntry) -> Result<[u8; 32], ChainError> {
    if e.seq != expected {
        return Err(ChainError::Gap {
            expected,
            found: e.seq,
        });
    }
    if e.prev_hash != hex::encode(prev) {
        return Err(ChainError::BrokenLink(e.seq));
    }
    let h = entry_hash(prev, e.seq, &e.entry);
    if e.hash != hex::encode(h) {
        return Err(ChainError::Altered(e.seq));
    }
    Ok(h)
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
        let h = next_link(&prev, expected, &e)?;
        prev = h;
        expected += 1;
    }
    Ok(expected)
}

/// A signed statement that the chain's entry `seq` has hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The entry's sequence number (the head when signed).
    pub seq: u64,
    /// Its hex hash.
    pub hash: String,
    /// Its time, unix ms.
    pub head_at_ms: u64,
    /// When it was signed, unix ms.
    pub signed_at_ms: u64,
    /// Hex ed25519 signature by the CA key.
    pub signature: String,
}

fn checkpoint_message(seq: u64, hash: &str, head_at_ms: u64, signed_at_ms: u64) -> Vec<u8> {
    let mut m = CHECKPOINT_DOMAIN.to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    put_len_str(&mut m, hash);
    m.extend_from_slice(&head_at_ms.to_be_bytes());
    m.extend_from_slice(&signed_at_ms.to_be_bytes());
    m
}

fn put_len_str(m: &mut Vec<u8>, s: &str) {
    m.extend_from_slice(&(s.len() as u64).to_be_bytes());
    m.extend_from_slice(s.as_bytes());
}

impl Checkpoint {
    /// Signs `head` (the chain's last entry) at `now_ms`.
    pub fn sign(key: &SigningKey, head: &ChainedEntry, now_ms: u64) -> Checkpoint {
        let msg = checkpoint_message(head.seq, &head.hash, head.entry.at_ms, now_ms);
        Checkpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            head_at_ms: head.entry.at_ms,
            signed_at_ms: now_ms,
            signature: hex::encode(key.sign(&msg).to_bytes()),
        }
    }

    /// Whether the signature verifies under `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let mut raw = [0u8; 64];
        if hex::decode_to_slice(&self.signature, &mut raw).is_err() {
            return false;
        }
        let msg = checkpoint_message(self.seq, &self.hash, self.head_at_ms, self.signed_at_ms);
        key.verify(&msg, &Signature::from_bytes(&raw)).is_ok()
    }
}

/// Checks a chain that may start at a checkpoint (`base`, after retention pruned what came
/// before) against its signed `checkpoints`, at `now_ms`. Returns the number of entries
/// checked.
///
/// # Errors
/// The first [`ChainError`] found; checkpoints without `ca` fail as [`ChainError::BadCheckpoint`].
pub fn verify_log<I>(
    entries: I,
    base: Option<u64>,
    checkpoints: &[Checkpoint],
    ca: Option<&VerifyingKey>,
    now_ms: u64,
) -> Result<u64, ChainError>
where
    I: IntoIterator<Item = Result<ChainedEntry, u64>>,
{
    for c in checkpoints {
        if !ca.is_some_and(|k| c.verify(k)) {
            return Err(ChainError::BadCheckpoint(c.seq));
        }
    }
    let cp_at = |seq: u64| checkpoints.iter().find(|c| c.seq == seq);
    let mut entries = entries.into_iter();
    let (mut prev, mut expected, mut checked) = (GENESIS, 0u64, 0u64);
    if let Some(b) = base {
        // The first kept entry is trusted through its signed checkpoint.
        let Some(c) = cp_at(b) else {
            return Err(ChainError::BadCheckpoint(b));
        };
        if c.head_at_ms.saturating_add(MIN_RETENTION_MS) > now_ms {
            return Err(ChainError::PrunedTooEarly(b));
        }
        let first = match entries.next() {
            Some(e) => e.map_err(ChainError::Unreadable)?,
            None => {
                return Err(ChainError::Truncated {
                    last: b.saturating_sub(1),
                    checkpoint: b,
                })
            }
        };
        if first.seq != b {
            return Err(ChainError::Gap {
                expected: b,
                found: first.seq,
            });
        }
        let mut link = [0u8; 32];
        hex::decode_to_slice(&first.prev_hash, &mut link).map_err(|_| ChainError::Altered(b))?;
        let h = entry_hash(&link, b, &first.entry);
        if first.hash != hex::encode(h) {
            return Err(ChainError::Altered(b));
        }
        if first.hash != c.hash {
            return Err(ChainError::CheckpointMismatch(b));
        }
        (prev, expected, checked) = (h, b + 1, 1);
    }
    for item in entries {
        let e = item.map_err(ChainError::Unreadable)?;
        let h = next_link(&prev, expected, &e)?;
        if cp_at(e.seq).is_some_and(|c| c.hash != e.hash) {
            return Err(ChainError::CheckpointMismatch(e.seq));
        }
        prev = h;
        expected += 1;
        checked += 1;
    }
    if let Some(c) = checkpoints
        .iter()
        .filter(|c| c.seq >= expected && base.is_none_or(|b| c.seq >= b))
        .min_by_key(|c| c.seq)
    {
        return Err(ChainError::Truncated {
            last: expected.saturating_sub(1),
            checkpoint: c.seq,
        });
    }
    Ok(checked)
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

    #[test]
    fn checkpoints_detect_truncation_and_rewrites() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let ca = key.verifying_key();
        let day = 24 * 3600 * 1000;
        let now = 200 * day;
        let good = build(6);
        let cp = Checkpoint::sign(&key, &good[3], now);
        assert!(cp.verify(&ca));
        let ok = |v: &[ChainedEntry], cps: &[Checkpoint], base| {
            verify_log(v.iter().cloned().map(Ok), base, cps, Some(&ca), now)
        };
        assert_eq!(ok(&good, std::slice::from_ref(&cp), None), Ok(6));

        // Without the checkpoint, dropping the last entries goes unnoticed; with it, not.
        let truncated = &good[..3];
        assert_eq!(ok(truncated, &[], None), Ok(3));
        assert_eq!(
            ok(truncated, std::slice::from_ref(&cp), None),
            Err(ChainError::Truncated {
                last: 2,
                checkpoint: 3
            })
        );

        // A rewritten chain (re-hashed from entry 1 on) no longer matches the checkpoint.
        let mut rewritten: Vec<ChainedEntry> = good[..1].to_vec();
        for i in 1..6 {
            let c = chain(rewritten.last(), entry(&format!("forged{i}")));
            rewritten.push(c);
        }
        assert_eq!(
            ok(&rewritten, std::slice::from_ref(&cp), None),
            Err(ChainError::CheckpointMismatch(3))
        );

        // A forged or foreign signature.
        let mut forged = cp.clone();
        forged.hash = rewritten[3].hash.clone();
        assert_eq!(
            ok(&rewritten, &[forged], None),
            Err(ChainError::BadCheckpoint(3))
        );
        assert_eq!(
            verify_log(
                good.iter().cloned().map(Ok),
                None,
                std::slice::from_ref(&cp),
                None,
                now
            ),
            Err(ChainError::BadCheckpoint(3))
        );

        // Pruned up to the checkpoint: the chain starts there, trusted by the signature.
        assert_eq!(ok(&good[3..], std::slice::from_ref(&cp), Some(3)), Ok(3));
        assert_eq!(
            ok(&good[4..], std::slice::from_ref(&cp), Some(3)),
            Err(ChainError::Gap {
                expected: 3,
                found: 4
            })
        );
        // Pruning entries younger than 90 days is a truncation too.
        let young = Checkpoint::sign(&key, &good[3], now);
        let mut recent = good.clone();
        for e in &mut recent {
            e.entry.at_ms = now - day;
        }
        let recent: Vec<ChainedEntry> = recent.into_iter().fold(Vec::new(), |mut acc, e| {
            let c = chain(acc.last(), e.entry);
            acc.push(c);
            acc
        });
        let young = Checkpoint::sign(&key, &recent[3], young.signed_at_ms);
        assert_eq!(
            ok(&recent[3..], &[young], Some(3)),
            Err(ChainError::PrunedTooEarly(3))
        );
    }
}
