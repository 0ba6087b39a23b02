//! Fixed keys and identities shared by the fuzz targets and the seed generator
//! (`examples/gen_seeds.rs`), so that committed seeds get past the cheap checks (right
//! device, deadline not passed, right signer) and the fuzzer starts deep in each decoder.
//!
//! These keys are public test fixtures: they never protect anything.

use ed25519_dalek::SigningKey;
use x25519_dalek::{PublicKey, StaticSecret};

/// The device the envelope target opens jobs as.
pub const DEVICE_ID: &str = "dev-1";
/// The "now" of the envelope target, unix milliseconds; seeds have a later deadline.
pub const NOW_MS: u64 = 1_700_000_000_000;
/// The "now" of the cert target, unix seconds.
pub const NOW_S: u64 = 1_700_000_000;
/// The largest frame the frame target accepts (small, so length checks are reachable).
pub const MAX_FRAME: usize = 64 * 1024;

/// The coordinator CA's signing key.
pub fn ca_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// The device's ed25519 key (the one relayed messages are signed with).
pub fn device_signing_key() -> SigningKey {
    SigningKey::from_bytes(&[4u8; 32])
}

/// The coordinator's X25519 secret (the sender of sealed jobs).
pub fn coordinator_x25519_secret() -> [u8; 32] {
    [1u8; 32]
}

/// The device's X25519 secret (the recipient of sealed jobs).
pub fn device_x25519_secret() -> [u8; 32] {
    [2u8; 32]
}

/// The X25519 public key of `secret`.
pub fn x25519_public(secret: [u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(secret)).to_bytes()
}
