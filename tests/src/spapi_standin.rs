//! A stand-in for Amazon's Selling Partner API, for tests only: HTTPS (a self-signed
//! certificate made with rcgen), the LWA token endpoint, the Tokens API, MFN v0
//! (eligible services, additional seller inputs, createShipment, getShipment, cancelShipment)
//! and Shipping v2 (getRates, additional inputs, purchaseShipment, oneClickShipment,
//! getShipmentDocuments, cancelShipment).
//!
//! It answers with the models' JSON shapes but real label payloads (the fixture the test
//! gives, gzipped and with its MD5 for MFN, plain base64 for Shipping v2), enforces what the
//! real service enforces (an RDT, not the LWA token, on the restricted MFN operations; tokens
//! expire), and can misbehave on demand: expire every token, answer 429 without Retry-After,
//! lose the answer to a purchase, send bad checksums, the sandbox's broken base64, an empty
//! `FileType`, a model-shaped error whose message holds buyer data, or refuse every MFN
//! `LabelFormat` as production sometimes does (amzn/selling-partner-api-models#214). It
//! records every call with its operation, time and the kind of token it carried, and counts
//! purchases, so tests can prove a label was never bought twice and that the client kept to
//! each operation's documented rate and burst ([`Standin::rate_violations`]); the
//! `x-amzn-RateLimit-Limit` it answers is that documented rate.
//!
//! Nothing here ships in a production binary.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use md5::{Digest, Md5};
use rand::RngCore;
use serde_json::{json, Value};

use crate::tls_server::TlsServer;

/// Text put in error messages and addresses, so tests can check it never reaches a log.
pub const BUYER_MARKER: &str = "Jane Q Buyer 10 Columbus Cir";

/// The LWA credentials the stand-in accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// LWA client id.
    pub client_id: String,
    /// LWA client secret.
    pub client_secret: String,
    /// The seller's refresh token.
    pub refresh_token: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            client_id: "amzn1.application-oa2-client.standin".into(),
            client_secret: "amzn1.oa2-cs.v1.standin-secret".into(),
            refresh_token: "Atzr|standin-refresh-token".into(),
        }
    }
}

/// How labels are encoded in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// MFN: base64 of gzip, `application/zpl`, MD5 of the gzip bytes. v2: plain base64.
    Normal,
    /// Base64 of the raw file everywhere (a carrier whose PDF is not gzipped).
    Plain,
    /// A checksum of other bytes.
    BadChecksum,
    /// The MFN sandbox's truncated, unpadded sample.
    BrokenBase64,
    /// `FileType` and `Checksum` empty (real cancelShipment answers).
    EmptyFileType,
    /// Valid base64 of bytes that are no label.
    NotALabel,
}

/// What happens to the next purchase (MFN createShipment or v2 purchaseShipment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseFault {
    /// The label is bought, then the connection is dropped without an answer.
    LoseAnswer,
    /// The label is bought, then the status is answered (e.g. 504).
    BuyThenStatus(u16),
}

