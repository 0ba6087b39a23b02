//! Job outcomes signed by the device that opened the job.
//!
//! A relaying site peer carries a job's answer back to the coordinator. So that it can carry
//! the answer but not invent or change it, the destination agent signs, with its device key
//! (the ed25519 key its certificate names), the job, the delivery attempt, its own device id,
//! the outcome and the digest of the sealed envelope it opened ([`SealedJob::digest`]). Only
//! the destination device could have opened that envelope, so a signed outcome proves the
//! device saw this very attempt; the coordinator checks it against the key of the device the
//! job was sealed to and against the digest it computed when it sealed the job.
//!
//! The signed bytes are a domain-separation prefix followed by the postcard encoding of the
//! statement, so an outcome signature can never be replayed as any other sealprint signature.
//! Signatures are checked with `verify_strict`.
//!
//! [`SealedJob::digest`]: crate::envelope::SealedJob::digest

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::ident::validate_id;
use crate::message::{JobOutcome, OutcomeStatement, SignedOutcome};

const DOMAIN: &[u8] = b"sealprint/job-outcome/v1\0";
/// Longest reason an outcome may carry, in bytes (longer ones are cut when signing).
pub const MAX_REASON_LEN: usize = 256;

/// Why a signed outcome was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OutcomeError {
    /// The statement breaks the identifier rules (or is otherwise malformed).
    #[error("malformed signed outcome")]
    Malformed,
    /// The signature is missing, malformed or does not verify under the device's key.
    #[error("bad signature on job outcome")]
    BadSignature,
    /// The outcome is about another job, attempt, device or envelope than the one expected.
    #[error("outcome is for another {0}")]
    Mismatch(&'static str),
}

/// What the coordinator expects of the outcome of one attempt it sent.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeExpectation<'a> {
    /// The job.
    pub job_id: &'a str,
    /// The attempt sent.
    pub attempt: u32,
    /// The device the job was sealed to.
    pub device_id: &'a str,
    /// That device's ed25519 key (from its enrolled record).
    pub device_key: &'a [u8; 32],
    /// The digest of the envelope sent.
    pub envelope: &'a [u8; 32],
}

impl OutcomeStatement {
    fn validate(&self) -> Result<(), OutcomeError> {
        validate_id(&self.device_id).map_err(|_| OutcomeError::Malformed)?;
        validate_id(self.outcome.job_id()).map_err(|_| OutcomeError::Malformed)?;
        Ok(())
    }

    fn signed_message(&self) -> Result<Vec<u8>, OutcomeError> {
        let mut msg = DOMAIN.to_vec();
        msg.extend(postcard::to_allocvec(self).map_err(|_| OutcomeError::Malformed)?);
        Ok(msg)
    }
}

fn cut(reason: &mut String) {
    if reason.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
}

impl SignedOutcome {
    /// Signs `statement` with the device key. A reason longer than [`MAX_REASON_LEN`] is cut.
    ///
    /// # Errors
    /// [`OutcomeError::Malformed`] when an id breaks the identifier rules.
    pub fn sign(
        mut statement: OutcomeStatement,
        key: &SigningKey,
    ) -> Result<SignedOutcome, OutcomeError> {
        statement.validate()?;
        match &mut statement.outcome {
            JobOutcome::NotPrinted { reason, .. } | JobOutcome::InDoubt { reason, .. } => {
                cut(reason)
            }
            JobOutcome::Printed { printer, .. } => {
                validate_id(printer).map_err(|_| OutcomeError::Malformed)?
            }
        }
        let signature = key.sign(&statement.signed_message()?).to_bytes().to_vec();
        Ok(SignedOutcome {
            statement,
            signature,
        })
    }

    /// The job this outcome names (unverified until [`SignedOutcome::verify`]).
    pub fn job_id(&self) -> &str {
        self.statement.outcome.job_id()
    }

