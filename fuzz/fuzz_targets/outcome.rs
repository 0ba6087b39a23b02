//! `SignedOutcome::verify` on a `SignedOutcome` postcard-decoded from arbitrary bytes: never
//! panics, and accepts nothing not signed by the device key. The statement is then re-signed
//! with the device key: verify must accept exactly that, for exactly its own job, attempt,
//! device and envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::device_signing_key;
use sealprint_protocol::{OutcomeExpectation, SignedOutcome};

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = postcard::from_bytes::<SignedOutcome>(data) else {
        return;
    };
    let key = device_signing_key();
    let public = key.verifying_key().to_bytes();
    let s = signed.statement.clone();
    let expect = OutcomeExpectation {
        job_id: s.outcome.job_id(),
        attempt: s.attempt,
        device_id: &s.device_id,
        device_key: &public,
        envelope: &s.envelope,
    };
    let _ = signed.verify(&expect);

    let Ok(resigned) = SignedOutcome::sign(s.clone(), &key) else {
        return; // bad ids: refused at signing, which is all we ask
    };
    let r = resigned.statement.clone();
    let own = OutcomeExpectation {
        job_id: r.outcome.job_id(),
        attempt: r.attempt,
        device_id: &r.device_id,
        device_key: &public,
        envelope: &r.envelope,
    };
    assert_eq!(resigned.verify(&own), Ok(&r.outcome));
    let other = OutcomeExpectation {
        attempt: r.attempt.wrapping_add(1),
        ..own
    };
    assert!(resigned.verify(&other).is_err(), "another attempt accepted");
});
