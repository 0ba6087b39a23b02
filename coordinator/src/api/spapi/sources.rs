//! The label sources a submission may name (`"source"`: `mfn`, `mfn_shipment`,
//! `shipping_v2`, `shipping_v2_shipment`, `shipping_v2_one_click`), parsed strictly and
//! checked before anything is bought: ids, the Shipping v2 `document_spec` and the one-click
//! `labelSpecifications` (copied from the rate, with a dpi). Also the peek at a body that
//! says whether it names a source, and which PII actions a reprint source needs.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{bad_id, check_rate, id_like, object, to_body, token_like};
use crate::api::auth::Action;
use crate::api::error::ApiError;
use crate::api::parse_json;
use crate::services::spapi::auth::SecretString;
use crate::services::spapi::LabelSource;

#[derive(Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub(in crate::api) enum SourceRequest {
    Mfn(MfnRequest),
    MfnShipment(MfnShipmentRequest),
    ShippingV2(V2Request),
    ShippingV2Shipment(V2ShipmentRequest),
    ShippingV2OneClick(OneClickRequest),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct MfnRequest {
    connection: String,
    shipment_request: Value,
    shipping_service_id: String,
    shipping_service_offer_id: Option<String>,
    printer: Option<String>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct MfnShipmentRequest {
    connection: String,
    shipment_id: String,
    printer: Option<String>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct V2Request {
    connection: String,
    request_token: SecretString,
    rate_id: String,
    document_spec: Value,
    idempotency_key: Option<String>,
    printer: Option<String>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct V2ShipmentRequest {
    connection: String,
    shipment_id: String,
    package_client_reference_id: String,
    format: Option<String>,
    dpi: Option<u32>,
    printer: Option<String>,
    pool: Option<String>,
}

/// `connection` and the target, beside the `OneClickShipmentRequest` fields (checked
/// against [`ONE_CLICK_FIELDS`]: the model's names, camelCase).
#[derive(Deserialize)]
pub(in crate::api) struct OneClickRequest {
    connection: String,
    printer: Option<String>,
    pool: Option<String>,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

/// The fields of a `OneClickShipmentRequest`; the first five are required.
const ONE_CLICK_FIELDS: [&str; 13] = [
    "shipFrom",
    "packages",
    "channelDetails",
    "labelSpecifications",
    "serviceSelection",
    "shipTo",
    "returnTo",
    "shipDate",
    "goodsOwner",
    "valueAddedServicesDetails",
    "taxDetails",
    "shipperInstruction",
    "destinationAccessPointDetails",
];

#[derive(Deserialize)]
struct Peek {
    source: Option<Value>,
}
/// Whether a label submission names an SP-API source (a `"source"` field).
pub(in crate::api) fn is_spapi_source(body: &[u8]) -> bool {
    serde_json::from_slice::<Peek>(body).is_ok_and(|p| p.source.is_some())
}

/// The PII actions a label submission needs: a reprint source is a reprint and a shipment
/// read, both `pii_reader` only; any other submission needs none.
pub(in crate::api) fn pii_actions(body: &[u8]) -> &'static [Action] {
    let reprint = serde_json::from_slice::<Peek>(body).is_ok_and(|p| {
        p.source
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(crate::services::spapi::is_reprint)
    });
    if reprint {
        &[Action::Reprint, Action::ReadShipment]
    } else {
        &[]
    }
}

/// Fields Amazon requires in a Shipping v2 `requestedDocumentSpecification`, plus `dpi`
/// (optional in the model, refused when missing in practice).
const DOCUMENT_SPEC_FIELDS: [&str; 5] = [
    "format",
    "size",
    "dpi",
    "needFileJoining",
    "requestedDocumentTypes",
];

/// A requested document specification copied from a rate: an object with
/// [`DOCUMENT_SPEC_FIELDS`].
fn document_spec(v: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    let spec = object(v, what)?;
    if let Some(missing) = DOCUMENT_SPEC_FIELDS
        .iter()
        .find(|f| !spec.contains_key(**f))
    {
        return Err(ApiError::unprocessable(format!(
            "{what} lacks {missing}: copy one of the rate's \
             supportedDocumentSpecifications, with a dpi"
        )));
    }
    Ok(spec)
}

/// The `OneClickShipmentRequest` of a one-click source: known fields only, the required
/// ones present and not empty, `shipTo` unless the channel is `AMAZON`, a label
/// specification as [`document_spec`] wants it and at least one service id.
fn one_click_body(mut fields: Map<String, Value>) -> Result<Value, ApiError> {
    if let Some(unknown) = fields
        .keys()
        .find(|k| !ONE_CLICK_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!("unknown field `{unknown}`")));
    }
    let empty = |v: &Value| match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    };
    let amazon = fields
        .get("channelDetails")
        .and_then(|c| c.get("channelType"))
        .and_then(Value::as_str)
        == Some("AMAZON");
    let required = ONE_CLICK_FIELDS[..5]
        .iter()
        .chain(if amazon { None } else { Some(&"shipTo") });
    if let Some(missing) = required
        .into_iter()
        .find(|f| fields.get(**f).is_none_or(empty))
    {
        return Err(ApiError::unprocessable(format!(
            "{missing} is required and must not be empty"
        )));
    }
    let spec = fields.remove("labelSpecifications").unwrap_or_default();
    let spec = document_spec(spec, "labelSpecifications")?;
    fields.insert("labelSpecifications".into(), Value::Object(spec));
    let services = fields
        .get("serviceSelection")
        .and_then(|s| s.get("serviceId"))
        .and_then(Value::as_array);
    if !services.is_some_and(|s| !s.is_empty() && s.iter().all(|v| v.as_str().is_some_and(id_like)))
    {
        return Err(ApiError::unprocessable(
            "serviceSelection.serviceId must be a non-empty list of service ids",
        ));
    }
    Ok(Value::Object(fields))
}

