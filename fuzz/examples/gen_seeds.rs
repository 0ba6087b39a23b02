//! Writes a handful of small, valid encodings per fuzz target into `seeds/<target>/`,
//! built with the protocol's own API and the fixed keys of `sealprint_fuzz`.
//!
//! Run from `fuzz/`: `cargo +nightly run --example gen_seeds`. Envelope seeds change on every
//! run (sealing uses a fresh ephemeral key); the others are deterministic.

use std::fs;
use std::path::Path;

use sealprint_fuzz::{
    ca_key, coordinator_x25519_secret, device_signing_key, device_x25519_secret, x25519_public,
    DEVICE_ID, MAX_FRAME, NOW_MS, NOW_S,
};
use sealprint_protocol::{
    encode_frame, seal, Certificate, CertificateBody, EnrollRequest, Enrolled, EnrollmentToken,
    ErrorCode, Forward, Heartbeat, HeartbeatReply, Hello, JobHeader, JobOutcome, LabelFormat,
    MeshPeerReport, OutcomeStatement, PrintReceipt, PrinterReport, PrinterStatus, PrinterVerdict,
    ReceiptState, RelayReply, Relayed, Request, Response, RevocationList, SealedJob, SignedOutcome,
    SignedReply, SignedRevocations,
};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("create seed dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn cert(serial: u64, device: &str, site: &str) -> Certificate {
    let body = CertificateBody {
        version: 1,
        serial,
        device_id: device.into(),
        tenant_id: "tnt-1".into(),
        site_id: site.into(),
        ed25519_public: device_signing_key().verifying_key().to_bytes(),
        x25519_public: x25519_public(device_x25519_secret()),
        not_before: NOW_S - 3600,
        not_after: NOW_S + 86_400,
        issuer: [0; 32],
    };
    Certificate::sign(body, &ca_key()).expect("valid body")
}

fn header(job: &str, attempt: u32) -> JobHeader {
    JobHeader {
        job_id: job.into(),
        tenant_id: "tnt-1".into(),
        site_id: "site-1".into(),
        device_id: DEVICE_ID.into(),
        printer: "zebra-1".into(),
        deadline_ms: NOW_MS + 60_000,
        attempt,
    }
}

fn sealed(job: &str, format: LabelFormat, data: &[u8]) -> SealedJob {
    let recipient = x25519_public(device_x25519_secret());
    seal(
        header(job, 1),
        format,
        data,
        &coordinator_x25519_secret(),
        &recipient,
    )
    .expect("seals")
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        device_id: DEVICE_ID.into(),
        seq: 7,
        version: "0.1.0".into(),
        uptime_s: 42,
        clock_ms: NOW_MS,
        printers: vec![PrinterReport {
            name: "zebra-1".into(),
            pool: "default".into(),
            uri: "socket://10.0.0.5:9100".into(),
            verdict: PrinterVerdict::Verified,
            reason: "serial matches".into(),
            identity: Some("XXZ1234".into()),
            status: PrinterStatus::Ready,
        }],
        peers: vec![MeshPeerReport {
            device_id: "dev-2".into(),
            has_uplink: true,
        }],
        receipts: vec![PrintReceipt {
            job_id: "job-0".into(),
            attempt: 1,
            state: ReceiptState::Done(JobOutcome::Printed {
                job_id: "job-0".into(),
                printer: "zebra-1".into(),
            }),
            at_ms: NOW_MS - 1000,
        }],
        findings: vec![],
    }
}

fn relayed(hb: &Heartbeat) -> Relayed {
    Relayed::sign(
        DEVICE_ID,
        &Request::Heartbeat(hb.clone()),
        &device_signing_key(),
    )
    .expect("signs")
}

fn frame_seed(dir: u8, frame: Vec<u8>) -> Vec<u8> {
    let mut out = vec![dir];
    out.extend(frame);
    out
}

