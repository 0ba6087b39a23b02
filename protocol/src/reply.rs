//! What the coordinator tells an agent, signed by the coordinator so that a relaying site
//! peer can carry it but neither forge, change nor replay it.
//!
//! - [`SignedRevocations`]: the tenant's revoked devices, with a version that only grows.
//!   Agents keep the latest one on disk and refuse every certificate of a listed device,
//!   whatever its serial.
//! - [`SignedReply`]: the answer to one heartbeat. It names the device and the heartbeat's
//!   counter ([`crate::Heartbeat::seq`]); an agent applies a reply only to a heartbeat it
//!   sent and only once, so an old reply replayed by a relay is refused.
//!
//! Both are signed with the coordinator CA's ed25519 key (the key agents pin at enrollment),
//! each under its own domain-separation prefix, over the postcard encoding of the body.
//! Checks are pure: the caller passes the pinned key and its counters.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use thiserror::Error;

use crate::ident::validate_id;
use crate::message::{HeartbeatReply, RevocationList, SignedReply, SignedRevocations};

const REVOCATIONS_DOMAIN: &[u8] = b"sealprint/revocations/v1\0";
const REPLY_DOMAIN: &[u8] = b"sealprint/heartbeat-reply/v1\0";
/// Most revoked devices one list may hold.
pub const MAX_REVOKED: usize = 65_536;

/// Why a signed reply or revocation list was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The body is malformed (bad identifier, too many entries).
    #[error("malformed signed coordinator message")]
    Malformed,
    /// The signature is missing, malformed or not the coordinator's.
    #[error("bad coordinator signature")]
    BadSignature,
    /// The message is for another device or tenant.
    #[error("coordinator message is for another {0}")]
    Mismatch(&'static str),
    /// The reply answers a heartbeat already answered, or one never sent (a replay).
    #[error("stale or replayed heartbeat reply (answers heartbeat {0})")]
    Stale(u64),
}

fn signed_message<T: Serialize>(domain: &[u8], body: &T) -> Result<Vec<u8>, ReplyError> {
    let mut msg = domain.to_vec();
    msg.extend(postcard::to_allocvec(body).map_err(|_| ReplyError::Malformed)?);
    Ok(msg)
}

fn check(
    domain: &[u8],
    body: &impl Serialize,
    signature: &[u8],
    key: &[u8; 32],
) -> Result<(), ReplyError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| ReplyError::BadSignature)?;
    let sig: [u8; 64] = signature.try_into().map_err(|_| ReplyError::BadSignature)?;
    key.verify_strict(&signed_message(domain, body)?, &Signature::from_bytes(&sig))
        .map_err(|_| ReplyError::BadSignature)
}

impl RevocationList {
    fn validate(&self) -> Result<(), ReplyError> {
        validate_id(&self.tenant_id).map_err(|_| ReplyError::Malformed)?;
        if self.devices.len() > MAX_REVOKED {
            return Err(ReplyError::Malformed);
        }
        for d in &self.devices {
            validate_id(d).map_err(|_| ReplyError::Malformed)?;
        }
        Ok(())
    }

    /// Whether `device_id` is revoked.
    pub fn contains(&self, device_id: &str) -> bool {
        self.devices.iter().any(|d| d == device_id)
    }
}

impl SignedRevocations {
    /// Signs `list` with the coordinator CA key.
    ///
    /// # Errors
    /// [`ReplyError::Malformed`] when an id breaks the identifier rules or the list is too
    /// long.
    pub fn sign(list: RevocationList, ca: &SigningKey) -> Result<SignedRevocations, ReplyError> {
        list.validate()?;
        let signature = ca
            .sign(&signed_message(REVOCATIONS_DOMAIN, &list)?)
            .to_bytes()
            .to_vec();
        Ok(SignedRevocations { list, signature })
    }

    /// Checks the coordinator's signature and the tenant; returns the list.
    ///
    /// # Errors
    /// [`ReplyError`] saying what is wrong.
    pub fn verify(&self, ca: &[u8; 32], tenant_id: &str) -> Result<&RevocationList, ReplyError> {
        self.list.validate()?;
        check(REVOCATIONS_DOMAIN, &self.list, &self.signature, ca)?;
        if self.list.tenant_id != tenant_id {
            return Err(ReplyError::Mismatch("tenant"));
        }
        Ok(&self.list)
    }
}

impl SignedReply {
    /// Signs `reply` with the coordinator CA key.
    ///
    /// # Errors
    /// [`ReplyError::Malformed`] when the device id breaks the identifier rules.
    pub fn sign(reply: HeartbeatReply, ca: &SigningKey) -> Result<SignedReply, ReplyError> {
        validate_id(&reply.device_id).map_err(|_| ReplyError::Malformed)?;
        let signature = ca
            .sign(&signed_message(REPLY_DOMAIN, &reply)?)
            .to_bytes()
            .to_vec();
        Ok(SignedReply { reply, signature })
    }

    /// Checks that the reply is the coordinator's, for `device_id`, and answers a heartbeat
    /// this agent sent (counter at most `sent_seq`) and has not had answered yet (counter
    /// above `applied_seq`). The revocation list inside is checked too.
    ///
    /// # Errors
    /// [`ReplyError`] saying what is wrong; nothing of the reply is returned then.
    pub fn verify(
        &self,
        ca: &[u8; 32],
        device_id: &str,
        tenant_id: &str,
        applied_seq: u64,
        sent_seq: u64,
    ) -> Result<&HeartbeatReply, ReplyError> {
        validate_id(&self.reply.device_id).map_err(|_| ReplyError::Malformed)?;
        check(REPLY_DOMAIN, &self.reply, &self.signature, ca)?;
        if self.reply.device_id != device_id {
            return Err(ReplyError::Mismatch("device"));
        }
        let seq = self.reply.heartbeat_seq;
        if seq <= applied_seq || seq > sent_seq {
            return Err(ReplyError::Stale(seq));
        }
        self.reply.revocations.verify(ca, tenant_id)?;
        Ok(&self.reply)
    }
}