/// A source request, checked: where the label goes and how to fetch it.
pub(super) struct Parsed {
    pub(super) connection: String,
    pub(super) printer: Option<String>,
    pub(super) pool: Option<String>,
    pub(super) idempotency_key: Option<String>,
    pub(super) source: LabelSource,
}

fn parse_source(req: SourceRequest, job_id: &str) -> Result<Parsed, ApiError> {
    Ok(match req {
        SourceRequest::Mfn(r) => {
            if !id_like(&r.shipping_service_id) {
                return Err(bad_id("shipping_service_id"));
            }
            let mut m = Map::new();
            m.insert(
                "ShipmentRequestDetails".into(),
                Value::Object(object(r.shipment_request, "shipment_request")?),
            );
            m.insert("ShippingServiceId".into(), json!(r.shipping_service_id));
            if let Some(offer) = r.shipping_service_offer_id {
                if !token_like(&offer, 4096) {
                    return Err(ApiError::unprocessable(
                        "shipping_service_offer_id must be printable",
                    ));
                }
                m.insert("ShippingServiceOfferId".into(), json!(offer));
            }
            Parsed {
                connection: r.connection,
                printer: r.printer,
                pool: r.pool,
                idempotency_key: None,
                source: LabelSource::mfn(&Value::Object(m)),
            }
        }
        SourceRequest::MfnShipment(r) => {
            if !id_like(&r.shipment_id) {
                return Err(bad_id("shipment_id"));
            }
            Parsed {
                connection: r.connection,
                printer: r.printer,
                pool: r.pool,
                idempotency_key: None,
                source: LabelSource::MfnShipment {
                    shipment_id: r.shipment_id,
                },
            }
        }
        SourceRequest::ShippingV2(r) => {
            check_rate(&r.request_token, &r.rate_id)?;
            let spec = document_spec(r.document_spec, "document_spec")?;
            let key = r.idempotency_key.unwrap_or_else(|| job_id.to_owned());
            if !(1..=64).contains(&key.len()) || !id_like(&key) {
                return Err(bad_id("idempotency_key"));
            }
            let body = json!({
                "requestToken": r.request_token.0,
                "rateId": r.rate_id,
                "requestedDocumentSpecification": Value::Object(spec),
            });
            Parsed {
                connection: r.connection,
                printer: r.printer,
                pool: r.pool,
                idempotency_key: Some(key.clone()),
                source: LabelSource::ShippingV2 {
                    body: to_body(&body),
                    idempotency_key: key,
                },
            }
        }
        SourceRequest::ShippingV2Shipment(r) => {
            if !id_like(&r.shipment_id) {
                return Err(bad_id("shipment_id"));
            }
            if !id_like(&r.package_client_reference_id) {
                return Err(bad_id("package_client_reference_id"));
            }
            if let Some(f) = r.format.as_deref() {
                if !matches!(f, "PDF" | "PNG" | "ZPL") {
                    return Err(ApiError::unprocessable("format must be PDF, PNG or ZPL"));
                }
            }
            Parsed {
                connection: r.connection,
                printer: r.printer,
                pool: r.pool,
                idempotency_key: None,
                source: LabelSource::ShippingV2Shipment {
                    shipment_id: r.shipment_id,
                    package_client_reference_id: r.package_client_reference_id,
                    format: r.format,
                    dpi: r.dpi,
                },
            }
        }
        SourceRequest::ShippingV2OneClick(r) => Parsed {
            connection: r.connection,
            printer: r.printer,
            pool: r.pool,
            idempotency_key: None,
            source: LabelSource::ShippingV2OneClick {
                body: to_body(&one_click_body(r.fields)?),
            },
        },
    })
}

