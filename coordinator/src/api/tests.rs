//! API tests without sockets: requests go through [`handle`] against a temporary store and a
//! recording fake [`Dispatch`]. This file holds the fixtures and helpers every test module
//! shares, and the tests of routing, login, bodies, tenants, labels and agents; the others are
//! by subject: `user_accounts`, `roles` (the role table), `compliance_gates`, `api_keys`
//! (keys, alerts, allowlist), `audit_log`, `lists`, `idempotency`, `pii`, `agent_policy`,
//! `public_rate`.

use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http_body_util::Full;
use serde_json::{json, Value};

use super::*;
use crate::core::crypto::{self, MasterKey};
use crate::store::AgentRecord;
use sealprint_protocol::{
    EnrollmentToken, Heartbeat, PrinterReport, PrinterStatus, PrinterVerdict,
};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Dispatch for Recorder {
    fn job_submitted(&self, tenant_id: &str, job_id: &str) {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("job {tenant_id} {job_id}"));
    }
    fn agent_revoked(&self, device_id: &str) {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("revoked {device_id}"));
    }
}

const PASSWORD: &str = "Correct-Horse-Battery-9";
const WEBHOOK_SECRET: &[u8] = b"whsec_test_0123456789";

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) state: Arc<ApiState>,
    recorder: Arc<Recorder>,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
    let hash = crypto::hash_password(PASSWORD).expect("hash");
    store
        .create_user(
            "admin@example.com",
            hash,
            true,
            None,
            vec![],
            crate::core::clock::now_ms(),
        )
        .expect("admin");
    let recorder = Arc::new(Recorder::default());
    let state = Arc::new(ApiState {
        spapi: crate::services::spapi::SpApi::for_tests(store.clone(), recorder.clone()),
        store,
        dispatch: recorder.clone(),
        peer_id: "12D3KooWExamplePeer".into(),
        mesh_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        heartbeat_interval: Duration::from_secs(10),
        billing_webhook_secret: Some(Zeroizing::new(WEBHOOK_SECRET.to_vec())),
        failures: crate::services::failures::FailureLog::new(Duration::from_secs(60)),
        limits: limits::Limits::default(),
        agent_versions: Default::default(),
        readiness: Arc::new(crate::core::readiness::Readiness::ready()),
        releases: crate::services::releases::Releases::new(None, dir.path()),
    });
    Fixture {
        _dir: dir,
        state,
        recorder,
    }
}

async fn call_raw(
    state: &Arc<ApiState>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b.body(Full::new(Bytes::from(body))).expect("request");
    let resp = handle(state, req).await;
    let status = resp.status();
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).expect("json answer");
    (status, v)
}

async fn call(
    state: &Arc<ApiState>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    call_raw(state, method, path, token, bytes).await
}

async fn login(state: &Arc<ApiState>) -> String {
    let (s, v) = call(
        state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": "admin@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["expires_at"].as_u64().is_some());
    v["token"].as_str().expect("token").to_owned()
}

/// `v` without its `error.request_id` (a fresh id per request), which must be there.
fn without_request_id(mut v: Value) -> Value {
    let id = v["error"]
        .as_object_mut()
        .and_then(|e| e.remove("request_id"));
    assert!(
        id.is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty())),
        "{v}"
    );
    v
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

