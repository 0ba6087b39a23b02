//! Benchmark of the SP-API label path per label size: decode (base64, gunzip, MD5 checksum,
//! magic), encrypt at rest under the tenant key (AES-256-GCM), and seal to the agent (Noise
//! X envelope). Prints a table; no harness.
//!
//! `cargo bench -p sealprint-coordinator --bench spapi_label`

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use rand::RngCore;
use sealprint_coordinator::core::crypto::DataKey;
use sealprint_coordinator::services::spapi::decode_label;
use sealprint_protocol::{seal, JobHeader, LabelFormat};

/// A ZPL label of about `size` bytes: text fields and a graphic field of random-ish hex, so
/// it compresses like a real label with a logo (about 2:1), not like zeros.
fn zpl(size: usize) -> Vec<u8> {
    let mut out = b"^XA^CF0,30^FO50,50^FDShip to: bench^FS^FO50,200^GFA,".to_vec();
    let mut rng = rand::thread_rng();
    let mut raw = [0u8; 64];
    while out.len() + 3 < size {
        rng.fill_bytes(&mut raw);
        // Half the bytes zero: a sparse bitmap.
        for b in raw.iter_mut().step_by(2) {
            *b = 0;
        }
        out.extend_from_slice(hex::encode_upper(raw).as_bytes());
    }
    out.truncate(size - 3);
    out.extend_from_slice(b"^XZ");
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn time<T>(iters: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed() / iters
}

fn main() {
    let key = DataKey::generate();
    let mut sender = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut sender);
    let recipient = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([7u8; 32]));
    let header = JobHeader {
        job_id: "job-bench".into(),
        tenant_id: "tnt-bench".into(),
        site_id: "site-bench".into(),
        device_id: "dev-bench".into(),
        printer: "dev-bench.zebra".into(),
        deadline_ms: 0,
        attempt: 1,
    };
    println!(
        "{:>9} {:>9} {:>11} {:>11} {:>11} {:>11} {:>10}",
        "label", "gzip", "decode_ms", "at_rest_ms", "seal_ms", "total_ms", "MiB/s"
    );
    for size in [4 << 10, 64 << 10, 512 << 10, 2 << 20, 7 << 20] {
        let label = zpl(size);
        let z = gz(&label);
        let contents = STANDARD.encode(&z);
        let checksum = STANDARD.encode(Md5::digest(&z));
        let iters = (64 << 20) / size.max(1) as u32;
        let iters = iters.clamp(3, 2000);
        let decode = time(iters, || {
            decode_label(&contents, "application/zpl", Some(&checksum)).expect("decodes")
        });
        let decoded = decode_label(&contents, "application/zpl", Some(&checksum)).expect("ok");
        assert_eq!(decoded.bytes.as_slice(), label.as_slice());
        let at_rest = time(iters, || {
            key.seal(b"sealprint/label/v1\0tnt\0job", &decoded.bytes)
        });
        let sealed = time(iters, || {
            seal(
                header.clone(),
                LabelFormat::Zpl,
                &decoded.bytes,
                &sender,
                recipient.as_bytes(),
            )
            .expect("seals")
        });
        let total = decode + at_rest + sealed;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:>8}K {:>8}K {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>10.1}",
            size >> 10,
            z.len() >> 10,
            ms(decode),
            ms(at_rest),
            ms(sealed),
            ms(total),
            size as f64 / (1 << 20) as f64 / total.as_secs_f64()
        );
    }
}
