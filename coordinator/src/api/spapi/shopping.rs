//! The shopping step, passed through on one connection: `…/eligible-services` (MFN
//! getEligibleShipmentServices), `…/additional-seller-inputs` (MFN
//! getAdditionalSellerInputs), `…/rates` (Shipping v2 getRates), `…/additional-inputs`
//! (Shipping v2 getAdditionalInputs) answer the payload; `…/cancel-shipment` cancels a
//! shipment (MFN or Shipping v2). One handler per route; each loads the connection first.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{bad_id, check_rate, id_like, object, to_body};
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::{parse_json, ApiState, Reply};
use crate::services::spapi::auth::SecretString;
use crate::services::spapi::{Connection, ShoppingStep, SpApiError};

/// An SP-API failure as an API answer: Amazon's refusals of the request as 422, throttling
/// and shutdown as 503, the rest as 502. The message holds the code and request id only.
fn spapi_error(e: &SpApiError) -> ApiError {
    let (status, code) = match e {
        SpApiError::Connection("not found") => return ApiError::not_found("spapi connection"),
        SpApiError::Api { status, .. } | SpApiError::LabelFormatRefused { status, .. }
            if (400..500).contains(status) =>
        {
            (StatusCode::UNPROCESSABLE_ENTITY, "spapi_rejected")
        }
        SpApiError::Throttled { .. } | SpApiError::Cancelled => {
            (StatusCode::SERVICE_UNAVAILABLE, "spapi_unavailable")
        }
        SpApiError::Store(_) => return ApiError::internal(e),
        _ => (StatusCode::BAD_GATEWAY, "spapi_error"),
    };
    ApiError {
        status,
        code,
        message: e.to_string(),
        retry_after_secs: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct EligibleRequest {
    shipment_request: Value,
    shipping_offering_filter: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct SellerInputsRequest {
    shipping_service_id: String,
    ship_from_address: Value,
    order_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct AdditionalInputsRequest {
    request_token: SecretString,
    rate_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct CancelRequest {
    api: CancelApi,
    shipment_id: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CancelApi {
    Mfn,
    ShippingV2,
}

/// Connection `id` of `tenant`, with its secrets.
fn connection(state: &ApiState, tenant: &str, id: &str) -> Result<Connection, ApiError> {
    state
        .spapi
        .connection(tenant, id)
        .map_err(|e| spapi_error(&e))
}

/// An SP-API answer (its payload) as the API's answer.
fn answer(r: Result<Value, SpApiError>) -> Result<Reply, ApiError> {
    r.map(Reply::ok).map_err(|e| spapi_error(&e))
}

/// `POST …/spapi-connections/{id}/eligible-services`.
pub(in crate::api) async fn eligible_services(
    state: &ApiState,
    tenant: &str,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let conn = connection(state, tenant, id)?;
    let req: EligibleRequest = parse_json(body)?;
    let mut m = Map::new();
    m.insert(
        "ShipmentRequestDetails".into(),
        Value::Object(object(req.shipment_request, "shipment_request")?),
    );
    if let Some(f) = req.shipping_offering_filter {
        m.insert(
            "ShippingOfferingFilter".into(),
            Value::Object(object(f, "shipping_offering_filter")?),
        );
    }
    let body = to_body(&Value::Object(m));
    let step = ShoppingStep::EligibleServices;
    answer(state.spapi.shop(&conn, step, body).await)
}

/// `POST …/spapi-connections/{id}/additional-seller-inputs`.
pub(in crate::api) async fn additional_seller_inputs(
    state: &ApiState,
    tenant: &str,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let conn = connection(state, tenant, id)?;
    let req: SellerInputsRequest = parse_json(body)?;
    if !id_like(&req.shipping_service_id) {
        return Err(bad_id("shipping_service_id"));
    }
    if !id_like(&req.order_id) {
        return Err(bad_id("order_id"));
    }
    let m = json!({
        "ShippingServiceId": req.shipping_service_id,
        "ShipFromAddress": object(req.ship_from_address, "ship_from_address")?,
        "OrderId": req.order_id,
    });
    let step = ShoppingStep::AdditionalSellerInputs;
    answer(state.spapi.shop(&conn, step, to_body(&m)).await)
}

/// `POST …/spapi-connections/{id}/rates`: the body is the `GetRatesRequest`.
pub(in crate::api) async fn rates(
    state: &ApiState,
    tenant: &str,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let conn = connection(state, tenant, id)?;
    let req: Value = parse_json(body)?;
    let m = object(req, "the body")?;
    let body = to_body(&Value::Object(m));
    answer(state.spapi.shop(&conn, ShoppingStep::Rates, body).await)
}

/// `POST …/spapi-connections/{id}/additional-inputs`: the JSON schema of a rate's inputs.
pub(in crate::api) async fn additional_inputs(
    state: &ApiState,
    tenant: &str,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let conn = connection(state, tenant, id)?;
    let req: AdditionalInputsRequest = parse_json(body)?;
    check_rate(&req.request_token, &req.rate_id)?;
    let r = state
        .spapi
        .additional_inputs(&conn, &req.request_token.0, &req.rate_id)
        .await;
    answer(r)
}

/// `POST …/spapi-connections/{id}/cancel-shipment`: cancels a shipment, e.g. a duplicate
/// bought while a job was in doubt; audited.
pub(in crate::api) async fn cancel_shipment(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    id: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let conn = connection(state, tenant, id)?;
    let req: CancelRequest = parse_json(body)?;
    if !id_like(&req.shipment_id) {
        return Err(bad_id("shipment_id"));
    }
    let r = state
        .spapi
        .cancel_shipment(&conn, req.api == CancelApi::Mfn, &req.shipment_id)
        .await
        .map(|status| json!({"shipment_id": req.shipment_id, "status": status}));
    if r.is_ok() {
        state.audit(
            Some(tenant),
            &who.user_id,
            "spapi.shipment_cancelled",
            Some(&req.shipment_id),
            "ok",
            now,
        );
    }
    answer(r)
}