/// A tenant that passes every gate (active subscription, complete attestation).
async fn tenant(state: &Arc<ApiState>, token: &str) -> String {
    let t = bare_tenant(state, token).await;
    let (s, v) = call(
        state,
        "PUT",
        &format!("/v1/tenants/{t}/subscription"),
        Some(token),
        json!({"state": "active"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        state,
        "PUT",
        &format!("/v1/tenants/{t}/attestation"),
        Some(token),
        attestation(),
    )
    .await;
    assert_eq!(
        (s, &v["state"]),
        (StatusCode::OK, &json!("complete")),
        "{v}"
    );
    t
}

fn attestation() -> Value {
    json!({
        "supported_os": true,
        "os_updates_applied": true,
        "endpoint_protection": true,
        "screen_lock_minutes": 10,
        "wifi_wpa2_or_wpa3": true,
        "no_print_to_file_drivers": true,
        "authorized_personnel_only": true,
        "credentials_confidential": true,
    })
}

/// A freshly created tenant: no subscription, no attestation.
async fn bare_tenant(state: &Arc<ApiState>, token: &str) -> String {
    let (s, v) = call(
        state,
        "POST",
        "/v1/tenants",
        Some(token),
        json!({"name": "Acme"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

/// An agent with one verified printer `p1` in pool `default`, reported by heartbeat.
fn printer_agent(state: &Arc<ApiState>, tenant: &str) -> String {
    let device = crate::core::crypto::random_id("dev");
    state
        .store
        .put_agent(&AgentRecord {
            device_id: device.clone(),
            tenant_id: tenant.into(),
            site_id: "site-1".into(),
            serial: 1,
            certificate: vec![],
            ed25519_public: [1; 32],
            x25519_public: [2; 32],
            hostname: "station".into(),
            enrolled_at_ms: 1,
            revoked: false,
            version: None,
            last_heartbeat_at_ms: None,
            clock_offset_ms: None,
            relay: None,
            findings: Vec::new(),
            heartbeat_seq: 0,
        })
        .expect("agent");
    let report = |name: &str, verdict| PrinterReport {
        name: name.into(),
        pool: "default".into(),
        uri: "raw://10.0.0.5:9100".into(),
        verdict,
        reason: "checked".into(),
        identity: Some("SN1".into()),
        status: PrinterStatus::Ready,
    };
    let hb = Heartbeat {
        device_id: device.clone(),
        seq: 1,
        version: "0.1.0".into(),
        uptime_s: 1,
        clock_ms: crate::core::clock::now_ms(),
        printers: vec![
            report("p1", PrinterVerdict::Verified),
            report("pdf", PrinterVerdict::Refused),
        ],
        peers: vec![],
        receipts: vec![],
        findings: vec![],
    };
    state
        .store
        .record_heartbeat(&device, &hb, None, crate::core::clock::now_ms())
        .expect("heartbeat");
    device
}

#[tokio::test]
async fn healthz_and_routing_errors() {
    let f = fixture();
    let (s, v) = call(&f.state, "GET", "/healthz", None, Value::Null).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, v) = call(&f.state, "GET", "/nope", None, Value::Null).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = call(&f.state, "DELETE", "/v1/tenants", None, Value::Null).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (s, _) = call(
        &f.state,
        "GET",
        "/v1/tenants/bad%20id/agents",
        None,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn login_and_authentication() {
    let f = fixture();
    let wrong = json!({"email": "admin@example.com", "password": "wrong password!"});
    let (s1, v1) = call(&f.state, "POST", "/v1/sessions", None, wrong).await;
    let unknown = json!({"email": "nobody@example.com", "password": PASSWORD});
    let (s2, v2) = call(&f.state, "POST", "/v1/sessions", None, unknown).await;
    assert_eq!(s1, StatusCode::UNAUTHORIZED);
    // Each answer has its own request id; the rest is the same.
    let (v1, v2) = (without_request_id(v1), without_request_id(v2));
    assert_eq!(
        v1, v2,
        "same answer for a wrong password and an unknown email"
    );
    assert_eq!(s2, StatusCode::UNAUTHORIZED);

    let (s, v) = call(&f.state, "GET", "/v1/tenants", None, Value::Null).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    let (s, _) = call(&f.state, "GET", "/v1/tenants", Some("forged"), Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let token = login(&f.state).await;
    let (s, v) = call(&f.state, "GET", "/v1/tenants", Some(&token), Value::Null).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));

    // The unknown email is summarised by address, not audited one by one.
    let audit = f.state.store.audit_entries(None).expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(actions, ["session.failed", "session.created"]);
    assert_eq!(f.state.failures.flush(&f.state.store, true), 1);
    let audit = f.state.store.audit_entries(None).expect("audit");
    let last = &audit.last().expect("summary").entry;
    assert_eq!(last.action, "session.failed");
    assert!(last.outcome.starts_with("count=1 "), "{last:?}");
    let admin = f
        .state
        .store
        .user_by_email("admin@example.com")
        .expect("read")
        .expect("admin");
    assert_eq!(audit[0].entry.actor, admin.id, "known user: audited by id");
    assert_eq!(
        audit[2].entry.actor, "unknown address",
        "a stranger: by address"
    );
    let dump = serde_json::to_string(&audit).expect("json");
    assert!(!dump.contains("example.com") && !dump.contains(PASSWORD));
}

#[tokio::test]
async fn bad_bodies() {
    let f = fixture();
    let (s, v) = call_raw(
        &f.state,
        "POST",
        "/v1/sessions",
        None,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"));
    let token = login(&f.state).await;
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/tenants",
        Some(&token),
        json!({"name": "A", "extra": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("unknown field `extra`"),
        "{v}"
    );
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/tenants",
        Some(&token),
        json!({"name": 42}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v = without_request_id(v);
    assert!(!v.to_string().contains("42"), "values are not echoed");
    let (s, _) = call(
        &f.state,
        "POST",
        "/v1/tenants",
        Some(&token),
        json!({"name": "  "}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let big = vec![b' '; BODY_LIMIT + 1];
    let (s, v) = call_raw(&f.state, "POST", "/v1/tenants", Some(&token), big).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let req = Request::builder()
        .method("POST")
        .uri("/v1/sessions")
        .header("content-length", (BODY_LIMIT + 1).to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(
        handle(&f.state, req).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn tenants_sites_and_enrollment_tokens() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    let (s, v) = call(&f.state, "GET", "/v1/tenants", Some(&token), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["id"], json!(t));

    let (s, _) = call(
        &f.state,
        "GET",
        "/v1/tenants/tnt-unknown/sites",
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/sites"),
        Some(&token),
        json!({"name": "DC1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let site = v["id"].as_str().expect("id").to_owned();
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/sites"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(v[0]["name"], json!("DC1"));

    let path = format!("/v1/tenants/{t}/sites/{site}/enrollment-tokens");
    let (s, v) = call(&f.state, "POST", &path, Some(&token), json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let parsed: EnrollmentToken = v["token"].as_str().expect("token").parse().expect("parses");
    assert_eq!(parsed.tenant_id, t);
    assert_eq!(parsed.site_id, site);
    assert_eq!(parsed.coordinator_peer_id, "12D3KooWExamplePeer");
    assert_eq!(parsed.coordinator_addrs, ["/ip4/127.0.0.1/tcp/4001"]);
    assert_eq!(v["expires_at"].as_u64(), Some(parsed.expires_at * 1000));
    let now_s = crate::core::clock::now_ms() / 1000;
    assert!(parsed.expires_at >= now_s + 3599 && parsed.expires_at <= now_s + 3601);
    let grant = f
        .state
        .store
        .redeem_enrollment_token(&parsed.secret_hash(), now_s)
        .expect("redeemable once");
    assert_eq!(grant.site_id, site);

    let (s, _) = call(
        &f.state,
        "POST",
        &path,
        Some(&token),
        json!({"ttl_seconds": 86_401}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call(&f.state, "POST", &path, Some(&token), Value::Null).await;
    assert_eq!(s, StatusCode::CREATED, "empty body means defaults");
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/sites/site-nope/enrollment-tokens"),
        Some(&token),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn labels_submit_and_read() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    let device = printer_agent(&f.state, &t);
    let path = format!("/v1/tenants/{t}/labels");
    let zpl = b"^XA^FO50,50^FDJane Buyer 1 Main St^FS^XZ";
    let b64 = STANDARD.encode(zpl);

    let (s, v) = call(
        &f.state,
        "POST",
        &path,
        Some(&token),
        json!({"pool": "default", "format": "zpl", "content_base64": b64}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], json!("queued"));
    let job_id = v["id"].as_str().expect("id").to_owned();
    assert_eq!(
        f.recorder.calls.lock().expect("lock").as_slice(),
        [format!("job {t} {job_id}")]
    );
    assert_eq!(
        f.state.store.label(&t, &job_id).expect("label").as_slice(),
        zpl
    );
    let job = f.state.store.job(&t, &job_id).expect("read").expect("job");
    assert_eq!(job.label_len as usize, zpl.len());
    assert!(job.expires_at_ms >= job.created_at_ms + 600_000);

    let (s, v) = call(
        &f.state,
        "GET",
        &format!("{path}/{job_id}"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], json!("queued"));
    assert_eq!(v["pool"], json!("default"));
    assert_eq!(v["attempts"], json!(0));

    let printer = format!("{device}.p1");
    let (s, _) = call(
        &f.state,
        "POST",
        &path,
        Some(&token),
        json!({"printer": printer, "format": "zpl", "content_base64": b64}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);

    let cases = [
        (
            json!({"printer": "dev-x.p9", "format": "zpl", "content_base64": b64}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"printer": format!("{device}.pdf"), "format": "zpl", "content_base64": b64}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "elsewhere", "format": "zpl", "content_base64": b64}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "default", "printer": printer, "format": "zpl", "content_base64": b64}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"format": "zpl", "content_base64": b64}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"pool": "default", "format": "zpl", "content_base64": "not base64!"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"pool": "default", "format": "pdf", "content_base64": b64}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "default", "format": "png", "content_base64": b64}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "default", "format": "zpl", "content_base64": STANDARD.encode(b"hello")}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "default", "format": "zpl", "content_base64": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"pool": "default", "format": "gif", "content_base64": b64}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, want) in cases {
        let (s, v) = call(&f.state, "POST", &path, Some(&token), body.clone()).await;
        assert_eq!(s, want, "{body} -> {v}");
        assert!(
            !v.to_string().contains("Jane"),
            "no label content in errors"
        );
    }
    let pdf = STANDARD.encode(b"%PDF-1.4 label");
    let (s, _) = call(
        &f.state,
        "POST",
        &path,
        Some(&token),
        json!({"pool": "default", "format": "pdf", "content_base64": pdf}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);

    // Another tenant sees nothing of this one.
    let other = tenant(&f.state, &token).await;
    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{other}/labels/{job_id}"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{other}/labels"),
        Some(&token),
        json!({"printer": printer, "format": "zpl", "content_base64": b64}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/tnt-unknown/labels/{job_id}"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The audit log records the request by id and hash only.
    let (s, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/audit"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let dump = v.to_string();
    assert!(dump.contains("label.requested") && dump.contains(&job_id));
    assert!(!dump.contains("Jane") && !dump.contains(&b64));
    f.state.store.verify_audit_chain().expect("chain intact");
}

#[tokio::test]
async fn agents_printers_and_revocation() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    let device = printer_agent(&f.state, &t);

    let (s, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/agents"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["id"], json!(device));
    assert_eq!(v[0]["online"], json!(true));
    assert_eq!(v[0]["revoked"], json!(false));
    assert_eq!(v[0]["version"], json!("0.1.0"));
    assert!(v[0]["last_heartbeat_at"].as_u64().is_some());
    assert!(v[0]["clock_offset_ms"].as_i64().is_some(), "{v}");

    let (s, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/printers"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 2);
    let p1 = list.iter().find(|p| p["name"] == json!("p1")).expect("p1");
    assert_eq!(p1["verified"], json!(true));
    assert_eq!(p1["verdict"], json!("verified"));
    assert_eq!(p1["status"], json!("ready"));
    assert_eq!(p1["agent"], json!(device));

    let other = tenant(&f.state, &token).await;
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{other}/agents/{device}/revoke"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's agent");
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/agents/{device}/revoke"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        f.recorder.calls.lock().expect("lock").as_slice(),
        [format!("revoked {device}")]
    );
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/agents"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(v[0]["revoked"], json!(true));
    assert_eq!(v[0]["online"], json!(false));
    assert_eq!(
        f.state.store.revoked_devices(&t).expect("devices"),
        vec![device.clone()]
    );
}

/// Creates a user of `tenant` with `roles` through the API and logs it in.
async fn user(
    state: &Arc<ApiState>,
    admin: &str,
    tenant: &str,
    email: &str,
    roles: Value,
) -> String {
    let (s, v) = call(
        state,
        "POST",
        &format!("/v1/tenants/{tenant}/users"),
        Some(admin),
        json!({"email": email, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(
        state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

fn actions(state: &Arc<ApiState>) -> Vec<(String, String)> {
    state
        .store
        .audit_entries(None)
        .expect("audit")
        .into_iter()
        .map(|e| (e.entry.action, e.entry.outcome))
        .collect()
}

/// Logs `email` in; the token.
async fn login_as(state: &Arc<ApiState>, email: &str, password: &str) -> (StatusCode, Value) {
    call(
        state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

fn user_id(state: &Arc<ApiState>, email: &str) -> String {
    state
        .store
        .user_by_email(email)
        .expect("read")
        .expect("user")
        .id
}

/// A login from `peer` (status, body).
async fn login_from(state: &Arc<ApiState>, body: &Value, peer: &str) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/sessions")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr(peer.parse().expect("peer")));
    let resp = handle(state, req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json answer"))
}

/// Like `call`, from the TCP peer `peer`.
async fn call_from(
    state: &Arc<ApiState>,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
    peer: &str,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(bytes)))
        .expect("request");
    let addr: std::net::SocketAddr = peer.parse().expect("peer");
    req.extensions_mut().insert(PeerAddr(addr));
    let resp = handle(state, req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json answer"))
}

fn zpl_label(order_id: Option<&str>) -> Value {
    let mut v = json!({
        "pool": "default",
        "format": "zpl",
        "content_base64": STANDARD.encode(b"^XA^FDlabel^FS^XZ"),
    });
    if let Some(o) = order_id {
        v["order_id"] = json!(o);
    }
    v
}

mod agent_policy;
mod api_keys;
mod audit_log;
mod compliance_gates;
mod idempotency;
mod lists;
mod pii;
mod public_rate;
mod roles;
mod user_accounts;