fn main() {
    // cert: canonical encodings.
    write("cert", "site-1", &cert(42, "dev-1", "site-1").encode());
    write("cert", "site-2", &cert(7, "station_B.2", "site-2").encode());
    write(
        "cert",
        "long-ids",
        &cert(u64::MAX, &"d".repeat(64), &"s".repeat(64)).encode(),
    );

    // token: printable strings.
    let token = |addrs: Vec<&str>, expires_at| EnrollmentToken {
        secret: [9u8; 32],
        tenant_id: "tnt-1".into(),
        site_id: "site-1".into(),
        expires_at,
        coordinator_peer_id: "12D3KooWExampleCoordinatorPeerId".into(),
        coordinator_addrs: addrs.into_iter().map(String::from).collect(),
        release_public: None,
    };
    write(
        "token",
        "one-addr",
        token(vec!["/ip4/10.0.0.1/tcp/4001"], NOW_S)
            .to_string()
            .as_bytes(),
    );
    write(
        "token",
        "two-addrs",
        token(
            vec!["/ip4/10.0.0.1/tcp/4001", "/dns/coord.example/tcp/4001"],
            0,
        )
        .to_string()
        .as_bytes(),
    );

    // envelope: postcard-encoded sealed jobs the target's keys open.
    let small = sealed("job-1", LabelFormat::Zpl, b"^XA^FO50,50^FDhello^FS^XZ");
    write(
        "envelope",
        "zpl",
        &postcard::to_allocvec(&small).expect("encodes"),
    );
    let pdf = sealed("job-2", LabelFormat::Pdf, b"%PDF-1.4\n%%EOF\n");
    write(
        "envelope",
        "pdf",
        &postcard::to_allocvec(&pdf).expect("encodes"),
    );
    let png = sealed("job-3", LabelFormat::Png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    write(
        "envelope",
        "png",
        &postcard::to_allocvec(&png).expect("encodes"),
    );

    // relay: postcard-encoded signed heartbeats.
    let hb = heartbeat();
    write(
        "relay",
        "heartbeat",
        &postcard::to_allocvec(&relayed(&hb)).expect("encodes"),
    );
    let empty = Heartbeat {
        printers: vec![],
        peers: vec![],
        receipts: vec![],
        ..hb.clone()
    };
    write(
        "relay",
        "empty-heartbeat",
        &postcard::to_allocvec(&relayed(&empty)).expect("encodes"),
    );

    // frame: direction byte (0 = request, 1 = response) then one or more frames.
    let req = |m: &Request| encode_frame(m, MAX_FRAME).expect("encodes");
    let resp = |m: &Response| encode_frame(m, MAX_FRAME).expect("encodes");
    let hello = Hello {
        certificate: cert(42, "dev-1", "site-1").encode(),
        has_uplink: true,
    };
    let requests = [
        ("req-hello", Request::Hello(hello.clone())),
        (
            "req-enroll",
            Request::Enroll(EnrollRequest {
                token_secret: [9u8; 32],
                x25519_public: x25519_public(device_x25519_secret()),
                hostname: "station-1".into(),
                version: "0.1.0".into(),
            }),
        ),
        ("req-heartbeat", Request::Heartbeat(hb.clone())),
        ("req-job", Request::Job(small.clone())),
        (
            "req-forward",
            Request::Forward(Forward {
                device_id: DEVICE_ID.into(),
                job: pdf.clone(),
            }),
        ),
        ("req-relay", Request::Relay(relayed(&empty))),
    ];
    for (name, m) in &requests {
        write("frame", name, &frame_seed(0, req(m)));
    }
    let mut two = req(&requests[0].1);
    two.extend(req(&requests[2].1));
    write("frame", "req-two-frames", &frame_seed(0, two));
    let revocations = SignedRevocations::sign(
        RevocationList {
            tenant_id: "tnt-1".into(),
            version: 2,
            devices: vec!["dev-3".into(), "dev-5".into()],
        },
        &ca_key(),
    )
    .expect("signs");
    let reply = SignedReply::sign(
        HeartbeatReply {
            device_id: DEVICE_ID.into(),
            heartbeat_seq: 7,
            now_ms: NOW_MS,
            revocations: revocations.clone(),
            renewed_certificate: Some(cert(43, "dev-1", "site-1").encode()),
            min_version: "0.1.0".into(),
            accepted_identities: vec![],
        },
        &ca_key(),
    )
    .expect("signs");
    let outcome = |attempt, outcome| {
        let statement = OutcomeStatement {
            attempt,
            device_id: DEVICE_ID.into(),
            outcome,
            envelope: small.digest().expect("digest"),
        };
        SignedOutcome::sign(statement, &device_signing_key()).expect("signs")
    };
    let printed = outcome(
        1,
        JobOutcome::Printed {
            job_id: "job-1".into(),
            printer: "zebra-1".into(),
        },
    );
    let in_doubt = outcome(
        2,
        JobOutcome::InDoubt {
            job_id: "job-1".into(),
            reason: "printer went silent".into(),
        },
    );
    for (name, o) in [("printed", &printed), ("in-doubt", &in_doubt)] {
        write("outcome", name, &postcard::to_allocvec(o).expect("encodes"));
    }
    write(
        "reply",
        "reply",
        &postcard::to_allocvec(&reply).expect("encodes"),
    );
    write(
        "reply",
        "revocations",
        &postcard::to_allocvec(&revocations).expect("encodes"),
    );
    let responses = [
        ("resp-ok", Response::Ok),
        ("resp-hello", Response::Hello(hello)),
        (
            "resp-enrolled",
            Response::Enrolled(Enrolled {
                certificate: cert(42, "dev-1", "site-1").encode(),
                ca_public: ca_key().verifying_key().to_bytes(),
                coordinator_x25519: x25519_public(coordinator_x25519_secret()),
            }),
        ),
        ("resp-heartbeat", Response::HeartbeatReply(reply.clone())),
        ("resp-outcome", Response::Outcome(in_doubt.clone())),
        (
            "resp-relayed",
            Response::Relayed(RelayReply::HeartbeatReply(reply)),
        ),
        (
            "resp-error",
            Response::Error {
                code: ErrorCode::BadToken,
                message: "token expired".into(),
            },
        ),
    ];
    for (name, m) in &responses {
        write("frame", name, &frame_seed(1, resp(m)));
    }
    println!("seeds written");
}