#[cfg(test)]
mod compat;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::AcceptedIdentity;
    use sha2::{Digest, Sha256};

    fn ca() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn revocations(version: u64, devices: &[&str]) -> SignedRevocations {
        SignedRevocations::sign(
            RevocationList {
                tenant_id: "tnt-1".into(),
                version,
                devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            },
            &ca(),
        )
        .expect("signs")
    }

    fn reply(seq: u64) -> HeartbeatReply {
        HeartbeatReply {
            device_id: "dev-1".into(),
            heartbeat_seq: seq,
            now_ms: 1_000,
            revocations: revocations(1, &["dev-9"]),
            renewed_certificate: None,
            min_version: "0.1.0".into(),
            accepted_identities: vec![AcceptedIdentity {
                printer: "zebra-1".into(),
                identity: "SN1".into(),
            }],
        }
    }

    #[test]
    fn replies_verify_once_and_only_for_their_device() {
        let pk = ca().verifying_key().to_bytes();
        let signed = SignedReply::sign(reply(5), &ca()).expect("signs");
        assert_eq!(signed.verify(&pk, "dev-1", "tnt-1", 4, 5), Ok(&reply(5)));
        // Already applied (a replay), or a counter never sent: stale.
        assert_eq!(
            signed.verify(&pk, "dev-1", "tnt-1", 5, 6),
            Err(ReplyError::Stale(5))
        );
        assert_eq!(
            signed.verify(&pk, "dev-1", "tnt-1", 0, 4),
            Err(ReplyError::Stale(5))
        );
        assert_eq!(
            signed.verify(&pk, "dev-2", "tnt-1", 4, 5),
            Err(ReplyError::Mismatch("device"))
        );
        assert_eq!(
            signed.verify(&pk, "dev-1", "tnt-2", 4, 5),
            Err(ReplyError::Mismatch("tenant"))
        );
    }

    #[test]
    fn a_relay_cannot_rewrite_a_reply_or_its_revocations() {
        let pk = ca().verifying_key().to_bytes();
        let signed = SignedReply::sign(reply(5), &ca()).expect("signs");
        let mut unrevoked = signed.clone();
        unrevoked.reply.revocations.list.devices.clear();
        assert_eq!(
            unrevoked.verify(&pk, "dev-1", "tnt-1", 4, 5),
            Err(ReplyError::BadSignature)
        );
        let mut identities = signed.clone();
        identities.reply.accepted_identities[0].identity = "EVIL".into();
        assert_eq!(
            identities.verify(&pk, "dev-1", "tnt-1", 4, 5),
            Err(ReplyError::BadSignature)
        );
        // A relay's own key is not the coordinator's.
        let rogue = SigningKey::from_bytes(&[8u8; 32]);
        let forged = SignedReply::sign(reply(5), &rogue).expect("signs");
        assert_eq!(
            forged.verify(&pk, "dev-1", "tnt-1", 4, 5),
            Err(ReplyError::BadSignature)
        );
        // A revocation list signed as a reply (or the reverse) does not verify.
        let list = revocations(2, &[]);
        let as_reply = SignedRevocations {
            list: list.list.clone(),
            signature: signed.signature.clone(),
        };
        assert_eq!(as_reply.verify(&pk, "tnt-1"), Err(ReplyError::BadSignature));
        assert!(list.verify(&pk, "tnt-1").is_ok());
    }

    #[test]
    fn bad_ids_are_malformed() {
        let list = RevocationList {
            tenant_id: "tnt-1".into(),
            version: 1,
            devices: vec!["a b".into()],
        };
        assert_eq!(
            SignedRevocations::sign(list, &ca()).err(),
            Some(ReplyError::Malformed)
        );
    }

    #[test]
    fn golden_vectors() {
        // Pinned so that an accidental change of a signed encoding is caught.
        let signed = SignedReply::sign(reply(5), &ca()).expect("signs");
        let wire = postcard::to_allocvec(&signed).expect("encodes");
        assert_eq!(
            hex::encode(Sha256::digest(&wire)),
            "88eb037e3714da20cc83f6142c579af62f386f808cf621f00e4390b47c14cc61"
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(seq in 1u64.., version in 0u64.., devices in proptest::collection::vec("[a-z0-9-]{1,64}", 0..8)) {
            let list = RevocationList { tenant_id: "tnt-1".into(), version, devices };
            let mut r = reply(seq);
            r.revocations = SignedRevocations::sign(list, &ca()).expect("signs");
            let signed = SignedReply::sign(r, &ca()).expect("signs");
            let wire = postcard::to_allocvec(&signed).expect("encodes");
            let back: SignedReply = postcard::from_bytes(&wire).expect("decodes");
            proptest::prop_assert_eq!(&back, &signed);
            let pk = ca().verifying_key().to_bytes();
            proptest::prop_assert!(back.verify(&pk, "dev-1", "tnt-1", seq - 1, seq).is_ok());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let pk = ca().verifying_key().to_bytes();
            if let Ok(s) = postcard::from_bytes::<SignedReply>(&bytes) {
                let _ = s.verify(&pk, "dev-1", "tnt-1", 0, u64::MAX);
            }
            if let Ok(s) = postcard::from_bytes::<SignedRevocations>(&bytes) {
                let _ = s.verify(&pk, "tnt-1");
            }
        }
    }
}
