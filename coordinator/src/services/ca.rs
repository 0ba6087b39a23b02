//! The coordinator's identity and certificate authority.
//!
//! [`Identity`] holds the three long-lived secrets `init` creates: the CA's ed25519 signing
//! key, the seed of the coordinator's libp2p ed25519 identity (its PeerId), and its X25519 key
//! (the sender key of sealed label envelopes). They are stored in the data directory encrypted
//! under the master key ([`crate::store::Store::put_secret`]), live in memory in zeroizing
//! wrappers and never appear in `Debug` output.
//!
//! [`issue_certificate`] signs device certificates with serials from a store counter.
//! Deciding whom to enroll (tokens) and checking certificates on connections is the mesh's
//! job, not this module's.

use std::fmt;

use ed25519_dalek::SigningKey;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use sealprint_protocol::{CertError, Certificate, CertificateBody};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::core::crypto::random_key;
use crate::core::paths::CA_SECRET;
use crate::store::{Store, StoreError};

/// Validity of a device certificate, seconds.
pub const CERT_VALIDITY_S: u64 = 30 * 24 * 3600;
/// How far back a certificate's validity starts, to absorb clock skew, seconds.
pub const CERT_BACKDATE_S: u64 = 60;

/// The store secret holding the CA key (the audit log verifies checkpoints with it).
const LIBP2P_SECRET: &str = "libp2p_ed25519_seed";
const X25519_SECRET: &str = "x25519";

/// Why the identity could not be created or loaded, or a certificate not issued.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    /// The store failed (includes "identity already exists" as a conflict).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored secret has the wrong length.
    #[error("stored identity secret {0} is malformed")]
    Malformed(&'static str),
    /// The libp2p key could not be built from the stored seed.
    #[error("libp2p identity is unusable")]
    Libp2p,
    /// The certificate could not be signed (bad id or window).
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// The coordinator's secrets and what derives from them.
pub struct Identity {
    ca: SigningKey,
    libp2p_seed: Zeroizing<[u8; 32]>,
    x25519_secret: Zeroizing<[u8; 32]>,
    x25519_public: [u8; 32],
    peer_id: PeerId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("ca_public", &hex::encode(self.ca_public()))
            .field("peer_id", &self.peer_id)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

fn to_array(bytes: &[u8], what: &'static str) -> Result<Zeroizing<[u8; 32]>, CaError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| CaError::Malformed(what))?;
    Ok(Zeroizing::new(arr))
}

impl Identity {
    fn from_secrets(
        ca: Zeroizing<[u8; 32]>,
        libp2p_seed: Zeroizing<[u8; 32]>,
        x25519_secret: Zeroizing<[u8; 32]>,
    ) -> Result<Identity, CaError> {
        let ca = SigningKey::from_bytes(&ca);
        let x25519_public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*x25519_secret))
                .to_bytes();
        let mut seed = *libp2p_seed;
        let peer_id = Keypair::ed25519_from_bytes(&mut seed)
            .map_err(|_| CaError::Libp2p)?
            .public()
            .to_peer_id();
        Ok(Identity {
            ca,
            libp2p_seed,
            x25519_secret,
            x25519_public,
            peer_id,
        })
    }

    /// Generates fresh secrets and stores them (encrypted) in `store`.
    ///
    /// # Errors
    /// [`CaError::Store`] with [`StoreError::Conflict`] when an identity already exists.
    pub fn create(store: &Store) -> Result<Identity, CaError> {
        let (ca, seed, x) = (random_key(), random_key(), random_key());
        let identity = Identity::from_secrets(ca.clone(), seed.clone(), x.clone())?;
        store.put_secret(CA_SECRET, ca.as_slice())?;
        store.put_secret(LIBP2P_SECRET, seed.as_slice())?;
        store.put_secret(X25519_SECRET, x.as_slice())?;
        store.flush()?;
        Ok(identity)
    }

    /// Loads the identity `init` stored.
    ///
    /// # Errors
    /// [`CaError::Store`] ([`StoreError::NotFound`] when the directory was never
    /// initialised, [`StoreError::Crypto`] when a secret does not decrypt),
    /// [`CaError::Malformed`], [`CaError::Libp2p`].
    pub fn load(store: &Store) -> Result<Identity, CaError> {
        let ca = to_array(&store.secret(CA_SECRET)?, "ca")?;
        let seed = to_array(&store.secret(LIBP2P_SECRET)?, "libp2p")?;
        let x = to_array(&store.secret(X25519_SECRET)?, "x25519")?;
        Identity::from_secrets(ca, seed, x)
    }

    /// The CA's signing key.
    pub fn ca_signing_key(&self) -> &SigningKey {
        &self.ca
    }

    /// The CA's public key.
    pub fn ca_public(&self) -> [u8; 32] {
        self.ca.verifying_key().to_bytes()
    }

    /// Hex sha256 of the CA public key, for people to compare.
    pub fn ca_fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.ca_public()))
    }

    /// The coordinator's libp2p keypair (ed25519, from the stored seed).
    pub fn libp2p_keypair(&self) -> Keypair {
        let mut seed = *self.libp2p_seed;
        // The seed was checked when the identity was built.
        Keypair::ed25519_from_bytes(&mut seed).expect("seed validated at load")
    }

    /// The coordinator's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The X25519 secret that seals label envelopes.
    pub fn x25519_secret(&self) -> &Zeroizing<[u8; 32]> {
        &self.x25519_secret
    }

    /// The X25519 public key agents expect envelopes from.
    pub fn x25519_public(&self) -> [u8; 32] {
        self.x25519_public
    }
}

