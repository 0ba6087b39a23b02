//! The Ed25519 release key: generation, its hex text form, and the public key's short id.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ReleaseError;

/// The private release key. Its `Debug` shows only the public key's id.
pub struct ReleaseKey(SigningKey);

/// The public release key, the one thing an installer or updater trusts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReleasePublicKey(VerifyingKey);

fn parse_32(text: &str, what: &'static str) -> Result<Zeroizing<[u8; 32]>, ReleaseError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), out.as_mut_slice())
        .map_err(|_| ReleaseError::MalformedKey { what })?;
    Ok(out)
}

impl ReleaseKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> ReleaseKey {
        ReleaseKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Parses the 64 hex digits of the secret seed (surrounding whitespace allowed).
    ///
    /// # Errors
    /// [`ReleaseError::MalformedKey`] when the text is not 32 hex-encoded bytes.
    pub fn from_hex(text: &str) -> Result<ReleaseKey, ReleaseError> {
        let seed = parse_32(text, "private release key")?;
        Ok(ReleaseKey(SigningKey::from_bytes(&seed)))
    }

    /// The secret seed as 64 hex digits, for the key file (zeroized when dropped).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// The matching public key.
    pub fn public(&self) -> ReleasePublicKey {
        ReleasePublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(bytes).to_bytes()
    }
}

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleaseKey(id {})", self.public().id())
    }
}

impl ReleasePublicKey {
    /// Parses the 64 hex digits of the public key.
    ///
    /// # Errors
    /// [`ReleaseError::MalformedKey`] when the text is not a valid Ed25519 public key.
    pub fn from_hex(text: &str) -> Result<ReleasePublicKey, ReleaseError> {
        let what = "public release key";
        let bytes = parse_32(text, what)?;
        VerifyingKey::from_bytes(&bytes)
            .map(ReleasePublicKey)
            .map_err(|_| ReleaseError::MalformedKey { what })
    }

    /// The public key's 32 bytes (as an enrollment token carries them).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key from its 32 bytes.
    ///
    /// # Errors
    /// [`ReleaseError::MalformedKey`] when the bytes are not a valid Ed25519 public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<ReleasePublicKey, ReleaseError> {
        VerifyingKey::from_bytes(bytes)
            .map(ReleasePublicKey)
            .map_err(|_| ReleaseError::MalformedKey {
                what: "public release key",
            })
    }

    /// The public key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// A short id: the first 8 bytes of the key's SHA-256, in hex. It names the key in a
    /// manifest so that a wrong key is told apart from a bad signature; it proves nothing.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub(crate) fn verify(&self, bytes: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify(bytes, &sig).is_ok()
    }
}

impl std::fmt::Debug for ReleasePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleasePublicKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        let key = ReleaseKey::generate();
        let again = ReleaseKey::from_hex(&format!("{}\n", key.to_hex().as_str())).expect("parses");
        assert_eq!(key.public(), again.public());
        let public = ReleasePublicKey::from_hex(&key.public().to_hex()).expect("parses");
        assert_eq!(public, key.public());
        assert_eq!(public.id().len(), 16);
        assert!(ReleaseKey::from_hex("abcd").is_err());
        assert!(ReleasePublicKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{key:?}").contains(key.to_hex().as_str()));
    }
}
