//! Wire compatibility of heartbeat replies with agents already deployed.
//!
//! A reply travels as postcard, which is not self-describing, inside a [`SignedReply`] whose
//! signature covers the exact encoding of the body, in a frame whose decoder refuses trailing
//! bytes. These tests pin down why the next minimum version is announced inside the existing
//! `min_version` string rather than in a new field.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use ed25519_dalek::Signer;

use super::{signed_message, ReplyError, REPLY_DOMAIN};
use crate::codec::{decode_payload, FrameError};
use crate::message::{HeartbeatReply, RevocationList, SignedReply, SignedRevocations};
use crate::version::{Announced, Requirement, Version};
use crate::Response;

fn ca() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn reply(min_version: String) -> HeartbeatReply {
    let list = RevocationList {
        tenant_id: "tnt-1".into(),
        version: 0,
        devices: Vec::new(),
    };
    HeartbeatReply {
        device_id: "dev-1".into(),
        heartbeat_seq: 5,
        now_ms: 1_000,
        revocations: SignedRevocations::sign(list, &ca()).expect("signs"),
        renewed_certificate: None,
        min_version,
        accepted_identities: Vec::new(),
    }
}

/// `HeartbeatReply` as it would be with a new trailing field.
#[derive(Serialize, Deserialize)]
struct ExtendedReply {
    device_id: String,
    heartbeat_seq: u64,
    now_ms: u64,
    revocations: SignedRevocations,
    renewed_certificate: Option<Vec<u8>>,
    min_version: String,
    accepted_identities: Vec<crate::AcceptedIdentity>,
    next_min_version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ExtendedSigned {
    reply: ExtendedReply,
    signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum ExtendedResponse {
    Ok,
    Hello(crate::Hello),
    Enrolled(crate::Enrolled),
    HeartbeatReply(ExtendedSigned),
}

#[test]
fn a_new_reply_field_would_break_deployed_agents() {
    let old = reply("0.1.0".into());
    let extended = ExtendedReply {
        device_id: old.device_id.clone(),
        heartbeat_seq: old.heartbeat_seq,
        now_ms: old.now_ms,
        revocations: old.revocations.clone(),
        renewed_certificate: None,
        min_version: old.min_version.clone(),
        accepted_identities: Vec::new(),
        next_min_version: Some("0.2.0".into()),
    };
    let signature = ca()
        .sign(&signed_message(REPLY_DOMAIN, &extended).expect("encodes"))
        .to_bytes()
        .to_vec();
    let wire = postcard::to_allocvec(&ExtendedResponse::HeartbeatReply(ExtendedSigned {
        reply: extended,
        signature: signature.clone(),
    }))
    .expect("encodes");
    // The deployed agents' decoder (today's shape): the new field's bytes are read as the
    // signature, and what is left over is refused. The whole reply (revocations, renewed
    // certificate) would be lost on every heartbeat.
    assert!(matches!(
        decode_payload::<Response>(&wire),
        Err(FrameError::Trailing)
    ));
    // Even a decoder that skipped the new field could not verify the reply: the signature
    // covers bytes the old shape does not re-encode.
    let skipped = SignedReply {
        reply: old,
        signature,
    };
    let pk = ca().verifying_key().to_bytes();
    assert_eq!(
        skipped.verify(&pk, "dev-1", "tnt-1", 4, 5),
        Err(ReplyError::BadSignature)
    );
}

#[test]
fn the_announcement_in_min_version_reaches_deployed_agents_unchanged() {
    let requirement = Requirement {
        min: Version::new(0, 1, 0),
        next: Some(Announced {
            min: Version::new(0, 2, 0),
            from_s: 1_767_225_600,
        }),
    };
    let signed = SignedReply::sign(reply(requirement.encode()), &ca()).expect("signs");
    let wire = postcard::to_allocvec(&Response::HeartbeatReply(signed)).expect("encodes");
    // Decoded with the deployed agents' shape (the same struct, unchanged) and verified with
    // their code: nothing about the reply changes for them.
    let Ok(Response::HeartbeatReply(back)) = decode_payload::<Response>(&wire) else {
        panic!("an old agent decodes the reply");
    };
    let pk = ca().verifying_key().to_bytes();
    let r = back.verify(&pk, "dev-1", "tnt-1", 4, 5).expect("verifies");
    // A new agent reads the announcement from it.
    assert_eq!(Requirement::parse(&r.min_version), Ok(requirement));
}