/// Who a device certificate is for.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSubject<'a> {
    /// The device id.
    pub device_id: &'a str,
    /// Its tenant.
    pub tenant_id: &'a str,
    /// Its site.
    pub site_id: &'a str,
    /// Its ed25519 key (libp2p identity).
    pub ed25519_public: [u8; 32],
    /// Its X25519 key (sealed envelopes).
    pub x25519_public: [u8; 32],
}

/// Signs a certificate for a device, with the next serial from the store, valid from
/// `now_s - 60 s` to `now_s + validity_s` ([`CERT_VALIDITY_S`] by default).
///
/// # Errors
/// [`CaError::Store`] when no serial can be taken, [`CaError::Cert`] when an id breaks the
/// identifier rules.
pub fn issue_certificate(
    identity: &Identity,
    store: &Store,
    subject: &DeviceSubject<'_>,
    now_s: u64,
    validity_s: u64,
) -> Result<Certificate, CaError> {
    let serial = store.next_serial()?;
    let body = CertificateBody {
        version: sealprint_protocol::cert::CERT_VERSION,
        serial,
        device_id: subject.device_id.to_owned(),
        tenant_id: subject.tenant_id.to_owned(),
        site_id: subject.site_id.to_owned(),
        ed25519_public: subject.ed25519_public,
        x25519_public: subject.x25519_public,
        not_before: now_s.saturating_sub(CERT_BACKDATE_S),
        not_after: now_s.saturating_add(validity_s),
        issuer: identity.ca_public(),
    };
    Ok(Certificate::sign(body, identity.ca_signing_key())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::MasterKey;
    use sealprint_protocol::Expectation;

    #[test]
    fn create_load_and_issue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = MasterKey::generate();
        let store = Store::open(dir.path(), master.clone()).expect("store");
        let id = Identity::create(&store).expect("identity");
        assert!(matches!(
            Identity::create(&store),
            Err(CaError::Store(StoreError::Conflict))
        ));
        let again = Identity::load(&store).expect("loads");
        assert_eq!(again.ca_public(), id.ca_public());
        assert_eq!(again.peer_id(), id.peer_id());
        assert_eq!(again.libp2p_keypair().public().to_peer_id(), id.peer_id());
        assert_eq!(again.x25519_public(), id.x25519_public());
        assert!(!format!("{id:?}").contains(&hex::encode(&id.x25519_secret()[..])));

        let now = 1_700_000_000;
        let subject = |device_id, key| DeviceSubject {
            device_id,
            tenant_id: "tnt-1",
            site_id: "site-1",
            ed25519_public: [key; 32],
            x25519_public: [key + 1; 32],
        };
        let c1 = issue_certificate(&id, &store, &subject("dev-1", 1), now, CERT_VALIDITY_S)
            .expect("issued");
        let c2 = issue_certificate(&id, &store, &subject("dev-2", 3), now, CERT_VALIDITY_S)
            .expect("issued");
        assert!(c2.body.serial > c1.body.serial);
        assert_eq!(c1.body.not_before, now - 60);
        assert_eq!(c1.body.not_after, now + 30 * 24 * 3600);
        let ca = ed25519_dalek::VerifyingKey::from_bytes(&id.ca_public()).expect("key");
        let never = |_: &sealprint_protocol::CertificateBody| false;
        c1.verify(
            &ca,
            &Expectation {
                tenant_id: "tnt-1",
                site_id: Some("site-1"),
                is_revoked: &never,
            },
            now,
        )
        .expect("verifies");
        assert!(
            issue_certificate(&id, &store, &subject("bad id", 0), now, CERT_VALIDITY_S).is_err()
        );
    }

    #[test]
    fn wrong_master_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
            Identity::create(&store).expect("identity");
            store.flush().expect("flush");
        }
        assert!(matches!(
            Store::reopen(dir.path(), &MasterKey::generate()),
            Err(StoreError::WrongMasterKey)
        ));
    }
}
