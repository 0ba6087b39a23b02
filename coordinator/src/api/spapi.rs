//! SP-API routes: seller connections, the shopping step, and labels from SP-API sources.
//!
//! - `POST /v1/tenants/{t}/spapi-connections` stores a connection (secrets encrypted under
//!   the tenant key) → 201 `{"id"}`; `GET` lists them without secrets.
//! - `POST …/spapi-connections/{id}/eligible-services` (MFN getEligibleShipmentServices),
//!   `…/additional-seller-inputs` (MFN getAdditionalSellerInputs), `…/rates` (Shipping v2
//!   getRates) and `…/additional-inputs` (Shipping v2 getAdditionalInputs) pass the shopping
//!   step through and answer the payload; `…/cancel-shipment` cancels a shipment (MFN or
//!   Shipping v2), e.g. a duplicate bought while a job was in doubt.
//! - `POST /v1/tenants/{t}/labels` with a `"source"` (hooked from `labels`; the reprint
//!   sources `mfn_shipment` and `shipping_v2_shipment` are `pii_reader` actions): the fetch is
//!   recorded and runs in the background; the answer is 202 with the job `queued`. The job
//!   view (`GET …/labels/{id}`) shows the fetch while there is no job yet, and the shipment,
//!   tracking id and failing SP-API call afterwards.
//!
//! Requests are checked before anything is bought: the target (printer or pool) as for raw
//! uploads, ids, and the Shipping v2 `document_spec` / one-click `labelSpecifications` (it
//! must be copied from the rate, with a dpi). Nothing here logs request bodies: they hold
//! seller and buyer addresses.
//!
//! # Layout
//! `connections` (create, list), `shopping` (one handler per step, and cancellation),
//! `sources` (the label sources a submission may name, parsed and checked), `submit` (the
//! submission and the views of its fetch). This file holds the checks they share.

mod connections;
mod shopping;
mod sources;
mod submit;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::error::ApiError;
use crate::services::spapi::auth::SecretString;

pub(super) use connections::NewConnection;
pub(super) use connections::{create_connection, list_connections};
pub(super) use shopping::{
    additional_inputs, additional_seller_inputs, cancel_shipment, eligible_services, rates,
};
pub(super) use shopping::{
    AdditionalInputsRequest, CancelRequest, EligibleRequest, SellerInputsRequest,
};
pub(super) use sources::{is_spapi_source, pii_actions, SourceRequest};
pub(super) use submit::{decorate_label, pending_label, submit_label};

/// 1 to `max` printable ASCII characters (a token or secret).
fn token_like(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// 1 to 128 letters, digits, `.`, `_` or `-` (an SP-API id).
fn id_like(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The answer to an id that [`id_like`] refuses.
fn bad_id(what: &str) -> ApiError {
    ApiError::unprocessable(format!(
        "{what} must be 1 to 128 letters, digits, '.', '_' or '-'"
    ))
}

/// A Shipping v2 rate: its request token and id.
fn check_rate(request_token: &SecretString, rate_id: &str) -> Result<(), ApiError> {
    if !id_like(rate_id) {
        return Err(bad_id("rate_id"));
    }
    if !token_like(&request_token.0, 4096) {
        return Err(ApiError::unprocessable(
            "request_token must be 1 to 4096 printable characters",
        ));
    }
    Ok(())
}

/// `v` as a non-empty JSON object.
fn object(v: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) if !m.is_empty() => Ok(m),
        _ => Err(ApiError::unprocessable(format!(
            "{what} must be a non-empty JSON object"
        ))),
    }
}

/// `v` serialised, wiped on drop (it may hold addresses).
fn to_body(v: &Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(v).expect("a JSON value always serialises"))
}
