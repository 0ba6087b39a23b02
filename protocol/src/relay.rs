//! Messages an agent without an uplink sends to the coordinator through a site peer.
//!
//! The originating device signs the encoded request with its ed25519 key (the one its
//! certificate names), under a domain-separation prefix. The relay can carry the message but
//! not change or forge it; the coordinator verifies the signature against the certificate of
//! the device the message claims to come from.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::codec::decode_payload;
use crate::message::{Relayed, Request};

const DOMAIN: &[u8] = b"sealprint/relayed-uplink/v1\0";
/// Largest relayed payload.
pub const MAX_RELAYED: usize = 1024 * 1024;

/// Why a relayed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The signature is missing, malformed or does not verify.
    #[error("bad signature on relayed message")]
    BadSignature,
    /// The payload is too large.
    #[error("relayed message too large")]
    TooLarge,
    /// The payload is not a request, or is one that may not be relayed.
    #[error("relayed payload is not a relayable request")]
    Invalid,
}

fn signed_message(device_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&(device_id.len() as u64).to_be_bytes());
    m.extend_from_slice(device_id.as_bytes());
    m.extend_from_slice(payload);
    m
}

fn relayable(req: &Request) -> bool {
    matches!(req, Request::Heartbeat(_))
}

impl Relayed {
    /// Signs `request` (a heartbeat) as `device_id`.
    ///
    /// # Errors
    /// [`RelayError::Invalid`] for a request that may not be relayed, or
    /// [`RelayError::TooLarge`].
    pub fn sign(
        device_id: &str,
        request: &Request,
        key: &SigningKey,
    ) -> Result<Relayed, RelayError> {
        if !relayable(request) {
            return Err(RelayError::Invalid);
        }
        let payload = postcard::to_allocvec(request).map_err(|_| RelayError::Invalid)?;
        if payload.len() > MAX_RELAYED {
            return Err(RelayError::TooLarge);
        }
        let signature = key
            .sign(&signed_message(device_id, &payload))
            .to_bytes()
            .to_vec();
        Ok(Relayed {
            device_id: device_id.to_owned(),
            payload,
            signature,
        })
    }

    /// Verifies the signature with the device's key and returns the request.
    ///
    /// # Errors
    /// [`RelayError`] saying what is wrong.
    pub fn verify(&self, device_key: &[u8; 32]) -> Result<Request, RelayError> {
        if self.payload.len() > MAX_RELAYED {
            return Err(RelayError::TooLarge);
        }
        let key = VerifyingKey::from_bytes(device_key).map_err(|_| RelayError::BadSignature)?;
        let sig: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| RelayError::BadSignature)?;
        key.verify_strict(
            &signed_message(&self.device_id, &self.payload),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| RelayError::BadSignature)?;
        let req: Request = decode_payload(&self.payload).map_err(|_| RelayError::Invalid)?;
        if !relayable(&req) {
            return Err(RelayError::Invalid);
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Heartbeat;

    fn hb() -> Request {
        Request::Heartbeat(Heartbeat {
            device_id: "dev-1".into(),
            seq: 1,
            version: "0.1.0".into(),
            uptime_s: 5,
            clock_ms: 1,
            printers: vec![],
            peers: vec![],
            receipts: vec![],
            findings: vec![],
        })
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = SigningKey::from_bytes(&[4u8; 32]);
        let pk = key.verifying_key().to_bytes();
        let r = Relayed::sign("dev-1", &hb(), &key).expect("signs");
        assert_eq!(r.verify(&pk), Ok(hb()));
        let mut other = r.clone();
        other.device_id = "dev-2".into();
        assert_eq!(other.verify(&pk), Err(RelayError::BadSignature));
        let mut flipped = r.clone();
        flipped.payload[3] ^= 1;
        assert_eq!(flipped.verify(&pk), Err(RelayError::BadSignature));
        let wrong = SigningKey::from_bytes(&[5u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(r.verify(&wrong), Err(RelayError::BadSignature));
        let job_like = Request::Hello(crate::Hello {
            certificate: vec![],
            has_uplink: false,
        });
        assert_eq!(
            Relayed::sign("dev-1", &job_like, &key),
            Err(RelayError::Invalid)
        );
    }

    #[test]
    fn an_update_report_signed_by_its_own_device_is_still_not_relayable() {
        // A compromised station signs a `running` report with its own key and hands it to a
        // relay: the coordinator would hold that device out of dispatch for a handover, so
        // such a report must come on the device's own connection, never relayed.
        let key = SigningKey::from_bytes(&[4u8; 32]);
        let report = Request::Update(crate::UpdateRequest::Report(crate::UpdateReport {
            version: "0.1.1".into(),
            step: crate::UpdateStep::Running,
            reason: String::new(),
        }));
        let payload = postcard::to_allocvec(&report).expect("encodes");
        let signature = key
            .sign(&signed_message("dev-1", &payload))
            .to_bytes()
            .to_vec();
        let forged = Relayed {
            device_id: "dev-1".into(),
            payload,
            signature,
        };
        let pk = key.verifying_key().to_bytes();
        assert_eq!(forged.verify(&pk), Err(RelayError::Invalid));
    }
}