/// Parses and checks the body of a label submission that names a source; `job_id` is the
/// default idempotency key.
pub(super) fn parse(body: &[u8], job_id: &str) -> Result<Parsed, ApiError> {
    let req: SourceRequest = parse_json(body).map_err(|e| {
        if e.message.contains("unknown variant") || e.message.contains("field has the wrong") {
            ApiError::bad_request(format!(
                "source must be one of {}",
                crate::services::spapi::FETCH_SOURCES.join(", ")
            ))
        } else {
            e
        }
    })?;
    parse_source(req, job_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_strictly() {
        let ok: SourceRequest = serde_json::from_value(json!({
            "source": "mfn_shipment", "connection": "spc-1", "shipment_id": "s-1", "pool": "p"
        }))
        .expect("parses");
        assert!(matches!(ok, SourceRequest::MfnShipment(_)));
        assert!(serde_json::from_value::<SourceRequest>(json!({
            "source": "mfn_shipment", "connection": "spc-1", "shipment_id": "s", "bogus": 1
        }))
        .is_err());
        assert!(serde_json::from_value::<SourceRequest>(json!({"source": "fax"})).is_err());
        assert!(is_spapi_source(br#"{"source":"mfn"}"#));
        assert!(!is_spapi_source(
            br#"{"format":"zpl","content_base64":"x"}"#
        ));
        assert!(!is_spapi_source(b"not json"));
    }

    fn one_click(extra: Value) -> Result<Parsed, ApiError> {
        let mut body = json!({
            "source": "shipping_v2_one_click", "connection": "spc-1", "pool": "p",
            "shipFrom": {"name": "Warehouse 1"},
            "packages": [{"packageClientReferenceId": "pkg-1"}],
            "channelDetails": {"channelType": "AMAZON", "amazonOrderDetails": {"orderId": "o"}},
            "labelSpecifications": {"format": "ZPL", "size": {"width": 4, "length": 6,
                "unit": "INCH"}, "dpi": 203, "needFileJoining": false,
                "requestedDocumentTypes": ["LABEL"]},
            "serviceSelection": {"serviceId": ["std"]},
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        body.as_object_mut()
            .expect("object")
            .retain(|_, v| !v.is_null());
        let req: SourceRequest =
            serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        parse_source(req, "job-1")
    }

    #[test]
    fn one_click_requests_are_checked_before_buying() {
        let p = one_click(json!({})).expect("accepted");
        assert_eq!(p.source.name(), "shipping_v2_one_click");
        assert_eq!(p.connection, "spc-1");
        assert!(p.idempotency_key.is_none());
        let refused = |extra: Value, what: &str| {
            let e = one_click(extra).err().expect("refused");
            assert!(e.message.contains(what), "{what}: {}", e.message);
        };
        refused(json!({"bogus": 1}), "bogus");
        refused(json!({"packages": []}), "packages");
        refused(json!({"serviceSelection": null}), "serviceSelection");
        refused(json!({"serviceSelection": {"serviceId": []}}), "serviceId");
        refused(
            json!({"labelSpecifications": {"format": "ZPL", "size": {}, "needFileJoining": false,
                "requestedDocumentTypes": ["LABEL"]}}),
            "dpi",
        );
        // Off Amazon the buyer's address is needed.
        refused(
            json!({"channelDetails": {"channelType": "EXTERNAL"}}),
            "shipTo",
        );
        assert!(
            one_click(json!({"channelDetails": {"channelType": "EXTERNAL"},
            "shipTo": {"name": "x"}}))
            .is_ok()
        );
    }

    #[test]
    fn v2_document_spec_needs_a_dpi() {
        let req: SourceRequest = serde_json::from_value(json!({
            "source": "shipping_v2", "connection": "spc-1", "request_token": "t", "rate_id": "r",
            "document_spec": {"format": "ZPL", "size": {"width": 4, "length": 6, "unit": "INCH"},
                "needFileJoining": false, "requestedDocumentTypes": ["LABEL"]},
            "pool": "p"
        }))
        .expect("parses");
        let e = parse_source(req, "job-1").err().expect("refused");
        assert!(e.message.contains("dpi"), "{}", e.message);
    }
}
