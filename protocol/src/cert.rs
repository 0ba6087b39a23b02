//! Device certificates: the coordinator CA's ed25519 signature over a device's identity.
//!
//! A certificate binds a device id, tenant, site, the device's ed25519 key (its libp2p
//! PeerId) and its X25519 key (for sealed envelopes) to a validity window and a serial.
//!
//! The encoding is canonical and is both the wire form and what is signed: a fixed field
//! order, big-endian integers, length-prefixed ids, no optional parts, no trailing bytes.
//! The signature covers a domain-separation prefix followed by the body encoding, so a
//! certificate signature can never be replayed as any other sealprint signature. Signatures
//! are checked with `verify_strict` (no malleable or small-order keys).
//!
//! This module does not decide who is revoked or what time it is: the caller passes both.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ident::validate_id;

/// The only certificate version this crate reads and writes.
pub const CERT_VERSION: u8 = 1;
/// Prefix of every signed certificate body.
const SIGNING_DOMAIN: &[u8] = b"sealprint/device-certificate/v1\0";
/// Largest encoded certificate: 1 + 8 + 3*(1+64) + 32*3 + 8*2 + 64.
pub const MAX_CERT_LEN: usize = 1 + 8 + 3 * 65 + 32 * 3 + 16 + 64;

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// The bytes are not a well-formed certificate.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// The certificate names a version this crate does not know.
    #[error("unsupported certificate version {0}")]
    UnsupportedVersion(u8),
    /// The certificate was issued by another CA.
    #[error("certificate issued by another ca")]
    WrongCa,
    /// The signature does not verify under the CA key.
    #[error("bad certificate signature")]
    BadSignature,
    /// The certificate (its device) is revoked; the serial is the certificate's.
    #[error("certificate serial {0} is revoked")]
    Revoked(u64),
    /// `now` is before `not_before`.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// `now` is after `not_after`.
    #[error("certificate expired")]
    Expired,
    /// The certificate belongs to another tenant.
    #[error("certificate belongs to another tenant")]
    WrongTenant,
    /// The certificate belongs to another site.
    #[error("certificate belongs to another site")]
    WrongSite,
    /// The certificate is for another key than the one the connection authenticated.
    #[error("certificate is for another device key")]
    WrongKey,
}

/// The signed part of a device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateBody {
    /// Encoding version; always [`CERT_VERSION`].
    pub version: u8,
    /// Unique serial, used for revocation.
    pub serial: u64,
    /// The device's id.
    pub device_id: String,
    /// The tenant the device belongs to.
    pub tenant_id: String,
    /// The site (warehouse) the device belongs to.
    pub site_id: String,
    /// The device's ed25519 public key; its libp2p PeerId embeds this key.
    pub ed25519_public: [u8; 32],
    /// The device's X25519 public key, to which labels are sealed.
    pub x25519_public: [u8; 32],
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity (inclusive), unix seconds.
    pub not_after: u64,
    /// The issuing CA's ed25519 public key.
    pub issuer: [u8; 32],
}

/// A CA-signed device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// What is certified.
    pub body: CertificateBody,
    /// ed25519 signature of the CA over the domain prefix and the body encoding.
    pub signature: [u8; 64],
}

/// What a verifier expects of a certificate besides a valid signature and time window.
pub struct Expectation<'a> {
    /// The tenant the certificate must belong to.
    pub tenant_id: &'a str,
    /// The site it must belong to, when the verifier is a site peer (`None` for the
    /// coordinator, which serves every site).
    pub site_id: Option<&'a str>,
    /// Says whether a certificate is revoked (the revocation lists name devices, so every
    /// certificate ever issued to a revoked device is refused, whatever its serial).
    pub is_revoked: &'a dyn Fn(&CertificateBody) -> bool,
}

impl CertificateBody {
    /// The canonical encoding of the body (what is signed, minus the domain prefix).
    ///
    /// # Errors
    /// [`CertError::Malformed`] when an id breaks the identifier rules.
    pub fn encode(&self) -> Result<Vec<u8>, CertError> {
        let mut out = Vec::with_capacity(MAX_CERT_LEN);
        out.push(self.version);
        out.extend_from_slice(&self.serial.to_be_bytes());
        for id in [&self.device_id, &self.tenant_id, &self.site_id] {
            validate_id(id).map_err(|_| CertError::Malformed("bad identifier"))?;
            // validate_id caps ids at 64 bytes, so the length fits a u8.
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(&self.ed25519_public);
        out.extend_from_slice(&self.x25519_public);
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&self.issuer);
        Ok(out)
    }

