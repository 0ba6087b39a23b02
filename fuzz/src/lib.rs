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

/// The PNG file signature.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// CRC-32 (ISO-HDLC, as PNG chunks use it), bit by bit: the inputs are small.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A copy of `data` whose PNG chunks carry their right CRCs, when `data` starts with the
/// PNG signature (unchanged otherwise), so that a fuzzer's mutations reach the decoder
/// instead of dying at the CRC check. A chunk cut short is left as it is.
pub fn fix_png_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if !out.starts_with(PNG_SIGNATURE) {
        return out;
    }
    let mut pos = PNG_SIGNATURE.len();
    while let Some(head) = out.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = (pos + 8).checked_add(len) else {
            break;
        };
        if end + 4 > out.len() {
            break;
        }
        let crc = crc32(&[&out[pos + 4..end]]);
        out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end + 4;
    }
    out
}
