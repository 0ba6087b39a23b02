//! Entry points for the fuzz targets in `fuzz/` (a separate workspace): the decoders of
//! request bodies, which are private to the API's resource modules. Each runs the same
//! function the handler runs. Not an API: hidden from the docs and free to change with the
//! targets.

use sealprint_protocol::LabelFormat;
use zeroize::Zeroizing;

use super::{access, admin, alerts, compliance, notifications, parse_json, security};
use super::{sessions, spapi, users};
use crate::services::labels;

pub use super::access::Cidr;

/// The JSON bodies the routes read, by name: index `i` of this list is body kind `i` of
/// [`parse_body`].
pub const BODIES: &[&str] = &[
    "login",
    "change_password",
    "name",
    "enrollment_token",
    "label_upload",
    "label_spapi_source",
    "new_user",
    "user_patch",
    "subscription",
    "attestation",
    "terms",
    "suspend",
    "canaries",
    "new_api_key",
    "ip_allowlist",
    "deletion",
    "webhook",
    "new_spapi_connection",
    "eligible_services",
    "additional_seller_inputs",
    "additional_inputs",
    "cancel_shipment",
];

/// Parses `body` as the route body named `BODIES[kind]` with the API's JSON parser: the
/// error message the caller would get, or `Ok`. `None` when `kind` names no body.
pub fn parse_body(kind: usize, body: &[u8]) -> Option<Result<(), String>> {
    fn p<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(), String> {
        parse_json::<T>(body).map(drop).map_err(|e| e.message)
    }
    let parse = match *BODIES.get(kind)? {
        "login" => p::<sessions::Login>,
        "change_password" => p::<sessions::ChangePassword>,
        "name" => p::<admin::NameBody>,
        "enrollment_token" => p::<admin::TokenBody>,
        "label_upload" => p::<crate::services::labels::Upload>,
        "label_spapi_source" => p::<spapi::SourceRequest>,
        "new_user" => p::<users::NewUser>,
        "user_patch" => p::<users::UserPatch>,
        "subscription" => p::<compliance::SubscriptionBody>,
        "attestation" => p::<crate::core::compliance::Questionnaire>,
        "terms" => p::<compliance::TermsBody>,
        "suspend" => p::<compliance::SuspendBody>,
        "canaries" => p::<alerts::Canaries>,
        "new_api_key" => p::<access::NewKey>,
        "ip_allowlist" => p::<access::Allowlist>,
        "deletion" => p::<security::Deletion>,
        "webhook" => p::<notifications::WebhookBody>,
        "new_spapi_connection" => p::<spapi::NewConnection>,
        "eligible_services" => p::<spapi::EligibleRequest>,
        "additional_seller_inputs" => p::<spapi::SellerInputsRequest>,
        "additional_inputs" => p::<spapi::AdditionalInputsRequest>,
        "cancel_shipment" => p::<spapi::CancelRequest>,
        _ => return None,
    };
    Some(parse(body))
}

/// The upload's `content_base64` decoded as `POST …/labels` does (strict base64, 1 byte to
/// the label cap).
///
/// # Errors
/// The message the caller would get.
pub fn label_base64(b64: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    labels::decode_label(b64).map_err(|e| e.to_string())
}

/// Whether label bytes look like `format` (the upload's magic check).
pub fn label_matches(format: LabelFormat, bytes: &[u8]) -> bool {
    labels::matches_format(format, bytes)
}

/// The order ids the canary and restriction checks see in a label request body.
pub fn named_orders(body: &[u8]) -> Vec<String> {
    labels::named_orders(body)
}

/// Whether a label request body is routed to the SP-API flow, and whether it is a reprint
/// (which needs the PII actions).
pub fn label_route(body: &[u8]) -> (bool, bool) {
    (
        spapi::is_spapi_source(body),
        !spapi::pii_actions(body).is_empty(),
    )
}