/// The kind of token a call carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// No `x-amz-access-token`.
    None,
    /// A valid LWA access token.
    Lwa,
    /// A valid Restricted Data Token.
    Rdt,
    /// An unknown or expired token.
    Invalid,
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation, as Amazon names it (the two `cancelShipment`s prefixed `mfn ` and
    /// `v2 `, `lwaToken` for the token endpoint, `unknown` for a path that is none).
    pub operation: &'static str,
    /// Method.
    pub method: Method,
    /// Path (no query).
    pub path: String,
    /// Token carried.
    pub token: TokenKind,
    /// `x-amzn-shipping-business-id`.
    pub business_id: Option<String>,
    /// `x-amzn-IdempotencyKey`.
    pub idempotency_key: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// Status answered (0 when the answer was dropped).
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// The operations the stand-in serves, by method and path: Amazon's name, and the
/// documented (rate per second, burst) where SP-API limits it.
pub fn operation_of(method: &Method, path: &str) -> (&'static str, Option<(f64, u32)>) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["auth", "o2", "token"]) => ("lwaToken", None),
        ("POST", ["tokens", "2021-03-01", "restrictedDataToken"]) => {
            ("createRestrictedDataToken", Some((1.0, 10)))
        }
        ("POST", ["mfn", "v0", "eligibleShippingServices"]) => {
            ("getEligibleShipmentServices", Some((6.0, 12)))
        }
        ("POST", ["mfn", "v0", "additionalSellerInputs"]) => {
            ("getAdditionalSellerInputs", Some((1.0, 1)))
        }
        ("POST", ["mfn", "v0", "shipments"]) => ("createShipment", Some((2.0, 2))),
        ("GET", ["mfn", "v0", "shipments", _]) => ("getShipment", Some((1.0, 1))),
        ("DELETE", ["mfn", "v0", "shipments", _]) => ("mfn cancelShipment", Some((1.0, 1))),
        (m, ["shipping", "v2", rest @ ..]) => {
            let name = match (m, rest) {
                ("POST", ["shipments", "rates"]) => "getRates",
                ("GET", ["shipments", "additionalInputs", "schema"]) => "getAdditionalInputs",
                ("POST", ["shipments"]) => "purchaseShipment",
                ("POST", ["oneClickShipment"]) => "oneClickShipment",
                ("GET", ["shipments", _, "documents"]) => "getShipmentDocuments",
                ("PUT", ["shipments", _, "cancel"]) => "v2 cancelShipment",
                _ => "unknown",
            };
            (name, Some((80.0, 100)))
        }
        _ => ("unknown", None),
    }
}

/// How much later than its token allows a call may arrive before it counts as over the
/// limit: the client's clock and the stand-in's differ by the time on the wire (a TLS
/// handshake on a new connection delays one call and not the next).
pub const RATE_SLACK: Duration = Duration::from_millis(100);

/// Checks `calls` against each operation's documented rate and burst with a token bucket
/// (full at the first call, [`RATE_SLACK`] of tolerance); returns one line per call that
/// came too early.
pub fn rate_violations(calls: &[Call]) -> Vec<String> {
    let mut buckets: HashMap<&'static str, (f64, Instant)> = HashMap::new();
    let mut out = Vec::new();
    for c in calls {
        let Some((rate, burst)) = operation_of(&c.method, &c.path).1 else {
            continue;
        };
        let burst = f64::from(burst);
        let (tokens, last) = buckets.entry(c.operation).or_insert((burst, c.at));
        let dt = c.at.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + dt * rate).min(burst);
        *last = c.at;
        if *tokens + RATE_SLACK.as_secs_f64() * rate < 1.0 {
            out.push(format!(
                "{} at {:?} with {:.2} tokens (rate {rate}, burst {burst})",
                c.operation,
                c.at.saturating_duration_since(calls[0].at),
                tokens
            ));
        }
        *tokens -= 1.0;
    }
    out
}

struct Shipment {
    tracking_id: String,
    package_ref: String,
}

struct State {
    creds: Credentials,
    token_ttl_s: u64,
    lwa_tokens: HashMap<String, Instant>,
    rdts: HashMap<String, (Instant, Vec<(String, String)>)>,
    rdt_requests: Vec<Vec<(String, String)>>,
    lwa_exchanges: u32,
    calls: Vec<Call>,
    label: Vec<u8>,
    mode: LabelMode,
    throttle_next: u32,
    fault: Option<PurchaseFault>,
    error_next: Option<(u16, &'static str)>,
    mfn: HashMap<String, Shipment>,
    v2: HashMap<String, Shipment>,
    v2_by_key: HashMap<String, String>,
    mfn_purchases: u32,
    v2_purchases: u32,
    refuse_label_format: bool,
    create_label_formats: Vec<Option<String>>,
}

/// A running stand-in. Stops when dropped.
pub struct Standin {
    server: TlsServer,
    state: Arc<Mutex<State>>,
}

fn random_hex(n: usize) -> String {
    let mut raw = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn md5_b64(data: &[u8]) -> String {
    STANDARD.encode(Md5::digest(data))
}

fn errors(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message, "details": ""}]})
}

