//! The link between a device certificate and a libp2p PeerId: an ed25519 PeerId embeds the
//! raw 32-byte public key (identity multihash), so a certificate that names the key names the
//! peer, and the key the Noise handshake authenticated can be read back from the PeerId.

use libp2p::identity::{ed25519, PublicKey};
use libp2p::PeerId;
use thiserror::Error;

/// Why a key or PeerId could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerKeyError {
    /// The bytes are not an ed25519 public key.
    #[error("not an ed25519 public key")]
    BadKey,
    /// The PeerId does not embed an ed25519 key.
    #[error("peer id does not embed an ed25519 key")]
    NotEd25519,
}

/// The PeerId of a device whose ed25519 public key is `key`.
///
/// # Errors
/// [`PeerKeyError::BadKey`] when `key` is not a valid ed25519 point.
pub fn peer_id_of_ed25519(key: &[u8; 32]) -> Result<PeerId, PeerKeyError> {
    let pk = ed25519::PublicKey::try_from_bytes(key).map_err(|_| PeerKeyError::BadKey)?;
    Ok(PeerId::from_public_key(&PublicKey::from(pk)))
}

/// The ed25519 public key embedded in `peer`.
///
/// # Errors
/// [`PeerKeyError::NotEd25519`] for PeerIds of other key types (hashed, not embedded).
pub fn ed25519_of_peer(peer: &PeerId) -> Result<[u8; 32], PeerKeyError> {
    let mh = peer.as_ref();
    // Identity multihash (code 0) of the protobuf-encoded public key.
    if mh.code() != 0 {
        return Err(PeerKeyError::NotEd25519);
    }
    let pk = PublicKey::try_decode_protobuf(mh.digest()).map_err(|_| PeerKeyError::NotEd25519)?;
    let ed = pk
        .try_into_ed25519()
        .map_err(|_| PeerKeyError::NotEd25519)?;
    Ok(ed.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let kp = libp2p::identity::Keypair::ed25519_from_bytes([3u8; 32]).expect("32 bytes");
        let peer = kp.public().to_peer_id();
        let key = ed25519_of_peer(&peer).expect("ed25519 peer");
        assert_eq!(peer_id_of_ed25519(&key), Ok(peer));
        assert_eq!(
            ed25519_of_peer(&PeerId::random()),
            Err(PeerKeyError::NotEd25519)
        );
    }
}
