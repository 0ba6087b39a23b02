//! The billing webhook on arbitrary input `header\nbody`: the `t=…,v1=…` signature parser and
//! verifier, and the event parser. Never panics; a header is accepted only when it carries
//! the signature `sign` makes for the body at its timestamp, within the tolerance; our own
//! signature of the body verifies, and stops verifying a moment past the tolerance; an
//! accepted subscription event names a valid tenant id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_coordinator::core::compliance::billing::{
    parse_event, sign, verify_signature, BillingEvent, SignatureError, TOLERANCE_S,
};

const SECRET: &[u8] = b"whsec_fuzz";
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if verify_signature(SECRET, Some(header), body, NOW).is_ok() {
        let t: u64 = header
            .split(',')
            .filter_map(|p| p.trim().strip_prefix("t="))
            .last()
            .and_then(|t| t.parse().ok())
            .expect("an accepted header's last timestamp is the one checked");
        assert!(t.abs_diff(NOW) <= TOLERANCE_S);
        let ours = sign(SECRET, body, t);
        let mac = ours.split_once(",v1=").expect("t=…,v1=…").1;
        assert!(
            header
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("v1="))
                .any(|v| v.eq_ignore_ascii_case(mac)),
            "accepted without our MAC: {header:?}"
        );
    }
    let ours = sign(SECRET, body, NOW);
    assert_eq!(verify_signature(SECRET, Some(&ours), body, NOW), Ok(()));
    assert_eq!(
        verify_signature(SECRET, Some(&ours), body, NOW + TOLERANCE_S + 1),
        Err(SignatureError::Stale)
    );
    assert_eq!(
        verify_signature(b"another secret", Some(&ours), body, NOW),
        Err(SignatureError::Mismatch)
    );
    if let Ok(BillingEvent::Subscription { tenant_id, .. }) = parse_event(body) {
        assert!(sealprint_protocol::validate_id(&tenant_id).is_ok());
    }
});