type Answer = Result<Response<Full<Bytes>>, &'static str>;

fn answer(status: u16, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&random_hex(8)) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(r)
}

impl Standin {
    /// Starts a stand-in on a free loopback port that returns `label` as every label.
    pub async fn start(creds: Credentials, label: Vec<u8>) -> anyhow::Result<Standin> {
        let state = Arc::new(Mutex::new(State {
            creds,
            token_ttl_s: 3600,
            lwa_tokens: HashMap::new(),
            rdts: HashMap::new(),
            rdt_requests: Vec::new(),
            lwa_exchanges: 0,
            calls: Vec::new(),
            label,
            mode: LabelMode::Normal,
            throttle_next: 0,
            fault: None,
            error_next: None,
            mfn: HashMap::new(),
            v2: HashMap::new(),
            v2_by_key: HashMap::new(),
            mfn_purchases: 0,
            v2_purchases: 0,
            refuse_label_format: false,
            create_label_formats: Vec::new(),
        }));
        let st = state.clone();
        let server = TlsServer::start(&["localhost", "127.0.0.1"], move |req| {
            let st = st.clone();
            async move { handle(&st, req).await }
        })
        .await
        .context("starting the SP-API stand-in")?;
        Ok(Standin { server, state })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The base URL (`https://127.0.0.1:PORT`), for a connection's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.server.addr.port())
    }

    /// The LWA token URL, for a connection's `lwa_endpoint`.
    pub fn lwa_endpoint(&self) -> String {
        format!("{}/auth/o2/token", self.endpoint())
    }

    /// The certificate to trust (PEM), for `--spapi-ca-file`.
    pub fn cert_pem(&self) -> &str {
        &self.server.cert_pem
    }

    /// Sets how labels are encoded from now on.
    pub fn set_label_mode(&self, mode: LabelMode) {
        self.st().mode = mode;
    }

    /// Answers the next `n` SP-API calls with 429 `QuotaExceeded`, without Retry-After.
    pub fn throttle_next(&self, n: u32) {
        self.st().throttle_next = n;
    }

    /// Makes the next purchase misbehave.
    pub fn fault_next_purchase(&self, fault: PurchaseFault) {
        self.st().fault = Some(fault);
    }

    /// Answers the next purchase with a model-shaped error whose message holds
    /// [`BUYER_MARKER`] (as MFN validation messages echo request values).
    pub fn error_next_purchase(&self, status: u16, code: &'static str) {
        self.st().error_next = Some((status, code));
    }

    /// From now on, refuses every MFN createShipment that asks for a `LabelFormat` or a
    /// `LabelCustomization` (400 `InvalidInput`, "The selected delivery method does not offer
    /// the requested label format…"), as production does for some services; without them
    /// the label is sold.
    pub fn refuse_label_format(&self, on: bool) {
        self.st().refuse_label_format = on;
    }

    /// The `ShippingServiceOptions.LabelFormat` of every createShipment received, in order.
    pub fn create_label_formats(&self) -> Vec<Option<String>> {
        self.st().create_label_formats.clone()
    }

    /// The calls that came sooner than their operation's documented rate and burst allow
    /// (see [`rate_violations`]).
    pub fn rate_violations(&self) -> Vec<String> {
        rate_violations(&self.st().calls)
    }

    /// Expires every token issued so far (LWA and RDT).
    pub fn expire_tokens(&self) {
        let mut s = self.st();
        s.lwa_tokens.clear();
        s.rdts.clear();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.st().calls.clone()
    }

    /// The restricted resources of every RDT request, as (method, path).
    pub fn rdt_requests(&self) -> Vec<Vec<(String, String)>> {
        self.st().rdt_requests.clone()
    }

    /// LWA refresh-token exchanges so far.
    pub fn lwa_exchanges(&self) -> u32 {
        self.st().lwa_exchanges
    }

    /// (MFN shipments bought, Shipping v2 shipments bought).
    pub fn purchases(&self) -> (u32, u32) {
        let s = self.st();
        (s.mfn_purchases, s.v2_purchases)
    }
}

