//! `Certificate::decode` on arbitrary bytes: never panics, and whatever it accepts is
//! canonical (re-encodes to the same bytes) and can be verified without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::{ca_key, NOW_S};
use sealprint_protocol::{Certificate, Expectation};

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = Certificate::decode(data) else {
        return;
    };
    assert_eq!(cert.encode(), data, "accepted certificate is not canonical");
    let not_revoked = |_: &sealprint_protocol::CertificateBody| false;
    let expect = Expectation {
        tenant_id: "tnt-1",
        site_id: Some("site-1"),
        is_revoked: &not_revoked,
    };
    let _ = cert.verify(&ca_key().verifying_key(), &expect, NOW_S);
    let _ = cert.fingerprint();
});
