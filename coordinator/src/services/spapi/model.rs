//! The parts of SP-API answers sealprint reads, as serde types.
//!
//! Only the fields used are declared; serde skips the rest without keeping it, so the buyer's
//! `ShipToAddress` in an MFN `Shipment` is never held in a typed value. Enumerations that
//! Amazon leaves empty or extends (`FileType`, `LabelFormat`, `format`) are plain strings and
//! are judged by the label decoder. Label contents are [`SecretString`]s (wiped on drop).
//! Error messages are not kept: only `code`, and whether the message is MFN's refusal of the
//! requested label format (decided while parsing; the text is wiped at once).

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::auth::SecretString;

/// `{"errors":[{code, message, details}]}`: only the codes are read.
#[derive(Deserialize, Default)]
pub struct ErrorList {
    /// The errors.
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
}

/// One error: its code, and what its message says about the label format.
#[derive(Deserialize)]
pub struct ErrorItem {
    /// `InvalidInput`, `Unauthorized`, `QuotaExceeded`, …
    #[serde(default)]
    pub code: String,
    /// Whether the message is [`LABEL_FORMAT_REFUSAL`] (the message itself is not kept).
    #[serde(default, rename = "message", deserialize_with = "refuses_label_format")]
    pub label_format_refused: bool,
}

/// What MFN createShipment says when the shipping service does not offer the requested
/// `LabelFormat` ("The selected delivery method does not offer the requested label format.
/// Please choose a different label format…", amzn/selling-partner-api-models#214). Its code
/// is the generic `InvalidInput`, so only the message tells this refusal apart.
pub const LABEL_FORMAT_REFUSAL: &str = "does not offer the requested label format";

fn refuses_label_format<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let message = Zeroizing::new(Option::<String>::deserialize(d)?.unwrap_or_default());
    let needle = LABEL_FORMAT_REFUSAL.as_bytes();
    Ok(message
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle)))
}

/// MFN `{payload: Shipment}` (createShipment, getShipment, cancelShipment).
#[derive(Deserialize)]
pub struct MfnShipmentResponse {
    /// The shipment.
    pub payload: Option<MfnShipment>,
}

/// The fields of an MFN `Shipment` sealprint uses.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MfnShipment {
    /// Shipment id.
    pub shipment_id: Option<String>,
    /// Tracking id.
    pub tracking_id: Option<String>,
    /// `Purchased`, `RefundPending`, …
    pub status: Option<String>,
    /// The label.
    pub label: Option<MfnLabel>,
}

/// An MFN `Label`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MfnLabel {
    /// The file.
    pub file_contents: Option<MfnFileContents>,
}

/// MFN `FileContents`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MfnFileContents {
    /// Base64 of gzip (usually).
    #[serde(default)]
    pub contents: SecretString,
    /// MIME type; may be `""`.
    #[serde(default)]
    pub file_type: String,
    /// Base64 MD5; may be `""`.
    #[serde(default)]
    pub checksum: String,
}

/// `{payload: …}` of any Shipping v2 operation.
#[derive(Deserialize)]
pub struct V2Response<T> {
    /// The payload.
    pub payload: Option<T>,
}

/// Shipping v2 `PurchaseShipmentResult` / `OneClickShipmentResult`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2Purchase {
    /// Shipment id.
    pub shipment_id: String,
    /// One entry per package.
    #[serde(default)]
    pub package_document_details: Vec<V2PackageDocumentDetail>,
}

/// Shipping v2 `GetShipmentDocumentsResult`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2Documents {
    /// Shipment id.
    pub shipment_id: String,
    /// The package's documents.
    pub package_document_detail: V2PackageDocumentDetail,
}

/// Shipping v2 `PackageDocumentDetail`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2PackageDocumentDetail {
    /// The caller's package reference.
    #[serde(default)]
    pub package_client_reference_id: Option<String>,
    /// Tracking id (a string per the schema).
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// The documents.
    #[serde(default)]
    pub package_documents: Vec<V2PackageDocument>,
}

/// Shipping v2 `PackageDocument`.
#[derive(Deserialize)]
pub struct V2PackageDocument {
    /// `LABEL`, `PACKSLIP`, `RECEIPT`, `CUSTOM_FORM`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `PDF`, `PNG` or `ZPL`.
    #[serde(default)]
    pub format: String,
    /// Base64 of the file.
    #[serde(default)]
    pub contents: SecretString,
}

impl V2PackageDocumentDetail {
    /// The first `LABEL` document.
    pub fn label(&self) -> Option<&V2PackageDocument> {
        self.package_documents
            .iter()
            .find(|d| d.kind.eq_ignore_ascii_case("LABEL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfn_shipment_ignores_the_address_and_tolerates_empty_enums() {
        let body = r#"{"payload":{"ShipmentId":"s-1","AmazonOrderId":"903-5563053-5647845",
            "ShipToAddress":{"Name":"Jane Doe","AddressLine1":"10 Columbus Cir"},
            "Label":{"Dimensions":{"Length":6,"Width":4,"Unit":"inches"},
              "FileContents":{"Contents":"","FileType":"","Checksum":""},"LabelFormat":""},
            "Status":"RefundPending","TrackingId":"1Z"}}"#;
        let r: MfnShipmentResponse = serde_json::from_str(body).expect("parses");
        let s = r.payload.expect("payload");
        assert_eq!(s.shipment_id.as_deref(), Some("s-1"));
        assert_eq!(s.status.as_deref(), Some("RefundPending"));
        let fc = s.label.and_then(|l| l.file_contents).expect("contents");
        assert_eq!(fc.file_type, "");
    }

    #[test]
    fn errors_keep_only_codes() {
        let r: ErrorList = serde_json::from_str(
            r#"{"errors":[{"code":"InvalidInput","message":"Value 'Jane' at 'name'","details":""}]}"#,
        )
        .expect("parses");
        assert_eq!(r.errors[0].code, "InvalidInput");
        assert!(!r.errors[0].label_format_refused);
    }

    #[test]
    fn the_label_format_refusal_is_recognised_by_its_message() {
        let r: ErrorList = serde_json::from_str(
            r#"{"errors":[{"code":"InvalidInput","message":"The selected delivery method Does Not Offer the requested label format. Please choose a different label format.","details":""}]}"#,
        )
        .expect("parses");
        assert!(r.errors[0].label_format_refused);
        let r: ErrorList =
            serde_json::from_str(r#"{"errors":[{"code":"InvalidInput","message":null}]}"#)
                .expect("a null message parses");
        assert!(!r.errors[0].label_format_refused);
    }

    #[test]
    fn v2_documents_pick_the_label() {
        let body = r#"{"payload":{"shipmentId":"s","packageDocumentDetail":{
            "packageClientReferenceId":"p","trackingId":"T1","packageDocuments":[
              {"type":"PACKSLIP","format":"PDF","contents":"eA=="},
              {"type":"LABEL","format":"ZPL","contents":"Xlha"}]}}}"#;
        let r: V2Response<V2Documents> = serde_json::from_str(body).expect("parses");
        let d = r.payload.expect("payload");
        assert_eq!(
            d.package_document_detail.label().map(|l| l.format.as_str()),
            Some("ZPL")
        );
        // The models' example has a numeric trackingId: strict types refuse it.
        let bad = r#"{"payload":{"shipmentId":"s","packageDocumentDetail":{"trackingId":1578648261977}}}"#;
        assert!(serde_json::from_str::<V2Response<V2Documents>>(bad).is_err());
    }
}