fn label_fields(s: &State) -> (String, &'static str, String) {
    let z = gz(&s.label);
    match s.mode {
        LabelMode::Normal => (STANDARD.encode(&z), "application/zpl", md5_b64(&z)),
        LabelMode::Plain => (
            STANDARD.encode(&s.label),
            "application/zpl",
            md5_b64(&s.label),
        ),
        LabelMode::BadChecksum => (STANDARD.encode(&z), "application/zpl", md5_b64(b"other")),
        LabelMode::BrokenBase64 => (
            "H4sIAAAAAAAAAOR".into(),
            "image/png",
            "d+eUxK5WTGxkGsTF0pmefQ==".into(),
        ),
        LabelMode::EmptyFileType => (STANDARD.encode(&z), "", String::new()),
        LabelMode::NotALabel => (STANDARD.encode(b"<html>no label</html>"), "", String::new()),
    }
}

fn v2_contents(s: &State) -> String {
    match s.mode {
        LabelMode::Normal | LabelMode::Plain | LabelMode::EmptyFileType => {
            STANDARD.encode(&s.label)
        }
        LabelMode::BadChecksum => STANDARD.encode(gz(&s.label)),
        LabelMode::BrokenBase64 => "sdioadaiosfhdodsaiufhouafhoudfhdouahfac".into(),
        LabelMode::NotALabel => STANDARD.encode(b"<html>no label</html>"),
    }
}

fn mfn_shipment(s: &State, id: &str, sh: &Shipment, cancelled: bool) -> Value {
    let (contents, file_type, checksum) = if cancelled {
        (String::new(), "", String::new())
    } else {
        label_fields(s)
    };
    json!({"payload": {
        "ShipmentId": id,
        "AmazonOrderId": "903-5563053-5647845",
        "ItemList": [{"OrderItemId": "52986411826454", "Quantity": 1}],
        "ShipFromAddress": {"Name": "Warehouse 1", "AddressLine1": "300 Turnbull Ave",
            "City": "Detroit", "StateOrProvinceCode": "MI", "PostalCode": "48123",
            "CountryCode": "US", "Email": "ops@example.test", "Phone": "7132341234"},
        "ShipToAddress": {"Name": BUYER_MARKER, "AddressLine1": "10 COLUMBUS CIR",
            "City": "NEW YORK", "StateOrProvinceCode": "NY", "PostalCode": "10019-1158",
            "CountryCode": "US", "Email": "", "Phone": ""},
        "PackageDimensions": {"Length": 10.25, "Width": 10.25, "Height": 10.25, "Unit": "inches"},
        "Weight": {"Value": 10.25, "Unit": "oz"},
        "Insurance": {"CurrencyCode": "USD", "Amount": 0.0},
        "ShippingService": {"ShippingServiceName": "UPS 2nd Day Air", "CarrierName": "UPS",
            "ShippingServiceId": "UPS_PTP_2ND_DAY_AIR", "ShippingServiceOfferId": "offer",
            "ShipDate": "2026-08-05T00:00:00Z", "Rate": {"CurrencyCode": "USD", "Amount": 34.73},
            "ShippingServiceOptions": {"DeliveryExperience": "NoTracking", "CarrierWillPickUp": false,
                "LabelFormat": ""}, "RequiresAdditionalSellerInputs": false},
        "Label": {"Dimensions": {"Length": 6, "Width": 4, "Unit": "inches"},
            "FileContents": {"Contents": contents, "FileType": file_type, "Checksum": checksum},
            "LabelFormat": if cancelled { "" } else { "ZPL203" }},
        "Status": if cancelled { "RefundPending" } else { "Purchased" },
        "TrackingId": sh.tracking_id,
        "CreatedDate": "2026-08-05T00:00:00Z"
    }})
}

