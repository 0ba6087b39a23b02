//! `Relayed::verify` on a `Relayed` postcard-decoded from arbitrary bytes: never panics, and
//! refuses anything not signed by the device key. The payload is also re-signed with the
//! device key and verified, so the request decoder behind the signature check is fuzzed too.
#![no_main]

use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::device_signing_key;
use sealprint_protocol::{Relayed, Request};

// Mirrors the private signing format of protocol/src/relay.rs. Should it drift, the re-signed
// message merely fails with BadSignature (less coverage, never a false crash).
const DOMAIN: &[u8] = b"sealprint/relayed-uplink/v1\0";

fuzz_target!(|data: &[u8]| {
    let Ok(mut relayed) = postcard::from_bytes::<Relayed>(data) else {
        return;
    };
    let key = device_signing_key();
    let public = key.verifying_key().to_bytes();
    let _ = relayed.verify(&public);

    // Sign what the fuzzer made, as the device would: the signature now holds, so verify
    // must decide on the payload alone.
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(&(relayed.device_id.len() as u64).to_be_bytes());
    msg.extend_from_slice(relayed.device_id.as_bytes());
    msg.extend_from_slice(&relayed.payload);
    relayed.signature = key.sign(&msg).to_bytes().to_vec();
    match relayed.verify(&public) {
        Ok(req) => {
            assert!(
                matches!(req, Request::Heartbeat(_)),
                "only heartbeats are relayable"
            );
            let resigned = Relayed::sign(&relayed.device_id, &req, &key).expect("re-signs");
            assert_eq!(resigned.verify(&public), Ok(req));
        }
        // Too large, not a request, or not a relayable one: refused, which is all we ask.
        Err(_) => {}
    }
});
