//! SP-API answers on arbitrary bytes, read as the coordinator reads them: the first byte
//! picks the model (MFN shipment, Shipping v2 purchase, Shipping v2 documents, error list,
//! LWA token, RDT token); the label is then taken out and decoded as the fetch does. Never
//! panics; error codes are kept only in their sanitised form; an accepted label's magic is
//! its format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_coordinator::services::spapi::auth::{LwaResponse, RdtResponse};
use sealprint_coordinator::services::spapi::error::sanitise_code;
use sealprint_coordinator::services::spapi::label::{decode_label, sniff};
use sealprint_coordinator::services::spapi::model::{
    ErrorList, MfnShipmentResponse, V2Documents, V2Purchase, V2Response,
};

fn label(contents: &str, file_type: &str, checksum: Option<&str>) {
    if let Ok(l) = decode_label(contents, file_type, checksum) {
        assert_eq!(sniff(&l.bytes), Some(l.format));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    match sel % 6 {
        0 => {
            let Ok(r) = serde_json::from_slice::<MfnShipmentResponse>(body) else {
                return;
            };
            let Some(s) = r.payload else { return };
            if let Some(fc) = s.label.and_then(|l| l.file_contents) {
                label(&fc.contents.0, &fc.file_type, Some(&fc.checksum));
            }
            if let Some(status) = s.status {
                let code = sanitise_code(&status);
                assert!(code.len() <= 64 && code.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
        1 => {
            let Ok(r) = serde_json::from_slice::<V2Response<V2Purchase>>(body) else {
                return;
            };
            let Some(p) = r.payload else { return };
            if let Some(doc) = p.package_document_details.first().and_then(|d| d.label()) {
                assert!(doc.kind.eq_ignore_ascii_case("LABEL"));
                label(&doc.contents.0, &doc.format, None);
            }
        }
        2 => {
            let Ok(r) = serde_json::from_slice::<V2Response<V2Documents>>(body) else {
                return;
            };
            let Some(d) = r.payload else { return };
            if let Some(doc) = d.package_document_detail.label() {
                label(&doc.contents.0, &doc.format, None);
            }
        }
        3 => {
            let Ok(list) = serde_json::from_slice::<ErrorList>(body) else {
                return;
            };
            for e in &list.errors {
                let code = sanitise_code(&e.code);
                assert!(!code.is_empty() && code.len() <= 64, "{code:?}");
                assert!(
                    code.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
                    "{code:?}"
                );
            }
        }
        4 => {
            let _ = serde_json::from_slice::<LwaResponse>(body);
        }
        _ => {
            let _ = serde_json::from_slice::<RdtResponse>(body);
        }
    }
});