fn v2_detail(s: &State, sh: &Shipment) -> Value {
    json!({
        "packageClientReferenceId": sh.package_ref,
        "trackingId": sh.tracking_id,
        "packageDocuments": [
            {"type": "PACKSLIP", "format": "PDF", "contents": STANDARD.encode(b"%PDF-1.4 slip")},
            {"type": "LABEL", "format": "ZPL", "contents": v2_contents(s)}
        ]
    })
}

async fn handle(
    state: &Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, &'static str> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = parts.uri.path().to_owned();
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let token = match header("x-amz-access-token") {
        None => TokenKind::None,
        Some(t) if s.lwa_tokens.get(&t).is_some_and(|exp| *exp > now) => TokenKind::Lwa,
        Some(t) if s.rdts.get(&t).is_some_and(|(exp, _)| *exp > now) => TokenKind::Rdt,
        Some(_) => TokenKind::Invalid,
    };
    let rdt_resources = header("x-amz-access-token")
        .and_then(|t| s.rdts.get(&t).map(|(_, r)| r.clone()))
        .unwrap_or_default();
    let mut result = route(
        &mut s,
        &parts.method,
        &path,
        &parts.uri,
        token,
        &rdt_resources,
        &body,
        &header,
    );
    let (operation, limit) = operation_of(&parts.method, &path);
    let status = match &mut result {
        Ok(r) => {
            let status = r.status().as_u16();
            // Declared on 200, 400 and 404 only (per the models), with the documented rate.
            if let Some((rate, _)) = limit.filter(|_| matches!(status, 200..=299 | 400 | 404)) {
                if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("{rate:.1}")) {
                    r.headers_mut().insert("x-amzn-ratelimit-limit", v);
                }
            }
            status
        }
        Err(_) => 0,
    };
    s.calls.push(Call {
        operation,
        method: parts.method.clone(),
        path,
        token,
        business_id: header("x-amzn-shipping-business-id"),
        idempotency_key: header("x-amzn-idempotencykey"),
        user_agent: header("user-agent"),
        status,
        at: now,
    });
    result
}

const GENERIC: &str = "/mfn/v0/shipments/{shipmentId}";

/// The answer to a purchase that was made: `out`, unless a fault was asked for.
fn purchase_answer(s: &mut State, out: &Value) -> Answer {
    match s.fault.take() {
        Some(PurchaseFault::LoseAnswer) => Err("answer lost on purpose"),
        Some(PurchaseFault::BuyThenStatus(st)) => answer(st, &errors("InternalError", "try later")),
        None => answer(200, out),
    }
}

/// Buys a Shipping v2 shipment of one package: its id.
fn v2_buy(s: &mut State, package_ref: &str) -> String {
    let id = format!("amzn1.ship.{}", random_hex(8));
    s.v2_purchases += 1;
    s.v2.insert(
        id.clone(),
        Shipment {
            tracking_id: format!("TBA{}", random_hex(6).to_uppercase()),
            package_ref: package_ref.to_owned(),
        },
    );
    id
}

