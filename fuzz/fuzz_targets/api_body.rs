//! The admin API's JSON request bodies on arbitrary bytes: the first byte picks the body
//! (`BODIES`), parsed with the API's own parser; label uploads also go through the label's
//! base64 decoding and magic check, and every label request through the routing and
//! monitoring peeks. Never panics; accepted base64 is canonical (re-encodes to the same text)
//! and 1..=MAX_LABEL_LEN bytes; the canary check sees every order id the request carries
//! (the upload's `order_id`, MFN's `shipment_request.AmazonOrderId`, one-click's
//! `channelDetails.amazonOrderDetails.orderId`), as the forwarded JSON holds it; a reprint is
//! always routed to SP-API.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sealprint_coordinator::api::fuzzing::{
    label_base64, label_matches, label_route, named_orders, parse_body, BODIES,
};
use sealprint_protocol::envelope::MAX_LABEL_LEN;
use sealprint_protocol::LabelFormat;
use serde_json::Value;

fn upload(body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(b64) = v.get("content_base64").and_then(Value::as_str) else {
        return;
    };
    let Ok(label) = label_base64(b64) else {
        return;
    };
    assert!((1..=MAX_LABEL_LEN).contains(&label.len()));
    assert_eq!(
        STANDARD.encode(&label[..]),
        b64,
        "non-canonical base64 accepted"
    );
    for f in [LabelFormat::Pdf, LabelFormat::Png, LabelFormat::Zpl] {
        let _ = label_matches(f, &label);
    }
}

/// The order ids the JSON as forwarded holds (serde_json keeps the last of duplicate keys).
fn forwarded_orders(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    [
        "/order_id",
        "/shipment_request/AmazonOrderId",
        "/channelDetails/amazonOrderDetails/orderId",
    ]
    .iter()
    .filter_map(|p| v.pointer(p).and_then(Value::as_str))
    .map(|o| o.trim().to_owned())
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let kind = usize::from(sel) % BODIES.len();
    let parsed = parse_body(kind, body).expect("every kind below BODIES.len() parses");
    if !matches!(BODIES[kind], "label_upload" | "label_spapi_source") {
        return;
    }
    if BODIES[kind] == "label_upload" && parsed.is_ok() {
        upload(body);
    }
    let (spapi, reprint) = label_route(body);
    assert!(!reprint || spapi, "a reprint not routed to SP-API");
    if parsed.is_ok() {
        let seen = named_orders(body);
        for order in forwarded_orders(body) {
            assert!(
                seen.contains(&order),
                "order {order:?} is sent on but the canary check sees {seen:?}"
            );
        }
    }
});
