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

use hyper::StatusCode;
use sealprint_protocol::{validate_id, PrinterVerdict};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::info;
use zeroize::Zeroizing;

use super::auth::{Action, Principal};
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::crypto::random_id;
use crate::services::spapi::auth::SecretString;
use crate::services::spapi::{ConnectionSecrets, LabelSource, ShoppingStep, SpApiError};
use crate::store::{FetchState, SpapiConnectionRecord, SpapiFetchRecord, SpapiRegion};

/// Most connections a tenant may have.
const MAX_CONNECTIONS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConnection {
    region: SpapiRegion,
    marketplace_id: String,
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    #[serde(default)]
    sandbox: bool,
    endpoint: Option<String>,
    lwa_endpoint: Option<String>,
}

fn token_like(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn id_like(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks an https URL override: scheme https, a host, no user info, query or fragment;
/// `base` also refuses a path (the SP-API paths are appended to it).
fn check_https(url: &str, base: bool) -> Result<(), &'static str> {
    if url.len() > 512 {
        return Err("is too long");
    }
    let uri: hyper::Uri = url.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("must be https");
    }
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err("must not carry credentials");
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not carry a query or fragment");
    }
    if base && !matches!(uri.path(), "" | "/") {
        return Err("must not carry a path");
    }
    Ok(())
}

fn connection_view(c: &SpapiConnectionRecord) -> Value {
    json!({
        "id": c.id,
        "region": c.region.as_str(),
        "marketplace_id": c.marketplace_id,
        "client_id": c.client_id,
        "sandbox": c.sandbox,
        "endpoint": c.endpoint,
        "lwa_endpoint": c.lwa_endpoint,
        "shipping_business_id": crate::services::spapi::business_id(c.region, &c.marketplace_id),
        "created_at": c.created_at_ms,
    })
}

pub(super) fn create_connection(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: NewConnection = parse_json(body)?;
    let mut problems = Vec::new();
    if !(1..=32).contains(&req.marketplace_id.len())
        || !req
            .marketplace_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    {
        problems.push("marketplace_id must be 1 to 32 letters or digits".to_owned());
    }
    if !token_like(&req.client_id, 256) {
        problems.push("client_id must be 1 to 256 printable characters".to_owned());
    }
    if !token_like(&req.client_secret.0, 2048) {
        problems.push("client_secret must be 1 to 2048 printable characters".to_owned());
    }
    if !token_like(&req.refresh_token.0, 4096) {
        problems.push("refresh_token must be 1 to 4096 printable characters".to_owned());
    }
    if (req.endpoint.is_some() || req.lwa_endpoint.is_some())
        && !state.spapi.allows_endpoint_override()
    {
        problems.push(
            "endpoint overrides are turned off on this coordinator \
             (serve --allow-spapi-endpoint-override)"
                .to_owned(),
        );
    }
    if let Some(e) = req.endpoint.as_deref() {
        if let Err(why) = check_https(e, true) {
            problems.push(format!("endpoint {why}"));
        }
    }
    if let Some(e) = req.lwa_endpoint.as_deref() {
        if let Err(why) = check_https(e, false) {
            problems.push(format!("lwa_endpoint {why}"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems.join("; ")));
    }
    if state.store.spapi_connections(tenant)?.len() >= MAX_CONNECTIONS {
        return Err(ApiError::conflict(format!(
            "a tenant may have at most {MAX_CONNECTIONS} spapi connections"
        )));
    }
    let rec = SpapiConnectionRecord {
        id: random_id("spc"),
        tenant_id: tenant.to_owned(),
        region: req.region,
        marketplace_id: req.marketplace_id.clone(),
        client_id: req.client_id.clone(),
        sandbox: req.sandbox,
        endpoint: req
            .endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/').to_owned()),
        lwa_endpoint: req.lwa_endpoint.clone(),
        created_at_ms: now,
    };
    let secrets = ConnectionSecrets {
        client_secret: req.client_secret.clone(),
        refresh_token: req.refresh_token.clone(),
    };
    state
        .store
        .create_spapi_connection(&rec, &secrets.to_json())?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "spapi.connection_created",
        Some(&rec.id),
        &format!("ok region={}", rec.region.as_str()),
        now,
    );
    info!(tenant = %tenant, connection = %rec.id, region = rec.region.as_str(), sandbox = rec.sandbox, "spapi connection created");
    Ok(Reply::json(StatusCode::CREATED, json!({"id": rec.id})))
}

