//! `envelope::open` on a `SealedJob` postcard-decoded from arbitrary bytes, with fixed keys:
//! never panics, and only an envelope that opens yields a label of the announced size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::{
    coordinator_x25519_secret, device_x25519_secret, x25519_public, DEVICE_ID, NOW_MS,
};
use sealprint_protocol::{open, SealedJob};

fuzz_target!(|data: &[u8]| {
    let Ok(sealed) = postcard::from_bytes::<SealedJob>(data) else {
        return;
    };
    let sender = x25519_public(coordinator_x25519_secret());
    if let Ok(label) = open(&sealed, &device_x25519_secret(), &sender, DEVICE_ID, NOW_MS) {
        assert_eq!(label.job_id, sealed.header.job_id);
        assert!(!label.data.is_empty());
    }
});
