//! `SignedReply::verify` and `SignedRevocations::verify` on values postcard-decoded from
//! arbitrary bytes: never panic, and accept nothing the CA did not sign. What decodes is then
//! re-signed with the CA key: verify must accept it once for its own heartbeat counter and
//! refuse it as stale after (no replay).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::ca_key;
use sealprint_protocol::{SignedReply, SignedRevocations};

fuzz_target!(|data: &[u8]| {
    let ca = ca_key();
    let public = ca.verifying_key().to_bytes();
    if let Ok(list) = postcard::from_bytes::<SignedRevocations>(data) {
        let _ = list.verify(&public, &list.list.tenant_id);
    }
    let Ok(signed) = postcard::from_bytes::<SignedReply>(data) else {
        return;
    };
    let r = &signed.reply;
    let tenant = r.revocations.list.tenant_id.clone();
    let _ = signed.verify(&public, &r.device_id, &tenant, 0, u64::MAX);

    let mut reply = signed.reply.clone();
    let Ok(list) = SignedRevocations::sign(reply.revocations.list.clone(), &ca) else {
        return; // bad ids or too long: refused at signing
    };
    reply.revocations = list;
    let Ok(resigned) = SignedReply::sign(reply, &ca) else {
        return;
    };
    let seq = resigned.reply.heartbeat_seq;
    let device = resigned.reply.device_id.clone();
    if seq == 0 {
        assert!(resigned.verify(&public, &device, &tenant, 0, 0).is_err());
        return;
    }
    assert!(resigned
        .verify(&public, &device, &tenant, seq - 1, seq)
        .is_ok());
    assert!(
        resigned
            .verify(&public, &device, &tenant, seq, seq)
            .is_err(),
        "a reply applied twice"
    );
});