pub(super) fn list_connections(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .spapi_connections(tenant)?
        .iter()
        .map(connection_view)
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

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
pub(super) struct EligibleRequest {
    shipment_request: Value,
    shipping_offering_filter: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SellerInputsRequest {
    shipping_service_id: String,
    ship_from_address: Value,
    order_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdditionalInputsRequest {
    request_token: SecretString,
    rate_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelRequest {
    api: CancelApi,
    shipment_id: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CancelApi {
    Mfn,
    ShippingV2,
}

fn object(v: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        Value::Object(m) if !m.is_empty() => Ok(m),
        _ => Err(ApiError::unprocessable(format!(
            "{what} must be a non-empty JSON object"
        ))),
    }
}

fn to_body(v: &Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(v).expect("a JSON value always serialises"))
}

/// `POST …/spapi-connections/{id}/{action}`: one step of the shipping shopping flow on
/// connection `id`; the route table names the five actions.
pub(super) async fn shop(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    id: &str,
    action: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let conn = state
        .spapi
        .connection(tenant, id)
        .map_err(|e| spapi_error(&e))?;
    let answer = match action {
        "eligible-services" => {
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
            state.spapi.shop(&conn, step, body).await
        }
        "additional-seller-inputs" => {
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
            state.spapi.shop(&conn, step, to_body(&m)).await
        }
        "rates" => {
            let req: Value = parse_json(body)?;
            let m = object(req, "the body")?;
            let body = to_body(&Value::Object(m));
            state.spapi.shop(&conn, ShoppingStep::Rates, body).await
        }
        "additional-inputs" => {
            let req: AdditionalInputsRequest = parse_json(body)?;
            check_rate(&req.request_token, &req.rate_id)?;
            state
                .spapi
                .additional_inputs(&conn, &req.request_token.0, &req.rate_id)
                .await
        }
        "cancel-shipment" => {
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
            r
        }
        _ => return Err(ApiError::not_found("route")),
    };
    answer.map(Reply::ok).map_err(|e| spapi_error(&e))
}

// ---- labels from SP-API ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub(super) enum SourceRequest {
    Mfn(MfnRequest),
    MfnShipment(MfnShipmentRequest),
    ShippingV2(V2Request),
    ShippingV2Shipment(V2ShipmentRequest),
    ShippingV2OneClick(OneClickRequest),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MfnRequest {
    connection: String,
    shipment_request: Value,
    shipping_service_id: String,
    shipping_service_offer_id: Option<String>,
    printer: Option<String>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MfnShipmentRequest {
    connection: String,
    shipment_id: String,
    printer: Option<String>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct V2Request {
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
pub(super) struct V2ShipmentRequest {
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
pub(super) struct OneClickRequest {
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
pub(super) fn is_spapi_source(body: &[u8]) -> bool {
    serde_json::from_slice::<Peek>(body).is_ok_and(|p| p.source.is_some())
}

/// The sources that fetch a label already bought (`getShipment`, `getShipmentDocuments`):
/// a reprint, which reads the shipment (the buyer's address) again.
pub(super) const REPRINT_SOURCES: [&str; 2] = ["mfn_shipment", "shipping_v2_shipment"];

/// The PII actions a label submission needs: a reprint source is a reprint and a shipment
/// read, both `pii_reader` only; any other submission needs none.
pub(super) fn pii_actions(body: &[u8]) -> &'static [Action] {
    let reprint = serde_json::from_slice::<Peek>(body).is_ok_and(|p| {
        p.source
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|s| REPRINT_SOURCES.contains(&s))
    });
    if reprint {
        &[Action::Reprint, Action::ReadShipment]
    } else {
        &[]
    }
}

/// The same target rules as raw uploads: exactly one of a verified printer of the tenant or
/// a pool one of its printers serves.
fn check_target(
    state: &ApiState,
    tenant: &str,
    printer: Option<&String>,
    pool: Option<&String>,
) -> Result<(), ApiError> {
    match (printer, pool) {
        (Some(p), None) => {
            let printer = state
                .store
                .printer(tenant, p)?
                .ok_or_else(|| ApiError::not_found("printer"))?;
            if printer.verdict != PrinterVerdict::Verified {
                return Err(ApiError::unprocessable("the printer is not verified"));
            }
            Ok(())
        }
        (None, Some(pool)) => {
            if pool.is_empty() || pool.len() > 64 {
                return Err(ApiError::unprocessable("pool must be 1 to 64 bytes"));
            }
            if !state
                .store
                .printers(tenant)?
                .iter()
                .any(|p| &p.pool == pool)
            {
                return Err(ApiError::unprocessable(
                    "no printer of the tenant serves this pool",
                ));
            }
            Ok(())
        }
        _ => Err(ApiError::bad_request("give exactly one of printer or pool")),
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

struct Parsed {
    connection: String,
    printer: Option<String>,
    pool: Option<String>,
    idempotency_key: Option<String>,
    source: LabelSource,
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

/// `POST …/labels` with a `"source"`: checks, records the fetch, starts it, answers 202.
/// `redacted`: the tenant's labels are replaced by the redacted label (compliance gate).
pub(super) fn submit_label(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    redacted: bool,
    now: u64,
) -> Result<Reply, ApiError> {
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
    let job_id = random_id("job");
    let p = parse_source(req, &job_id)?;
    if validate_id(&p.connection).is_err()
        || state
            .store
            .spapi_connection(tenant, &p.connection)?
            .is_none()
    {
        return Err(ApiError::not_found("spapi connection"));
    }
    check_target(state, tenant, p.printer.as_ref(), p.pool.as_ref())?;
    let rec = SpapiFetchRecord {
        job_id: job_id.clone(),
        tenant_id: tenant.to_owned(),
        connection_id: p.connection,
        source: p.source.name().to_owned(),
        state: FetchState::Fetching,
        pool: p.pool,
        printer: p.printer,
        job_ttl_ms: crate::core::dispatch::JOB_TTL_MS,
        shipment_id: None,
        tracking_id: None,
        idempotency_key: p.idempotency_key,
        failed_call: None,
        error_code: None,
        request_id: None,
        error: None,
        checksum: None,
        redacted,
        label_format_fallback: false,
        created_at_ms: now,
        updated_at_ms: now,
    };
    state.store.create_spapi_fetch(&rec)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "label.requested",
        Some(&job_id),
        &format!("ok source={}", rec.source),
        now,
    );
    info!(tenant = %tenant, job = %job_id, source = %rec.source, connection = %rec.connection_id, "label fetch started");
    let source_name = rec.source.clone();
    state.spapi.spawn_fetch(rec, p.source);
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"id": job_id, "status": "queued", "source": source_name, "redacted": redacted}),
    ))
}

fn fetch_view(r: &SpapiFetchRecord) -> Value {
    json!({
        "source": r.source,
        "connection": r.connection_id,
        "state": match r.state {
            FetchState::Fetching => "fetching",
            FetchState::Fetched => "fetched",
            FetchState::Failed => "failed",
            FetchState::InDoubt => "in_doubt",
        },
        "shipment_id": r.shipment_id,
        "tracking_id": r.tracking_id,
        "idempotency_key": r.idempotency_key,
        "failed_call": r.failed_call,
        "error_code": r.error_code,
        "request_id": r.request_id,
        "checksum": r.checksum,
        "label_format_fallback": r.label_format_fallback,
    })
}

/// The view of a label that has no job yet (fetching, or the fetch failed): 404 when there
/// is no fetch either.
pub(super) fn pending_label(
    state: &ApiState,
    tenant: &str,
    job_id: &str,
) -> Result<Reply, ApiError> {
    let r = state
        .store
        .spapi_fetch(tenant, job_id)?
        .ok_or_else(|| ApiError::not_found("label"))?;
    let status = match r.state {
        FetchState::Fetching | FetchState::Fetched => "queued",
        FetchState::Failed => "failed",
        FetchState::InDoubt => "in_doubt",
    };
    Ok(Reply::ok(json!({
        "id": r.job_id,
        "status": status,
        "printer": null,
        "pool": r.pool,
        "attempts": 0,
        "error": r.error,
        "redacted": r.redacted,
        "created_at": r.created_at_ms,
        "updated_at": r.updated_at_ms,
        "shipment_id": r.shipment_id,
        "tracking_id": r.tracking_id,
        "spapi": fetch_view(&r),
    })))
}

/// Adds the SP-API fields to a job's view when it came from SP-API.
pub(super) fn decorate_label(
    state: &ApiState,
    tenant: &str,
    job_id: &str,
    view: &mut Value,
) -> Result<(), ApiError> {
    if let (Some(r), Some(m)) = (
        state.store.spapi_fetch(tenant, job_id)?,
        view.as_object_mut(),
    ) {
        m.insert("shipment_id".into(), json!(r.shipment_id));
        m.insert("tracking_id".into(), json!(r.tracking_id));
        m.insert("spapi".into(), fetch_view(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_must_be_plain_https() {
        assert!(check_https("https://127.0.0.1:8443", true).is_ok());
        assert!(check_https("https://sellingpartnerapi-na.amazon.com/", true).is_ok());
        assert_eq!(check_https("http://x.test", true), Err("must be https"));
        assert!(check_https("https://u:p@x.test", true).is_err());
        assert!(check_https("https://x.test/p", true).is_err());
        assert!(check_https("https://x.test/auth/o2/token", false).is_ok());
        assert!(check_https("https://x.test/t?x=1", false).is_err());
        assert!(check_https("not a url", false).is_err());
    }

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
