//! Where a label comes from: [`LabelSource`] (one variant per SP-API operation that returns
//! a label), its `source` name, its operation, and whether it buys something.

use serde_json::Value;
use zeroize::Zeroizing;

use super::Operation;

/// The `source` names, in the order of [`LabelSource`].
pub const FETCH_SOURCES: [&str; 5] = [
    "mfn",
    "mfn_shipment",
    "shipping_v2",
    "shipping_v2_shipment",
    "shipping_v2_one_click",
];

/// The sources that fetch a label already bought (`getShipment`, `getShipmentDocuments`):
/// a reprint, which reads the shipment (the buyer's address) again.
pub const REPRINT_SOURCES: [&str; 2] = ["mfn_shipment", "shipping_v2_shipment"];

/// Whether the `source` name is a reprint (see [`REPRINT_SOURCES`]).
pub fn is_reprint(source: &str) -> bool {
    REPRINT_SOURCES.contains(&source)
}

/// Where a label comes from. Bodies are already-serialised JSON, wiped on drop.
pub enum LabelSource {
    /// MFN createShipment with this `CreateShipmentRequest` body.
    Mfn {
        /// The body.
        body: Zeroizing<Vec<u8>>,
        /// The body without the label format and label customization, when the request had
        /// either: sent if createShipment refuses the format.
        without_label_format: Option<Zeroizing<Vec<u8>>>,
    },
    /// MFN getShipment (reprint).
    MfnShipment {
        /// The shipment.
        shipment_id: String,
    },
    /// Shipping v2 purchaseShipment with this body and idempotency key.
    ShippingV2 {
        /// The body.
        body: Zeroizing<Vec<u8>>,
        /// `x-amzn-IdempotencyKey`.
        idempotency_key: String,
    },
    /// Shipping v2 getShipmentDocuments (reprint).
    ShippingV2Shipment {
        /// The shipment.
        shipment_id: String,
        /// The package's client reference id.
        package_client_reference_id: String,
        /// `format` query parameter.
        format: Option<String>,
        /// `dpi` query parameter.
        dpi: Option<u32>,
    },
    /// Shipping v2 oneClickShipment with this `OneClickShipmentRequest` body (the model gives
    /// it no idempotency key).
    ShippingV2OneClick {
        /// The body.
        body: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for LabelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LabelSource {
    /// MFN createShipment of `request` (a `CreateShipmentRequest`), with its fallback body
    /// when it asks for a label format or label customization.
    pub fn mfn(request: &Value) -> LabelSource {
        let body = |v: &Value| {
            Zeroizing::new(serde_json::to_vec(v).expect("a JSON value always serialises"))
        };
        let mut plain = request.clone();
        let details = plain.get_mut("ShipmentRequestDetails");
        let customization = details
            .and_then(Value::as_object_mut)
            .and_then(|d| d.remove("LabelCustomization"))
            .is_some();
        let format = plain
            .pointer_mut("/ShipmentRequestDetails/ShippingServiceOptions")
            .and_then(Value::as_object_mut)
            .and_then(|o| o.remove("LabelFormat"))
            .is_some();
        LabelSource::Mfn {
            body: body(request),
            without_label_format: (customization || format).then(|| body(&plain)),
        }
    }

    /// The `source` name.
    pub fn name(&self) -> &'static str {
        match self {
            LabelSource::Mfn { .. } => FETCH_SOURCES[0],
            LabelSource::MfnShipment { .. } => FETCH_SOURCES[1],
            LabelSource::ShippingV2 { .. } => FETCH_SOURCES[2],
            LabelSource::ShippingV2Shipment { .. } => FETCH_SOURCES[3],
            LabelSource::ShippingV2OneClick { .. } => FETCH_SOURCES[4],
        }
    }

    /// The SP-API operation that fetches the label.
    pub fn operation(&self) -> Operation {
        match self {
            LabelSource::Mfn { .. } => Operation::MfnCreateShipment,
            LabelSource::MfnShipment { .. } => Operation::MfnGetShipment,
            LabelSource::ShippingV2 { .. } => Operation::V2PurchaseShipment,
            LabelSource::ShippingV2Shipment { .. } => Operation::V2GetShipmentDocuments,
            LabelSource::ShippingV2OneClick { .. } => Operation::V2OneClickShipment,
        }
    }

    /// Whether it buys something (so an interrupted fetch is in doubt, not failed).
    pub fn purchases(name: &str) -> bool {
        [FETCH_SOURCES[0], FETCH_SOURCES[2], FETCH_SOURCES[4]].contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(source: &LabelSource) -> (serde_json::Value, Option<serde_json::Value>) {
        let LabelSource::Mfn {
            body,
            without_label_format,
        } = source
        else {
            panic!("an mfn source");
        };
        let parse = |b: &[u8]| serde_json::from_slice(b).expect("json");
        (
            parse(body),
            without_label_format.as_deref().map(|b| parse(b)),
        )
    }

    #[test]
    fn the_mfn_fallback_drops_only_the_label_format_and_customization() {
        let request = serde_json::json!({
            "ShipmentRequestDetails": {"AmazonOrderId": "903-5563053-5647845",
                "ShippingServiceOptions": {"DeliveryExperience": "NoTracking",
                    "CarrierWillPickUp": false, "LabelFormat": "ZPL203"},
                "LabelCustomization": {"CustomTextForLabel": "BIN 7"}},
            "ShippingServiceId": "UPS_PTP_2ND_DAY_AIR"
        });
        let (body, fallback) = body_of(&LabelSource::mfn(&request));
        assert_eq!(body, request);
        let mut expected = request.clone();
        expected["ShipmentRequestDetails"]
            .as_object_mut()
            .expect("object")
            .remove("LabelCustomization");
        expected["ShipmentRequestDetails"]["ShippingServiceOptions"]
            .as_object_mut()
            .expect("object")
            .remove("LabelFormat");
        assert_eq!(fallback, Some(expected.clone()));
        // Nothing to drop: no fallback (a refusal then is final).
        assert_eq!(body_of(&LabelSource::mfn(&expected)).1, None);
    }
}
