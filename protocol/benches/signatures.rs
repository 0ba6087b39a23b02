//! Benchmark of the per-label cost of the signed messages against a rogue site peer: the
//! agent signs the outcome of each label it was sent, and the coordinator verifies it
//! (`verify_strict`); beside them, for scale, sealing a label to its agent (Noise X), which
//! every label paid before outcomes were signed. Prints a table; no harness.
//!
//! `cargo bench -p sealprint-protocol --bench signatures`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use sealprint_protocol::message::{JobOutcome, OutcomeStatement, SignedOutcome};
use sealprint_protocol::{seal, JobHeader, LabelFormat, OutcomeExpectation};

/// Runs `f` for about `budget`, after a warm-up; returns the mean time per call. The caller
/// takes the best of several rounds, so a busy machine shows as noise between rounds, not as
/// a cost.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..200 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed() / n
}

fn statement(envelope: [u8; 32]) -> OutcomeStatement {
    OutcomeStatement {
        attempt: 1,
        device_id: "dev-0123456789abcdef".into(),
        outcome: JobOutcome::Printed {
            job_id: "job-0123456789abcdef0123456789abcdef".into(),
            printer: "zebra-1".into(),
        },
        envelope,
    }
}

fn main() {
    let budget = Duration::from_millis(500);
    let device = SigningKey::from_bytes(&[7u8; 32]);
    let device_pk = device.verifying_key().to_bytes();
    let envelope = [9u8; 32];
    let signed = SignedOutcome::sign(statement(envelope), &device).expect("signs");
    let expect = OutcomeExpectation {
        job_id: "job-0123456789abcdef0123456789abcdef",
        attempt: 1,
        device_id: "dev-0123456789abcdef",
        device_key: &device_pk,
        envelope: &envelope,
    };

    let label = {
        let mut l = b"^XA^FO50,50^FDbench^FS^GFA,".to_vec();
        l.resize(12 * 1024, b'F');
        l.extend_from_slice(b"^XZ");
        l
    };
    let sender = [3u8; 32];
    let recipient = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([5u8; 32]));
    let header = JobHeader {
        job_id: "job-0123456789abcdef0123456789abcdef".into(),
        tenant_id: "tnt-1".into(),
        site_id: "site-1".into(),
        device_id: "dev-0123456789abcdef".into(),
        printer: "zebra-1".into(),
        deadline_ms: u64::MAX / 2,
        attempt: 1,
    };
    let (mut sign, mut verify, mut sealing) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        sign = sign.min(time(budget, || {
            black_box(SignedOutcome::sign(statement(envelope), black_box(&device)).expect("signs"));
        }));
        verify = verify.min(time(budget, || {
            black_box(black_box(&signed).verify(&expect).expect("verifies"));
        }));
        sealing = sealing.min(time(budget, || {
            black_box(
                seal(
                    header.clone(),
                    LabelFormat::Zpl,
                    black_box(&label),
                    &sender,
                    recipient.as_bytes(),
                )
                .expect("seals"),
            );
        }));
    }

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("per label (best of 5 rounds)             mean µs");
    println!("agent: sign the outcome (ed25519)       {:>8.1}", us(sign));
    println!(
        "coordinator: verify it (verify_strict)  {:>8.1}",
        us(verify)
    );
    println!(
        "coordinator: seal a 12 KiB label (Noise X, for scale) {:>8.1}",
        us(sealing)
    );
}