/// A model-shaped refusal of a document specification without a dpi (what Amazon answers).
fn check_document_spec(spec: &Value) -> Option<Answer> {
    spec["dpi"].is_null().then(|| {
        answer(
            400,
            &errors(
                "InvalidRequest",
                "An invalid documentation specification was provided.",
            ),
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    uri: &hyper::Uri,
    token: TokenKind,
    rdt: &[(String, String)],
    body: &[u8],
    header: &dyn Fn(&str) -> Option<String>,
) -> Answer {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if path == "/auth/o2/token" && method == Method::POST {
        s.lwa_exchanges += 1;
        let field = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
        if field("grant_type") != "refresh_token" {
            return answer(400, &json!({"error": "unsupported_grant_type"}));
        }
        if field("client_id") != s.creds.client_id
            || field("client_secret") != s.creds.client_secret
        {
            return answer(
                401,
                &json!({"error": "invalid_client", "error_description": "bad client"}),
            );
        }
        if field("refresh_token") != s.creds.refresh_token {
            return answer(
                400,
                &json!({"error": "invalid_grant", "error_description": "bad token"}),
            );
        }
        let t = format!("Atza|{}", random_hex(16));
        s.lwa_tokens.insert(
            t.clone(),
            Instant::now() + Duration::from_secs(s.token_ttl_s),
        );
        return answer(
            200,
            &json!({"access_token": t, "token_type": "bearer", "expires_in": s.token_ttl_s}),
        );
    }
    let denied = || {
        answer(
            403,
            &json!({"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied.",
                "details": "The access token you provided has expired."}]}),
        )
    };
    if token == TokenKind::Invalid || token == TokenKind::None {
        return denied();
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        return answer(
            429,
            &errors(
                "QuotaExceeded",
                "You exceeded your quota for the requested resource.",
            ),
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let needs_rdt =
        |m: &str, p: &str| token == TokenKind::Rdt && rdt.iter().any(|(rm, rp)| rm == m && rp == p);
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["tokens", "2021-03-01", "restrictedDataToken"]) => {
            if token != TokenKind::Lwa {
                return denied();
            }
            let mut resources = Vec::new();
            for r in json["restrictedResources"].as_array().into_iter().flatten() {
                let m = r["method"].as_str().unwrap_or_default();
                let p = r["path"].as_str().unwrap_or_default();
                if m.is_empty() || p.is_empty() {
                    return answer(
                        400,
                        &json!({"errors": [{"code": "InvalidRequest",
                        "message": "Request is missing or has invalid parameters", "details": "Resource not provided."}]}),
                    );
                }
                resources.push((m.to_owned(), p.to_owned()));
            }
            s.rdt_requests.push(resources.clone());
            let t = format!("Atz.sprdt|{}", random_hex(16));
            s.rdts.insert(
                t.clone(),
                (Instant::now() + Duration::from_secs(3600), resources),
            );
            answer(200, &json!({"restrictedDataToken": t, "expiresIn": 3600}))
        }
        ("POST", ["mfn", "v0", "eligibleShippingServices"]) => {
            if token != TokenKind::Lwa {
                return denied();
            }
            let order = json["ShipmentRequestDetails"]["AmazonOrderId"]
                .as_str()
                .unwrap_or_default();
            if order == "TEST_CASE_400" {
                return answer(
                    400,
                    &errors(
                        "InvalidInput",
                        &format!("Value '{BUYER_MARKER}' at 'shipFromAddress' failed"),
                    ),
                );
            }
            answer(
                200,
                &json!({"payload": {"ShippingServiceList": [
                {"ShippingServiceName": "UPS 2nd Day Air", "CarrierName": "UPS",
                 "ShippingServiceId": "UPS_PTP_2ND_DAY_AIR", "ShippingServiceOfferId": "offer-1",
                 "ShipDate": "2026-08-05T00:00:00Z", "Rate": {"CurrencyCode": "USD", "Amount": 34.73},
                 "ShippingServiceOptions": {"DeliveryExperience": "NoTracking", "CarrierWillPickUp": false, "LabelFormat": ""},
                 "AvailableLabelFormats": ["ZPL203", "ShippingServiceDefault", "PDF", "PNG"],
                 "RequiresAdditionalSellerInputs": false}],
                "TemporarilyUnavailableCarrierList": [], "TermsAndConditionsNotAcceptedCarrierList": []}}),
            )
        }
        ("POST", ["mfn", "v0", "shipments"]) => {
            if !needs_rdt("POST", "/mfn/v0/shipments") {
                return denied();
            }
            if let Some((status, code)) = s.error_next.take() {
                return answer(
                    status,
                    &errors(
                        code,
                        &format!("Value '{BUYER_MARKER}' at 'shipToAddress' failed"),
                    ),
                );
            }
            let details = &json["ShipmentRequestDetails"];
            let format = details["ShippingServiceOptions"]["LabelFormat"]
                .as_str()
                .map(str::to_owned);
            s.create_label_formats.push(format.clone());
            let customised = !details["LabelCustomization"].is_null();
            if s.refuse_label_format && (format.is_some_and(|f| !f.is_empty()) || customised) {
                return answer(
                    400,
                    &errors(
                        "InvalidInput",
                        "The selected delivery method does not offer the requested label \
                         format. Please choose a different label format or choose another \
                         delivery method which offers the requested label format",
                    ),
                );
            }
            let id = format!("{}-00c3-4f6f-a63a-{}", random_hex(4), random_hex(6));
            let sh = Shipment {
                tracking_id: format!("1Z{}", random_hex(8).to_uppercase()),
                package_ref: String::new(),
            };
            s.mfn_purchases += 1;
            let out = mfn_shipment(s, &id, &sh, false);
            s.mfn.insert(id, sh);
            purchase_answer(s, &out)
        }
        ("POST", ["mfn", "v0", "additionalSellerInputs"]) => {
            if token != TokenKind::Lwa {
                return denied();
            }
            if json["ShipFromAddress"]["CountryCode"] == "XX" {
                return answer(
                    400,
                    &errors(
                        "InvalidInput",
                        "Invalid Ship From Address when calling GetAdditionalSellerInputs",
                    ),
                );
            }
            if json["ShippingServiceId"].as_str().is_none() || json["OrderId"].as_str().is_none() {
                return answer(400, &errors("InvalidInput", "missing parameters"));
            }
            answer(
                200,
                &json!({"payload": {
                    "ShipmentLevelFields": [{"AdditionalInputFieldName": "SENDER_ID",
                        "AdditionalSellerInput": {"DataType": "STRING"}}],
                    "ItemLevelFieldsList": [{"Asin": "B000000000", "AdditionalInputs": []}]}}),
            )
        }
        ("GET" | "DELETE", ["mfn", "v0", "shipments", id]) => {
            if !needs_rdt(method.as_str(), GENERIC) {
                return denied();
            }
            let Some(sh) = s.mfn.get(*id) else {
                return answer(404, &errors("NotFound", "shipment not found"));
            };
            let out = mfn_shipment(s, id, sh, method == Method::DELETE);
            answer(200, &out)
        }
        (_, ["mfn", ..]) => answer(404, &errors("NotFound", "no such operation")),
        // Shipping v2: the LWA token only (an RDT is refused, as Amazon's signer would).
        (_, ["shipping", "v2", ..]) if token != TokenKind::Lwa => denied(),
        (_, ["shipping", "v2", ..]) if header("x-amzn-shipping-business-id").is_none() => answer(
            400,
            &errors(
                "InvalidRequest",
                "business id defaulted to AmazonShipping_UK",
            ),
        ),
        ("POST", ["shipping", "v2", "shipments", "rates"]) => answer(
            200,
            &json!({"payload": {
            "requestToken": format!("amzn1.rq.{}", random_hex(8)),
            "rates": [{"rateId": format!("rate-{}", random_hex(4)), "carrierId": "AMZN_US",
                "carrierName": "Amazon Shipping", "serviceId": "std", "serviceName": "Standard",
                "totalCharge": {"value": 4.2, "unit": "USD"},
                "promise": {}, "requiresAdditionalInputs": false,
                "supportedDocumentSpecifications": [{"format": "ZPL",
                    "size": {"width": 4, "length": 6, "unit": "INCH"},
                    "printOptions": [{"supportedDPIs": [203, 300], "supportedPageLayouts": ["DEFAULT"],
                        "supportedFileJoiningOptions": [false],
                        "supportedDocumentDetails": [{"name": "LABEL", "isMandatory": true}]}]}]}],
            "ineligibleRates": []}}),
        ),
        ("GET", ["shipping", "v2", "shipments", "additionalInputs", "schema"]) => {
            let query = uri.query().unwrap_or_default();
            let has = |k: &str| {
                query
                    .split('&')
                    .any(|kv| kv.strip_prefix(k).is_some_and(|v| v.len() > 1))
            };
            if !has("requestToken=") || !has("rateId=") {
                return answer(
                    400,
                    &json!({"errors": [{"code": "InvalidRequest",
                        "message": "Request is missing or has invalid parameters",
                        "details": "RequestToken cannot be null"}]}),
                );
            }
            answer(
                200,
                &json!({"payload": {"$schema": "http://json-schema.org/draft-04/schema#",
                    "title": "Additional inputs for Shipping Offering", "type": "object",
                    "properties": {"harmonizedSystemCode": {"type": "string"}}}}),
            )
        }
        ("POST", ["shipping", "v2", "shipments"]) => {
            if json["requestToken"].as_str().is_none() {
                return answer(400, &errors("InvalidRequest", "requestToken is required"));
            }
            if let Some(refusal) = check_document_spec(&json["requestedDocumentSpecification"]) {
                return refusal;
            }
            if let Some((status, code)) = s.error_next.take() {
                return answer(status, &errors(code, &format!("Value '{BUYER_MARKER}'")));
            }
            let key = header("x-amzn-idempotencykey").unwrap_or_default();
            let id = match s.v2_by_key.get(&key) {
                Some(id) if !key.is_empty() => id.clone(),
                _ => {
                    let id = v2_buy(s, "pkg-1");
                    if !key.is_empty() {
                        s.v2_by_key.insert(key, id.clone());
                    }
                    id
                }
            };
            let detail =
                s.v2.get(&id)
                    .map(|sh| v2_detail(s, sh))
                    .unwrap_or(Value::Null);
            let out = json!({"payload": {"shipmentId": id,
                "packageDocumentDetails": [detail], "promise": {}}});
            purchase_answer(s, &out)
        }
        ("POST", ["shipping", "v2", "oneClickShipment"]) => {
            let amazon = json["channelDetails"]["channelType"] == "AMAZON";
            let missing = [
                "shipFrom",
                "packages",
                "channelDetails",
                "labelSpecifications",
            ]
            .into_iter()
            .chain((!amazon).then_some("shipTo"))
            .find(|f| json[*f].is_null());
            let services = json["serviceSelection"]["serviceId"]
                .as_array()
                .map_or(0, Vec::len);
            if missing.is_some() || services == 0 {
                return answer(
                    400,
                    &errors(
                        "InvalidRequest",
                        "Request is missing or has invalid parameters",
                    ),
                );
            }
            if let Some(refusal) = check_document_spec(&json["labelSpecifications"]) {
                return refusal;
            }
            if let Some((status, code)) = s.error_next.take() {
                return answer(status, &errors(code, &format!("Value '{BUYER_MARKER}'")));
            }
            let package = json["packages"][0]["packageClientReferenceId"]
                .as_str()
                .unwrap_or("pkg-1")
                .to_owned();
            let id = v2_buy(s, &package);
            let detail =
                s.v2.get(&id)
                    .map(|sh| v2_detail(s, sh))
                    .unwrap_or(Value::Null);
            let out = json!({"payload": {"shipmentId": id,
                "packageDocumentDetails": [detail], "promise": {},
                "carrier": {"id": "AMZN_US", "name": "Amazon Shipping"},
                "service": {"id": "std", "name": "Standard"},
                "totalCharge": {"value": 4.2, "unit": "USD"}}});
            purchase_answer(s, &out)
        }
        ("GET", ["shipping", "v2", "shipments", id, "documents"]) => {
            let pkg = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("packageClientReferenceId="))
                .unwrap_or_default()
                .to_owned();
            match s.v2.get(*id) {
                Some(sh) if sh.package_ref == pkg => {
                    let detail = v2_detail(s, sh);
                    answer(
                        200,
                        &json!({"payload": {"shipmentId": id, "packageDocumentDetail": detail}}),
                    )
                }
                Some(_) => answer(
                    400,
                    &errors("InvalidRequest", "unknown packageClientReferenceId"),
                ),
                None => answer(404, &errors("NotFound", "shipment not found")),
            }
        }
        ("PUT", ["shipping", "v2", "shipments", id, "cancel"]) => {
            if s.v2.contains_key(*id) {
                answer(200, &json!({"payload": {}}))
            } else {
                answer(404, &errors("NotFound", "shipment not found"))
            }
        }
        _ => answer(404, &errors("NotFound", "no such operation")),
    }
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin")
            .field("addr", &self.server.addr)
            .finish()
    }
}