    fn signed_message(&self) -> Result<Vec<u8>, CertError> {
        let mut msg = SIGNING_DOMAIN.to_vec();
        msg.extend_from_slice(&self.encode()?);
        Ok(msg)
    }
}

impl Certificate {
    /// Signs `body` with the CA key. The body's `issuer` is set to the CA's public key.
    ///
    /// # Errors
    /// [`CertError::Malformed`] when an id breaks the identifier rules, or the window is
    /// empty.
    pub fn sign(mut body: CertificateBody, ca: &SigningKey) -> Result<Certificate, CertError> {
        if body.not_after < body.not_before {
            return Err(CertError::Malformed("validity window is empty"));
        }
        body.version = CERT_VERSION;
        body.issuer = ca.verifying_key().to_bytes();
        let signature = ca.sign(&body.signed_message()?).to_bytes();
        Ok(Certificate { body, signature })
    }

    /// The wire form: body encoding followed by the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        // A certificate is only built by `sign` or `decode`, both of which validated its ids.
        let mut out = self.body.encode().unwrap_or_default();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the wire form. Checks shape only; see [`Certificate::verify`].
    ///
    /// # Errors
    /// [`CertError::Malformed`] or [`CertError::UnsupportedVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Certificate, CertError> {
        if bytes.len() > MAX_CERT_LEN {
            return Err(CertError::Malformed("too long"));
        }
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != CERT_VERSION {
            return Err(CertError::UnsupportedVersion(version));
        }
        let serial = r.u64()?;
        let device_id = r.id()?;
        let tenant_id = r.id()?;
        let site_id = r.id()?;
        let ed25519_public = r.array::<32>()?;
        let x25519_public = r.array::<32>()?;
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        let issuer = r.array::<32>()?;
        let signature = r.array::<64>()?;
        if !r.0.is_empty() {
            return Err(CertError::Malformed("trailing bytes"));
        }
        Ok(Certificate {
            body: CertificateBody {
                version,
                serial,
                device_id,
                tenant_id,
                site_id,
                ed25519_public,
                x25519_public,
                not_before,
                not_after,
                issuer,
            },
            signature,
        })
    }

    /// Verifies the certificate for use at `now` (unix seconds).
    ///
    /// Checks, in order: issuer is `ca`, signature (`verify_strict`), revocation, validity
    /// window, tenant, site.
    ///
    /// # Errors
    /// The first failed check as a [`CertError`].
    pub fn verify(
        &self,
        ca: &VerifyingKey,
        expect: &Expectation<'_>,
        now: u64,
    ) -> Result<(), CertError> {
        if self.body.issuer != ca.to_bytes() {
            return Err(CertError::WrongCa);
        }
        let signature = Signature::from_bytes(&self.signature);
        ca.verify_strict(&self.body.signed_message()?, &signature)
            .map_err(|_| CertError::BadSignature)?;
        if (expect.is_revoked)(&self.body) {
            return Err(CertError::Revoked(self.body.serial));
        }
        if now < self.body.not_before {
            return Err(CertError::NotYetValid);
        }
        if now > self.body.not_after {
            return Err(CertError::Expired);
        }
        if self.body.tenant_id != expect.tenant_id {
            return Err(CertError::WrongTenant);
        }
        if let Some(site) = expect.site_id {
            if self.body.site_id != site {
                return Err(CertError::WrongSite);
            }
        }
        Ok(())
    }

    /// Checks that the certificate is for the ed25519 key a connection authenticated.
    ///
    /// # Errors
    /// [`CertError::WrongKey`] when the keys differ.
    pub fn check_key(&self, ed25519_public: &[u8; 32]) -> Result<(), CertError> {
        if &self.body.ed25519_public == ed25519_public {
            Ok(())
        } else {
            Err(CertError::WrongKey)
        }
    }

    /// SHA-256 of the wire form, hex; safe to log.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.encode()))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CertError> {
        if self.0.len() < n {
            return Err(CertError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CertError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, CertError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CertError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn id(&mut self) -> Result<String, CertError> {
        let len = usize::from(self.u8()?);
        let raw = self.take(len)?;
        let id = std::str::from_utf8(raw).map_err(|_| CertError::Malformed("bad identifier"))?;
        validate_id(id).map_err(|_| CertError::Malformed("bad identifier"))?;
        Ok(id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn body() -> CertificateBody {
        CertificateBody {
            version: CERT_VERSION,
            serial: 42,
            device_id: "dev-1".into(),
            tenant_id: "tnt-1".into(),
            site_id: "site-1".into(),
            ed25519_public: [1u8; 32],
            x25519_public: [2u8; 32],
            not_before: 1_000,
            not_after: 2_000,
            issuer: [0u8; 32],
        }
    }

    fn none_revoked(_: &CertificateBody) -> bool {
        false
    }

    fn expect<'a>(
        site: Option<&'a str>,
        revoked: &'a dyn Fn(&CertificateBody) -> bool,
    ) -> Expectation<'a> {
        Expectation {
            tenant_id: "tnt-1",
            site_id: site,
            is_revoked: revoked,
        }
    }

    #[test]
    fn sign_encode_decode_verify() {
        let cert = Certificate::sign(body(), &ca()).expect("valid body");
        let back = Certificate::decode(&cert.encode()).expect("decodes");
        assert_eq!(back, cert);
        let e = expect(Some("site-1"), &none_revoked);
        assert_eq!(back.verify(&ca().verifying_key(), &e, 1_500), Ok(()));
    }

    #[test]
    fn golden_vector() {
        // Pinned so that an accidental change of the canonical encoding is caught.
        let cert = Certificate::sign(body(), &ca()).expect("valid body");
        assert_eq!(
            cert.fingerprint(),
            "d25ca2b1a2611e1b1427d940b83cc1a178b5c90ccb9c377d18bbaa8999abcb69"
        );
    }

    #[test]
    fn typed_verdicts() {
        let ca = ca();
        let cert = Certificate::sign(body(), &ca).expect("valid body");
        let vk = ca.verifying_key();
        let e = expect(Some("site-1"), &none_revoked);
        assert_eq!(cert.verify(&vk, &e, 999), Err(CertError::NotYetValid));
        assert_eq!(cert.verify(&vk, &e, 2_001), Err(CertError::Expired));
        let other = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        assert_eq!(cert.verify(&other, &e, 1_500), Err(CertError::WrongCa));
        let revoked = |b: &CertificateBody| b.device_id == "dev-1";
        let e2 = expect(Some("site-1"), &revoked);
        assert_eq!(cert.verify(&vk, &e2, 1_500), Err(CertError::Revoked(42)));
        let e3 = expect(Some("site-2"), &none_revoked);
        assert_eq!(cert.verify(&vk, &e3, 1_500), Err(CertError::WrongSite));
        let e4 = Expectation {
            tenant_id: "tnt-2",
            site_id: None,
            is_revoked: &none_revoked,
        };
        assert_eq!(cert.verify(&vk, &e4, 1_500), Err(CertError::WrongTenant));
        let mut forged = cert.clone();
        forged.body.site_id = "site-2".into();
        let e5 = expect(Some("site-2"), &none_revoked);
        assert_eq!(forged.verify(&vk, &e5, 1_500), Err(CertError::BadSignature));
        assert_eq!(cert.check_key(&[1u8; 32]), Ok(()));
        assert_eq!(cert.check_key(&[3u8; 32]), Err(CertError::WrongKey));
    }

    #[test]
    fn garbage_is_typed() {
        assert_eq!(
            Certificate::decode(&[]),
            Err(CertError::Malformed("truncated"))
        );
        assert_eq!(
            Certificate::decode(&[9, 0, 0]),
            Err(CertError::UnsupportedVersion(9))
        );
        let mut bytes = Certificate::sign(body(), &ca()).expect("valid").encode();
        bytes.push(0);
        assert_eq!(
            Certificate::decode(&bytes),
            Err(CertError::Malformed("trailing bytes"))
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Certificate::decode(&bytes);
        }

        #[test]
        fn roundtrip(serial in 0u64.., nb in 0u64..1<<40, len in 0u64..1<<30, dev in "[a-z0-9-]{1,64}") {
            let mut b = body();
            b.serial = serial;
            b.not_before = nb;
            b.not_after = nb + len;
            b.device_id = dev;
            let cert = Certificate::sign(b, &ca()).expect("valid");
            proptest::prop_assert_eq!(Certificate::decode(&cert.encode()), Ok(cert));
        }
    }
}