    /// Checks the signature under `expect.device_key` and that the statement is about the
    /// expected job, attempt, device and envelope; returns the outcome.
    ///
    /// # Errors
    /// [`OutcomeError`] saying what is wrong; nothing is returned then.
    pub fn verify(&self, expect: &OutcomeExpectation<'_>) -> Result<&JobOutcome, OutcomeError> {
        self.statement.validate()?;
        let key =
            VerifyingKey::from_bytes(expect.device_key).map_err(|_| OutcomeError::BadSignature)?;
        let sig: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| OutcomeError::BadSignature)?;
        key.verify_strict(
            &self.statement.signed_message()?,
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| OutcomeError::BadSignature)?;
        let s = &self.statement;
        if s.outcome.job_id() != expect.job_id {
            return Err(OutcomeError::Mismatch("job"));
        }
        if s.attempt != expect.attempt {
            return Err(OutcomeError::Mismatch("attempt"));
        }
        if s.device_id != expect.device_id {
            return Err(OutcomeError::Mismatch("device"));
        }
        if &s.envelope != expect.envelope {
            return Err(OutcomeError::Mismatch("envelope"));
        }
        Ok(&s.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[4u8; 32])
    }

    fn statement() -> OutcomeStatement {
        OutcomeStatement {
            attempt: 2,
            device_id: "dev-1".into(),
            outcome: JobOutcome::Printed {
                job_id: "job-1".into(),
                printer: "zebra-1".into(),
            },
            envelope: [9u8; 32],
        }
    }

    fn expect(pk: &[u8; 32]) -> OutcomeExpectation<'_> {
        OutcomeExpectation {
            job_id: "job-1",
            attempt: 2,
            device_id: "dev-1",
            device_key: pk,
            envelope: &[9u8; 32],
        }
    }

    #[test]
    fn sign_verify_and_every_tamper_is_refused() {
        let pk = key().verifying_key().to_bytes();
        let signed = SignedOutcome::sign(statement(), &key()).expect("signs");
        assert_eq!(signed.verify(&expect(&pk)), Ok(&statement().outcome));

        // A relay that turns "printed" into "not printed" (or back) breaks the signature.
        let mut flipped = signed.clone();
        flipped.statement.outcome = JobOutcome::NotPrinted {
            job_id: "job-1".into(),
            reason: "paper out".into(),
        };
        assert_eq!(
            flipped.verify(&expect(&pk)),
            Err(OutcomeError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[5u8; 32]);
        let forged = SignedOutcome::sign(statement(), &other).expect("signs");
        assert_eq!(forged.verify(&expect(&pk)), Err(OutcomeError::BadSignature));
        let mut short = signed.clone();
        short.signature.pop();
        assert_eq!(short.verify(&expect(&pk)), Err(OutcomeError::BadSignature));

        // A genuine outcome of another attempt, job or envelope is not this one's.
        let mut e = expect(&pk);
        e.attempt = 3;
        assert_eq!(signed.verify(&e), Err(OutcomeError::Mismatch("attempt")));
        let mut e = expect(&pk);
        e.job_id = "job-2";
        assert_eq!(signed.verify(&e), Err(OutcomeError::Mismatch("job")));
        let mut e = expect(&pk);
        e.envelope = &[8u8; 32];
        assert_eq!(signed.verify(&e), Err(OutcomeError::Mismatch("envelope")));
        let mut e = expect(&pk);
        e.device_id = "dev-2";
        assert_eq!(signed.verify(&e), Err(OutcomeError::Mismatch("device")));
    }

    #[test]
    fn bad_ids_are_refused_and_long_reasons_cut() {
        let mut s = statement();
        s.device_id = "../etc".into();
        assert_eq!(
            SignedOutcome::sign(s, &key()).err(),
            Some(OutcomeError::Malformed)
        );
        let mut s = statement();
        s.outcome = JobOutcome::InDoubt {
            job_id: "job-1".into(),
            reason: "é".repeat(200),
        };
        let signed = SignedOutcome::sign(s, &key()).expect("signs");
        match &signed.statement.outcome {
            JobOutcome::InDoubt { reason, .. } => assert!(reason.len() <= MAX_REASON_LEN),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn golden_vector() {
        // Pinned so that an accidental change of the signed encoding is caught.
        let signed = SignedOutcome::sign(statement(), &key()).expect("signs");
        let wire = postcard::to_allocvec(&signed).expect("encodes");
        assert_eq!(
            hex::encode(Sha256::digest(&wire)),
            "b51c0866606220f75d38243bcf6b608bb5d886e4cf43deff018a15dd325495a7"
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(attempt in 1u32.., job in "[a-z0-9-]{1,64}", reason in ".{0,300}") {
            let s = OutcomeStatement {
                attempt,
                device_id: "dev-1".into(),
                outcome: JobOutcome::NotPrinted { job_id: job.clone(), reason },
                envelope: [1u8; 32],
            };
            let signed = SignedOutcome::sign(s, &key()).expect("signs");
            let wire = postcard::to_allocvec(&signed).expect("encodes");
            let back: SignedOutcome = postcard::from_bytes(&wire).expect("decodes");
            proptest::prop_assert_eq!(&back, &signed);
            let pk = key().verifying_key().to_bytes();
            let e = OutcomeExpectation {
                job_id: &job, attempt, device_id: "dev-1", device_key: &pk, envelope: &[1u8; 32],
            };
            proptest::prop_assert!(back.verify(&e).is_ok());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(s) = postcard::from_bytes::<SignedOutcome>(&bytes) {
                let pk = key().verifying_key().to_bytes();
                let _ = s.verify(&expect(&pk));
            }
        }
    }
}
