//! One-time enrollment tokens.
//!
//! A token carries a 32-byte one-time secret, the tenant and site the device will join, an
//! expiry, and how to reach the coordinator: its libp2p multiaddrs and PeerId, so the agent
//! pins the coordinator on first contact (no trust on first use). It prints as one string,
//! `sptok1.` followed by unpadded base64url of a postcard encoding, which a person can copy
//! and paste into `sealprint-agent enroll`.
//!
//! The coordinator stores only [`EnrollmentToken::secret_hash`], never the secret.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ident::validate_id;

const PREFIX: &str = "sptok1.";
/// Longest token string accepted.
pub const MAX_TOKEN_LEN: usize = 4096;
const SECRET_HASH_DOMAIN: &[u8] = b"sealprint/enrollment-secret/v1\0";

/// Why a token string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The string does not start with `sptok1.`.
    #[error("not a sealprint enrollment token (expected the sptok1. prefix)")]
    BadPrefix,
    /// The string is longer than [`MAX_TOKEN_LEN`].
    #[error("token is too long")]
    TooLong,
    /// The text after the prefix is not base64url.
    #[error("token is not valid base64url")]
    BadBase64,
    /// The decoded bytes are not a token.
    #[error("token is malformed")]
    Malformed,
    /// The token's expiry has passed.
    #[error("token expired")]
    Expired,
}

/// An enrollment token. The secret is wiped from memory on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct EnrollmentToken {
    /// The one-time secret.
    pub secret: [u8; 32],
    /// Tenant the device joins.
    pub tenant_id: String,
    /// Site the device joins.
    pub site_id: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The coordinator's libp2p PeerId (base58), pinned by the agent.
    pub coordinator_peer_id: String,
    /// Multiaddrs at which the coordinator's mesh endpoint listens.
    pub coordinator_addrs: Vec<String>,
    /// The release public key (ed25519) the agent will trust for updates, when the
    /// coordinator has one configured. It travels as 32 bytes after the postcard body (not a
    /// postcard field), so a token without it encodes exactly as before.
    #[serde(skip)]
    pub release_public: Option<[u8; 32]>,
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("secret", &"<redacted>")
            .field("tenant_id", &self.tenant_id)
            .field("site_id", &self.site_id)
            .field("expires_at", &self.expires_at)
            .field("coordinator_peer_id", &self.coordinator_peer_id)
            .field("coordinator_addrs", &self.coordinator_addrs)
            .field("release_public", &self.release_public.map(hex::encode))
            .finish()
    }
}

impl EnrollmentToken {
    /// The hash under which the coordinator stores the token.
    pub fn secret_hash(&self) -> [u8; 32] {
        Self::hash_secret(&self.secret)
    }

    /// Hashes a secret as [`EnrollmentToken::secret_hash`] does.
    pub fn hash_secret(secret: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SECRET_HASH_DOMAIN);
        h.update(secret);
        h.finalize().into()
    }

    /// Checks the token has not expired at `now` (unix seconds).
    ///
    /// # Errors
    /// [`TokenError::Expired`].
    pub fn check_fresh(&self, now: u64) -> Result<(), TokenError> {
        if now > self.expires_at {
            Err(TokenError::Expired)
        } else {
            Ok(())
        }
    }

    fn validate(&self) -> Result<(), TokenError> {
        validate_id(&self.tenant_id).map_err(|_| TokenError::Malformed)?;
        validate_id(&self.site_id).map_err(|_| TokenError::Malformed)?;
        if self.coordinator_peer_id.is_empty()
            || self.coordinator_peer_id.len() > 128
            || self.coordinator_addrs.is_empty()
            || self.coordinator_addrs.len() > 16
            || self.coordinator_addrs.iter().any(|a| a.len() > 256)
        {
            return Err(TokenError::Malformed);
        }
        Ok(())
    }
}

impl fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes =
            zeroize::Zeroizing::new(postcard::to_allocvec(self).map_err(|_| fmt::Error)?);
        if let Some(key) = &self.release_public {
            bytes.extend_from_slice(key);
        }
        write!(f, "{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes.as_slice()))
    }
}

impl FromStr for EnrollmentToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let body = s.strip_prefix(PREFIX).ok_or(TokenError::BadPrefix)?;
        let bytes = zeroize::Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| TokenError::BadBase64)?,
        );
        let (mut token, rest): (EnrollmentToken, &[u8]) =
            postcard::take_from_bytes(&bytes).map_err(|_| TokenError::Malformed)?;
        token.release_public = match rest.len() {
            0 => None,
            32 => Some(rest.try_into().map_err(|_| TokenError::Malformed)?),
            _ => return Err(TokenError::Malformed),
        };
        token.validate()?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> EnrollmentToken {
        EnrollmentToken {
            secret: [5u8; 32],
            tenant_id: "tnt-1".into(),
            site_id: "site-1".into(),
            expires_at: 1_700_000_000,
            coordinator_peer_id: "12D3KooWExample".into(),
            coordinator_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            release_public: None,
        }
    }

    #[test]
    fn a_release_key_travels_after_the_body() {
        let mut t = token();
        t.release_public = Some([9u8; 32]);
        let s = t.to_string();
        assert!(s.starts_with(&token().to_string()[..40]));
        assert_eq!(s.parse::<EnrollmentToken>(), Ok(t));
        // One byte more or less than a key is refused.
        let mut bytes = URL_SAFE_NO_PAD
            .decode(s.strip_prefix(PREFIX).expect("prefix"))
            .expect("base64");
        bytes.pop();
        let cut = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(cut.parse::<EnrollmentToken>(), Err(TokenError::Malformed));
    }

    #[test]
    fn roundtrip_and_golden() {
        let s = token().to_string();
        assert!(s.starts_with("sptok1."));
        assert_eq!(s.parse::<EnrollmentToken>(), Ok(token()));
        assert_eq!(
            s,
            "sptok1.BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFdG50LTEGc2l0ZS0xgOLPqgYPMTJEM0tvb1dFeGFtcGxlARcvaXA0LzEyNy4wLjAuMS90Y3AvNDAwMQ"
        );
    }

    #[test]
    fn debug_redacts_secret() {
        let d = format!("{:?}", token());
        assert!(d.contains("<redacted>"));
        assert!(!d.contains("5, 5"));
    }

    #[test]
    fn garbage_is_typed() {
        assert_eq!("x".parse::<EnrollmentToken>(), Err(TokenError::BadPrefix));
        assert_eq!(
            "sptok1.!!".parse::<EnrollmentToken>(),
            Err(TokenError::BadBase64)
        );
        assert_eq!(
            "sptok1.AAAA".parse::<EnrollmentToken>(),
            Err(TokenError::Malformed)
        );
        let long = format!("sptok1.{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(long.parse::<EnrollmentToken>(), Err(TokenError::TooLong));
        assert_eq!(token().check_fresh(1_700_000_001), Err(TokenError::Expired));
        assert_eq!(token().check_fresh(1_700_000_000), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = s.parse::<EnrollmentToken>();
        }
    }
}
