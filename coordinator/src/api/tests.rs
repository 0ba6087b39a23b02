//! API tests without sockets: requests go through [`handle`] against a temporary store and a
//! recording fake [`Dispatch`].

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

#[tokio::test]
async fn tenant_users_are_isolated() {
    let f = fixture();
    let admin = login(&f.state).await;
    let mine = tenant(&f.state, &admin).await;
    let theirs = tenant(&f.state, &admin).await;
    let hash = crypto::hash_password(PASSWORD).expect("hash");
    f.state
        .store
        .create_user(
            "op@example.com",
            hash,
            false,
            Some(mine.clone()),
            vec![crate::core::accounts::Role::Operator],
            crate::core::clock::now_ms(),
        )
        .expect("user");
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": "op@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let op = v["token"].as_str().expect("token").to_owned();

    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{mine}/agents"),
        Some(&op),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{theirs}/agents"),
        Some(&op),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &f.state,
        "POST",
        "/v1/tenants",
        Some(&op),
        json!({"name": "X"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

// ---- accounts and compliance (issue 4) ------------------------------------------------------

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

#[tokio::test]
async fn users_follow_the_password_and_grant_rules() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let path = format!("/v1/tenants/{t}/users");
    let cases = [
        ("Sh0rt!", "8 to 256 characters"),
        ("alllowercase1!", "upper-case"),
        ("Password1!", "too common"),
        ("P@ssw0rd2024", "too common"),
        ("Acme-Labels-2024", "company name"),
        ("Jdoe-Printing-1", "email name"),
    ];
    for (pw, why) in cases {
        let (s, v) = call(
            &f.state,
            "POST",
            &path,
            Some(&admin),
            json!({"email": "jdoe@acme.example", "password": pw, "roles": ["operator"]}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{pw}: {v}");
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains(why), "{pw}: {msg}");
        assert!(!msg.contains(pw), "the password is not echoed");
    }
    for bad in [json!([]), json!(["root"])] {
        let (s, _) = call(
            &f.state,
            "POST",
            &path,
            Some(&admin),
            json!({"email": "x@acme.example", "password": PASSWORD, "roles": bad}),
        )
        .await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST);
    }
    let tenant_admin = user(&f.state, &admin, &t, "it@acme.example", json!(["admin"])).await;
    // An admin may add operators, but not owners or PII readers.
    for role in ["owner", "pii_reader"] {
        let (s, v) = call(
            &f.state,
            "POST",
            &path,
            Some(&tenant_admin),
            json!({"email": "z@acme.example", "password": PASSWORD, "roles": [role]}),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}: {v}");
    }
    user(
        &f.state,
        &tenant_admin,
        &t,
        "op@acme.example",
        json!(["operator"]),
    )
    .await;
    let (s, _) = call(
        &f.state,
        "POST",
        &path,
        Some(&admin),
        json!({"email": "OP@acme.example", "password": PASSWORD, "roles": ["auditor"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "emails are unique ids");

    let (s, v) = call(&f.state, "GET", &path, Some(&tenant_admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|u| u["roles"] == json!(["operator"])));
    let dump = v.to_string();
    assert!(!dump.contains("argon2") && !dump.contains("hash"), "{dump}");
    let audit = actions(&f.state);
    assert!(audit
        .iter()
        .any(|(a, o)| a == "user.created" && o == "ok roles=operator"));
    assert!(audit.iter().any(|(a, _)| a == "user.create_refused"));
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

#[tokio::test]
async fn users_are_changed_and_disabled_with_least_privilege() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let owner = user(&f.state, &admin, &t, "boss@acme.example", json!(["owner"])).await;
    let adm = user(&f.state, &admin, &t, "it@acme.example", json!(["admin"])).await;
    let op = user(
        &f.state,
        &admin,
        &t,
        "ops@acme.example",
        json!(["operator"]),
    )
    .await;
    let (boss, it, ops) = (
        user_id(&f.state, "boss@acme.example"),
        user_id(&f.state, "it@acme.example"),
        user_id(&f.state, "ops@acme.example"),
    );
    let patch = |who: &str, id: &str, body: Value| {
        let (who, path) = (who.to_owned(), format!("/v1/tenants/{t}/users/{id}"));
        let state = &f.state;
        async move { call(state, "PATCH", &path, Some(&who), body).await }
    };
    let users = format!("/v1/tenants/{t}/users");

    // An admin changes an operator's roles; it applies to the operator's session at once.
    let (s, v) = patch(&adm, &ops, json!({"roles": ["auditor"]})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["roles"], json!(["auditor"]));
    let (s, _) = call(&f.state, "GET", &users, Some(&op), Value::Null).await;
    assert_eq!(s, StatusCode::OK, "an auditor reads users");
    assert!(actions(&f.state)
        .iter()
        .any(|(a, o)| a == "user.updated" && o == "ok roles=auditor disabled=false"));

    // Least privilege: an admin grants no owner, and cannot touch an owner.
    let (s, v) = patch(&adm, &ops, json!({"roles": ["owner"]})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = patch(&adm, &boss, json!({"disabled": true})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = patch(&op, &ops, json!({"roles": ["admin"]})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an auditor changes nobody");
    assert!(actions(&f.state)
        .iter()
        .any(|(a, _)| a == "user.update_refused"));

    // Nobody removes or disables the last owner, not even itself or a platform admin.
    for body in [json!({"roles": ["admin"]}), json!({"disabled": true})] {
        for who in [&owner, &admin] {
            let (s, v) = patch(who, &boss, body.clone()).await;
            assert_eq!(s, StatusCode::CONFLICT, "{v}");
        }
    }
    let (s, v) = patch(&owner, &it, json!({"roles": ["owner", "admin"]})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch(&owner, &boss, json!({"roles": ["admin"]})).await;
    assert_eq!(s, StatusCode::OK, "another owner exists now: {v}");
    let (s, v) = patch(&adm, &boss, json!({"roles": ["owner"]})).await;
    assert_eq!(s, StatusCode::OK, "an owner grants owner: {v}");

    // Disabling: sessions and API keys stop at once, login is refused.
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/api-keys"),
        Some(&adm),
        json!({"name": "erp", "roles": ["operator"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().expect("key").to_owned();
    let agents = format!("/v1/tenants/{t}/agents");
    let (s, _) = call(&f.state, "GET", &agents, Some(&key), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = patch(&owner, &it, json!({"disabled": true})).await;
    assert_eq!((s, &v["disabled"]), (StatusCode::OK, &json!(true)), "{v}");
    for token in [&adm, &key] {
        let (s, v) = call(&f.state, "GET", &agents, Some(token), Value::Null).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    let (s, v) = login_as(&f.state, "it@acme.example", PASSWORD).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "account_disabled"));
    // Enabled again: a new login works, the old session stays revoked.
    let (s, _) = patch(&owner, &it, json!({"disabled": false})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = login_as(&f.state, "it@acme.example", PASSWORD).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = call(&f.state, "GET", &agents, Some(&adm), Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&f.state, "GET", &agents, Some(&key), Value::Null).await;
    assert_eq!(s, StatusCode::OK);

    // A demoted admin's keys lose what it may no longer grant.
    let (s, _) = patch(&owner, &it, json!({"roles": ["auditor"]})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&f.state, "GET", &agents, Some(&key), Value::Null).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // Another tenant's user is not found.
    let other = tenant(&f.state, &admin).await;
    let stranger = user(
        &f.state,
        &admin,
        &other,
        "x@other.example",
        json!(["owner"]),
    )
    .await;
    let (s, _) = patch(&stranger, &ops, json!({"disabled": true})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &f.state,
        "PATCH",
        &format!("/v1/tenants/{other}/users/{ops}"),
        Some(&stranger),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not a user of that tenant");
}

#[tokio::test]
async fn a_password_change_revokes_the_users_sessions() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let first = user(
        &f.state,
        &admin,
        &t,
        "ops@acme.example",
        json!(["operator"]),
    )
    .await;
    let (_, v) = login_as(&f.state, "ops@acme.example", PASSWORD).await;
    let second = v["token"].as_str().expect("token").to_owned();
    let agents = format!("/v1/tenants/{t}/agents");
    let new_password = "Stapler-Orbit-Lantern-4";
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/sessions/password",
        None,
        json!({"email": "ops@acme.example", "password": PASSWORD, "new_password": new_password}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for token in [&first, &second] {
        let (s, v) = call(&f.state, "GET", &agents, Some(token), Value::Null).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    let (_, v) = login_as(&f.state, "ops@acme.example", new_password).await;
    let fresh = v["token"].as_str().expect("token").to_owned();
    let (s, _) = call(&f.state, "GET", &agents, Some(&fresh), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    // The admin's own session is untouched.
    let (s, _) = call(&f.state, "GET", &agents, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
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

#[tokio::test]
async fn failures_from_several_addresses_lock_the_account_for_everyone() {
    let f = fixture();
    let wrong = json!({"email": "admin@example.com", "password": "Wrong-Password-1"});
    let per_addr = crate::core::accounts::LOCKOUT_THRESHOLD - 1;
    let addrs = crate::core::accounts::ACCOUNT_LOCKOUT_THRESHOLD.div_ceil(per_addr);
    let mut statuses = Vec::new();
    for a in 0..addrs {
        for _ in 0..per_addr {
            let (s, _) = login_from(&f.state, &wrong, &format!("192.0.2.{}:1", a + 1)).await;
            statuses.push(s);
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::LOCKED)
            .count(),
        statuses.len() - crate::core::accounts::ACCOUNT_LOCKOUT_THRESHOLD + 1,
        "{statuses:?}"
    );
    let right = json!({"email": "admin@example.com", "password": PASSWORD});
    let (s, v) = login_from(&f.state, &right, "198.51.100.1:1").await;
    assert_eq!((s, code(&v)), (StatusCode::LOCKED, "account_locked"), "{v}");
    let admin = f
        .state
        .store
        .user_by_email("admin@example.com")
        .expect("read")
        .expect("admin");
    assert!(admin.locked_until_ms.is_some(), "the lock is on the record");
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_for_that_address() {
    let f = fixture();
    let wrong = json!({"email": "admin@example.com", "password": "Wrong-Password-1"});
    for _ in 0..4 {
        let (s, _) = call(&f.state, "POST", "/v1/sessions", None, wrong.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, v) = call(&f.state, "POST", "/v1/sessions", None, wrong.clone()).await;
    assert_eq!((s, code(&v)), (StatusCode::LOCKED, "account_locked"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("locked for 15"));
    // Even the right password is refused while locked.
    let right = json!({"email": "admin@example.com", "password": PASSWORD});
    let (s, _) = call(&f.state, "POST", "/v1/sessions", None, right.clone()).await;
    assert_eq!(s, StatusCode::LOCKED);
    let audit = actions(&f.state);
    assert_eq!(
        audit.iter().filter(|(a, _)| a == "session.failed").count(),
        6,
        "every failure is audited: {audit:?}"
    );
    assert!(audit.contains(&(
        "session.failed".into(),
        "bad credentials; account locked".into()
    )));
    // The lock holds for the address that caused it; the owner, from another address, still
    // gets in (one address cannot lock an account out for everyone).
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/sessions")
        .body(Full::new(Bytes::from(right.to_string())))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr("192.0.2.7:4000".parse().expect("peer")));
    let s = handle(&f.state, req).await.status();
    assert_eq!(s, StatusCode::CREATED);
    let admin = f
        .state
        .store
        .user_by_email("admin@example.com")
        .expect("read")
        .expect("admin");
    let u = f.state.store.user(&admin.id).expect("read").expect("user");
    assert!(u.failed_logins.is_empty() && u.locked_until_ms.is_none());
}

#[tokio::test]
async fn expired_passwords_must_be_changed() {
    let f = fixture();
    let admin = f
        .state
        .store
        .user_by_email("admin@example.com")
        .expect("read")
        .expect("admin");
    f.state
        .store
        .update_user(&admin.id, |u| {
            u.password_changed_at_ms =
                Some(crate::core::clock::now_ms() - crate::core::accounts::PASSWORD_MAX_AGE_MS - 1);
        })
        .expect("update");
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": "admin@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "password_expired"));
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("/v1/sessions/password"));

    let change = |new: &str| json!({"email": "admin@example.com", "password": PASSWORD, "new_password": new});
    for weak in [PASSWORD, "weak", "Password1!"] {
        let (s, _) = call(
            &f.state,
            "POST",
            "/v1/sessions/password",
            None,
            change(weak),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
    }
    let (s, _) = call(
        &f.state,
        "POST",
        "/v1/sessions/password",
        None,
        json!({"email": "admin@example.com", "password": "Not-The-Password-1", "new_password": "Brand-New-Secret-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/sessions/password",
        None,
        change("Brand-New-Secret-42"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = call(
        &f.state,
        "POST",
        "/v1/sessions",
        None,
        json!({"email": "admin@example.com", "password": "Brand-New-Secret-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(actions(&f.state)
        .iter()
        .any(|(a, _)| a == "password.changed"));
}

/// Every route × every role: allowed ones pass the authorisation, others get 403, users of
/// another tenant 404.
#[tokio::test]
async fn every_route_checks_role_and_tenant() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let other = tenant(&f.state, &admin).await;
    let device = printer_agent(&f.state, &t);
    let (_, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/sites"),
        Some(&admin),
        json!({"name": "DC1"}),
    )
    .await;
    let site = v["id"].as_str().expect("site").to_owned();
    let b64 = STANDARD.encode(b"^XA^FDlabel^FS^XZ");
    let (_, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/labels"),
        Some(&admin),
        json!({"pool": "default", "format": "zpl", "content_base64": b64}),
    )
    .await;
    let job = v["id"].as_str().expect("job").to_owned();

    // Only a tenant's owner grants pii_reader (never a platform admin): an owner makes them.
    let root = user(&f.state, &admin, &t, "root@acme.example", json!(["owner"])).await;
    let mut principals = Vec::new();
    for role in crate::core::accounts::Role::ALL {
        let name = role.as_str().replace('_', "");
        let token = user(
            &f.state,
            &root,
            &t,
            &format!("{name}@acme.example"),
            json!([role]),
        )
        .await;
        principals.push((role.as_str().to_owned(), token));
    }
    let other_root = user(
        &f.state,
        &admin,
        &other,
        "root@other.example",
        json!(["owner"]),
    )
    .await;
    let outsider = user(
        &f.state,
        &other_root,
        &other,
        "boss@other.example",
        json!(["owner", "admin", "operator", "auditor", "pii_reader"]),
    )
    .await;

    user(
        &f.state,
        &admin,
        &t,
        "target@acme.example",
        json!(["operator"]),
    )
    .await;
    let target = f
        .state
        .store
        .user_by_email("target@acme.example")
        .expect("read")
        .expect("target")
        .id;
    let label = json!({"pool": "default", "format": "zpl", "content_base64": b64});
    crate::services::ca::Identity::create(&f.state.store).expect("identity");
    let (alert, _) = f
        .state
        .store
        .raise_alert(
            &t,
            crate::store::AlertRule::AgentOffline,
            Some(&device),
            "m",
            1,
        )
        .expect("alert");
    let alert = alert.id;
    let routes: Vec<(&str, String, Value, &[&str])> = vec![
        ("GET", "/v1/tenants".into(), Value::Null, &[]),
        ("POST", "/v1/tenants".into(), json!({"name": "X"}), &[]),
        ("GET", "/v1/audit".into(), Value::Null, &[]),
        (
            "GET",
            format!("/v1/tenants/{t}/sites"),
            Value::Null,
            &["owner", "admin", "operator", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/sites"),
            json!({"name": "S"}),
            &["owner", "admin"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/sites/{site}/enrollment-tokens"),
            json!({}),
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/agents"),
            Value::Null,
            &["owner", "admin", "operator", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/agents/{device}/revoke"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/agent-policy"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/agent-policy"),
            json!({"min_agent_version": null}),
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/desired-version"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/desired-version"),
            json!({"version": null}),
            &["owner", "admin"],
        ),
        ("GET", "/v1/releases".into(), Value::Null, &[]),
        ("PUT", "/v1/releases/0.2.0/manifest".into(), json!({}), &[]),
        (
            "PUT",
            "/v1/releases/0.2.0/artifacts/sealprint-agent".into(),
            json!({}),
            &[],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/printers"),
            Value::Null,
            &["owner", "admin", "operator", "auditor"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/spapi-connections"),
            Value::Null,
            &["owner", "admin", "operator", "auditor"],
        ),
        // Without its fields: 400 once authorised.
        (
            "POST",
            format!("/v1/tenants/{t}/spapi-connections"),
            json!({}),
            &["owner", "admin"],
        ),
        // An unknown printer: 404 once authorised.
        (
            "POST",
            format!("/v1/tenants/{t}/printers/prn-none/accept"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/labels"),
            label,
            &["operator"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/labels"),
            Value::Null,
            &["operator", "pii_reader"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/labels/{job}"),
            Value::Null,
            &["operator", "pii_reader"],
        ),
        // The test dispatcher settles nothing: 503 once authorised.
        (
            "POST",
            format!("/v1/tenants/{t}/labels/{job}/resolve"),
            json!({"outcome": "not_printed"}),
            &["owner", "admin", "operator"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/labels/{job}/cancel"),
            Value::Null,
            &["owner", "admin", "operator"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/audit"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/audit/verify"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/compliance"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/users"),
            Value::Null,
            &["owner", "admin", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/users"),
            json!({"email": "new{n}@acme.example", "password": PASSWORD, "roles": ["operator"]}),
            &["owner", "admin"],
        ),
        (
            "PATCH",
            format!("/v1/tenants/{t}/users/{target}"),
            json!({"roles": ["operator", "auditor"]}),
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/attestation"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/attestation"),
            attestation(),
            &["owner"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/terms"),
            json!({"version": "2025-01"}),
            &["owner"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/subscription"),
            json!({"state": "active"}),
            &[],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/suspend"),
            json!({"reason": "INC-1"}),
            &[],
        ),
        ("POST", format!("/v1/tenants/{t}/resume"), Value::Null, &[]),
        (
            "GET",
            format!("/v1/tenants/{t}/alerts"),
            Value::Null,
            &["owner", "admin", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/alerts/{alert}/clear"),
            Value::Null,
            &["owner"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/canaries"),
            Value::Null,
            &["owner"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/canaries"),
            json!({"order_ids": ["999-0000000-0000000"]}),
            &["owner"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/api-keys"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/api-keys"),
            json!({"name": "k{n}", "roles": ["operator"]}),
            &["owner", "admin"],
        ),
        // An unknown key: 404 once authorised, 403 before.
        (
            "DELETE",
            format!("/v1/tenants/{t}/api-keys/key-0"),
            Value::Null,
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/ip-allowlist"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/ip-allowlist"),
            json!({"cidrs": []}),
            &["owner"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/audit/checkpoints"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/audit/checkpoints"),
            Value::Null,
            &["owner", "auditor"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/notifications"),
            Value::Null,
            &["owner", "admin", "auditor"],
        ),
        (
            "PUT",
            format!("/v1/tenants/{t}/webhook"),
            json!({"url": "https://hooks.acme.example/sealprint"}),
            &["owner", "admin"],
        ),
        (
            "GET",
            format!("/v1/tenants/{t}/webhook"),
            Value::Null,
            &["owner", "admin", "auditor"],
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/webhook/test"),
            Value::Null,
            &["owner", "admin"],
        ),
        // The first allowed caller deletes it; the others get 404 once authorised.
        (
            "DELETE",
            format!("/v1/tenants/{t}/webhook"),
            Value::Null,
            &["owner", "admin"],
        ),
        // A wrong confirmation: 422 once authorised (the real deletion has its own test).
        (
            "POST",
            format!("/v1/tenants/{t}/deletion"),
            json!({"confirm": "tnt-other"}),
            &["owner"],
        ),
    ];
    // The SP-API shopping step, on an unknown connection: 404 once authorised.
    let mut routes = routes;
    for action in [
        "eligible-services",
        "additional-seller-inputs",
        "rates",
        "additional-inputs",
        "cancel-shipment",
    ] {
        routes.push((
            "POST",
            format!("/v1/tenants/{t}/spapi-connections/spc-none/{action}"),
            json!({}),
            &["operator"],
        ));
    }
    // Past the authorisation, a refusal of the request itself (not of the caller).
    let authorised = |method: &str, path: &str, s: StatusCode| {
        s.is_success()
            || (method == "DELETE" && s == StatusCode::NOT_FOUND)
            || (path.ends_with("/deletion") && s == StatusCode::UNPROCESSABLE_ENTITY)
            || (path.contains("/spapi-connections/spc-none/") && s == StatusCode::NOT_FOUND)
            || (path.contains("/printers/prn-none/") && s == StatusCode::NOT_FOUND)
            || (path.ends_with("/spapi-connections") && s == StatusCode::BAD_REQUEST)
            || ((path.ends_with("/resolve") || path.ends_with("/cancel"))
                && s == StatusCode::SERVICE_UNAVAILABLE)
            // No release key configured in the fixture: uploads are refused.
            || (path.starts_with("/v1/releases/") && s == StatusCode::UNPROCESSABLE_ENTITY)
    };
    let mut n = 0;
    for (method, path, body, allowed) in &routes {
        let mut body = body.clone();
        let mut send = |b: &Value| {
            n += 1;
            serde_json::from_str::<Value>(&b.to_string().replace("{n}", &n.to_string()))
                .expect("json")
        };
        for (role, token) in &principals {
            let (s, v) = call(&f.state, method, path, Some(token), send(&body)).await;
            if allowed.contains(&role.as_str()) {
                assert!(
                    authorised(method, path, s),
                    "{role} {method} {path}: {s} {v}"
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {method} {path}: {v}");
            }
        }
        let (s, v) = call(&f.state, method, path, Some(&outsider), send(&body)).await;
        let want = if path.starts_with("/v1/tenants/") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(s, want, "outsider {method} {path}: {v}");
        // The platform admin goes last (it suspends, then resumes, the tenant).
        body = send(&body);
        let (s, v) = call(&f.state, method, path, Some(&admin), body).await;
        assert!(
            authorised(method, path, s),
            "platform admin {method} {path}: {s} {v}"
        );
    }
    // Every route of the route table that needs a principal is in this table, once.
    let matches = |pattern: &str, path: &str| {
        let (p, q): (Vec<&str>, Vec<&str>) =
            (pattern.split('/').collect(), path.split('/').collect());
        p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| a.starts_with('{') || a == b)
    };
    for r in super::routes::ROUTES
        .iter()
        .filter(|r| r.access != super::route::Access::Public)
    {
        let n = routes
            .iter()
            .filter(|(m, p, _, _)| *m == r.method.as_str() && matches(r.path, p))
            .count();
        assert_eq!(
            n, 1,
            "{} {} is not in the role table once",
            r.method, r.path
        );
    }
    let signed = super::routes::ROUTES
        .iter()
        .filter(|r| r.access != super::route::Access::Public);
    assert_eq!(routes.len(), signed.count());
}

#[tokio::test]
async fn provisioning_and_labels_need_an_active_subscription() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = bare_tenant(&f.state, &admin).await;
    printer_agent(&f.state, &t);
    let (_, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/sites"),
        Some(&admin),
        json!({"name": "DC1"}),
    )
    .await;
    let site = v["id"].as_str().expect("site").to_owned();
    let tokens = format!("/v1/tenants/{t}/sites/{site}/enrollment-tokens");
    let (s, v) = call(&f.state, "POST", &tokens, Some(&admin), json!({})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYMENT_REQUIRED, "subscription_inactive")
    );
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("subscription is none"));
    let label = json!({"pool": "default", "format": "zpl",
        "content_base64": STANDARD.encode(b"^XA^FDJane Buyer^FS^XZ")});
    let labels = format!("/v1/tenants/{t}/labels");
    let (s, _) = call(&f.state, "POST", &labels, Some(&admin), label.clone()).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);

    let sub = format!("/v1/tenants/{t}/subscription");
    let (s, _) = call(
        &f.state,
        "PUT",
        &sub,
        Some(&admin),
        json!({"state": "active", "plan": "saas_provider"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&f.state, "POST", &tokens, Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &f.state,
        "PUT",
        &sub,
        Some(&admin),
        json!({"state": "past_due"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&f.state, "POST", &tokens, Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    let audit = actions(&f.state);
    assert!(audit.contains(&(
        "subscription.updated".into(),
        "ok state=past_due source=admin".into()
    )));
    assert!(audit
        .iter()
        .any(|(a, o)| a == "enrollment_token.refused" && o == "subscription_inactive"));
}

#[tokio::test]
async fn labels_are_redacted_until_the_attestation_is_complete() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = bare_tenant(&f.state, &admin).await;
    call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/subscription"),
        Some(&admin),
        json!({"state": "active"}),
    )
    .await;
    printer_agent(&f.state, &t);
    let labels = format!("/v1/tenants/{t}/labels");
    let real = b"^XA^FO50,50^FDJane Buyer 1 Main St^FS^XZ";
    let submit = json!({"pool": "default", "format": "zpl", "content_base64": STANDARD.encode(real),
        "order_id": "113-1234567-1234567", "carrier": "UPS", "tracking": "1Z999"});
    let (s, v) = call(&f.state, "POST", &labels, Some(&admin), submit.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["redacted"], json!(true));
    let job = v["id"].as_str().expect("id").to_owned();
    let stored = f.state.store.label(&t, &job).expect("label");
    let text = String::from_utf8(stored.to_vec()).expect("zpl");
    assert!(
        text.contains("REDACTED: complete the security attestation"),
        "{text}"
    );
    assert!(text.contains("113-1234567-1234567") && text.contains("UPS") && text.contains("1Z999"));
    assert!(!text.contains("Jane"), "the real label is never stored");
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("{labels}/{job}"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["redacted"], json!(true));

    // An incomplete attestation still redacts; a complete one prints the real label.
    let att = format!("/v1/tenants/{t}/attestation");
    let mut partial = attestation();
    partial["screen_lock_minutes"] = json!(30);
    let (s, v) = call(&f.state, "PUT", &att, Some(&admin), partial).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&v["state"], &v["missing"]),
        (&json!("incomplete"), &json!(["screen_lock_minutes"]))
    );
    let (_, v) = call(&f.state, "POST", &labels, Some(&admin), submit.clone()).await;
    assert_eq!(v["redacted"], json!(true));
    let (s, _) = call(&f.state, "PUT", &att, Some(&admin), attestation()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&f.state, "POST", &labels, Some(&admin), submit).await;
    assert_eq!(v["redacted"], json!(false));
    let job = v["id"].as_str().expect("id");
    assert_eq!(
        f.state.store.label(&t, job).expect("label").as_slice(),
        real
    );
    let (s, _) = call(
        &f.state,
        "POST",
        &labels,
        Some(&admin),
        json!({"pool": "default", "format": "zpl", "content_base64": STANDARD.encode(real), "order_id": "1^XZ"}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no ZPL injection in fields"
    );
}

#[tokio::test]
async fn suspended_tenants_are_refused_with_the_reason() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    printer_agent(&f.state, &t);
    let owner = user(
        &f.state,
        &admin,
        &t,
        "boss@acme.example",
        json!(["owner", "operator"]),
    )
    .await;
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/suspend"),
        Some(&owner),
        json!({"reason": "INC-42 key leak"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only platform admins suspend");
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/suspend"),
        Some(&admin),
        json!({"reason": "INC-42 key leak"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let label =
        json!({"pool": "default", "format": "zpl", "content_base64": STANDARD.encode(b"^XA^XZ")});
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/labels"),
        Some(&owner),
        label.clone(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "tenant_suspended"));
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("INC-42 key leak"));
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/compliance"),
        Some(&owner),
        Value::Null,
    )
    .await;
    assert_eq!(v["labels"], json!("refused"));
    assert_eq!(v["restrictions"][0]["kind"], json!("suspended"));
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/resume"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/labels"),
        Some(&owner),
        label,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let audit = actions(&f.state);
    for a in ["tenant.suspended", "tenant.resumed", "label.refused"] {
        assert!(audit.iter().any(|(x, _)| x == a), "{a}");
    }
    assert!(
        !format!("{audit:?}").contains("key leak"),
        "free text stays out of the audit log"
    );
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/notifications"),
        Some(&owner),
        Value::Null,
    )
    .await;
    let kinds: Vec<&Value> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|n| &n["type"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("tenant_resumed"), &json!("tenant_suspended")]
    );
    assert!(
        !v.to_string().contains("key leak"),
        "free text stays out of notifications"
    );
}

#[tokio::test]
async fn billing_webhook_verifies_signatures_and_sets_the_subscription() {
    use crate::core::compliance::billing::sign;
    let f = fixture();
    let admin = login(&f.state).await;
    let t = bare_tenant(&f.state, &admin).await;
    let now_s = crate::core::clock::now_ms() / 1000;
    let event = |status: &str, created: u64| {
        json!({"id": "evt_1", "type": "customer.subscription.updated", "created": created,
            "data": {"object": {"status": status, "metadata": {"tenant_id": t}}}})
        .to_string()
        .into_bytes()
    };
    let post = |body: Vec<u8>, sig: Option<String>| {
        let mut b = Request::builder().method("POST").uri("/v1/billing/webhook");
        if let Some(s) = sig {
            b = b.header("Stripe-Signature", s);
        }
        b.body(Full::new(Bytes::from(body))).expect("request")
    };
    let state = || -> String {
        f.state
            .store
            .tenant(&t)
            .expect("read")
            .expect("tenant")
            .subscription
            .state
            .as_str()
            .to_owned()
    };

    let body = event("active", now_s);
    for sig in [
        None,
        Some("t=1,v1=00".to_owned()),
        Some(sign(b"wrong-secret-0123456", &body, now_s)),
        Some(sign(WEBHOOK_SECRET, &body, now_s - 301)),
    ] {
        let resp = handle(&f.state, post(body.clone(), sig)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(state(), "none");
    let resp = handle(
        &f.state,
        post(body.clone(), Some(sign(WEBHOOK_SECRET, &body, now_s))),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(state(), "active");
    // An older event delivered late does not undo a newer one.
    let old = event("canceled", now_s - 3600);
    let resp = handle(
        &f.state,
        post(old.clone(), Some(sign(WEBHOOK_SECRET, &old, now_s))),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(state(), "active");
    let newer = event("past_due", now_s + 1);
    handle(
        &f.state,
        post(newer.clone(), Some(sign(WEBHOOK_SECRET, &newer, now_s))),
    )
    .await;
    assert_eq!(state(), "past_due");
    // Four refusals from one address: no entry each, one summary with their count.
    let audit = actions(&f.state);
    assert_eq!(
        audit.iter().filter(|(a, _)| a == "billing.refused").count(),
        0
    );
    assert_eq!(f.state.failures.flush(&f.state.store, true), 1);
    let audit = actions(&f.state);
    let refused: Vec<_> = audit
        .iter()
        .filter(|(a, _)| a == "billing.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit:?}");
    assert!(refused[0].1.starts_with("count=4 "), "{refused:?}");

    let off = Arc::new(ApiState {
        billing_webhook_secret: None,
        spapi: f.state.spapi.clone(),
        store: f.state.store.clone(),
        dispatch: f.recorder.clone(),
        peer_id: String::new(),
        mesh_addrs: vec![],
        heartbeat_interval: Duration::from_secs(10),
        failures: f.state.failures.clone(),
        limits: limits::Limits::default(),
        agent_versions: Default::default(),
        readiness: Arc::new(crate::core::readiness::Readiness::ready()),
        releases: f.state.releases.clone(),
    });
    let resp = handle(
        &off,
        post(body.clone(), Some(sign(WEBHOOK_SECRET, &body, now_s))),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn audit_verify_says_where_the_chain_breaks() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let path = format!("/v1/tenants/{t}/audit/verify");
    let (s, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["intact"], json!(true), "{v}");
    let n = v["entries"].as_u64().expect("entries");
    assert!(n >= 4);
    let tree = f.state.store.audit_tree();
    let key = 2u64.to_be_bytes();
    let mut e: crate::core::audit::ChainedEntry =
        serde_json::from_slice(&tree.get(key).expect("get").expect("entry")).expect("decode");
    e.entry.outcome = "edited".into();
    tree.insert(key, serde_json::to_vec(&e).expect("json"))
        .expect("tamper");
    let (_, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(v["intact"], json!(false));
    assert_eq!(v["first_bad_entry"], json!(2));
    assert!(v["problem"].as_str().expect("problem").contains("altered"));
}

#[tokio::test]
async fn compliance_shows_tier_requirements_and_restrictions() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = bare_tenant(&f.state, &admin).await;
    let path = format!("/v1/tenants/{t}/compliance");
    let (s, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["tier"], json!("standard"));
    assert_eq!(v["labels"], json!("refused"));
    assert_eq!(v["restrictions"][0]["kind"], json!("subscription_inactive"));
    assert_eq!(v["attestation"]["state"], json!("missing"));
    let req = |v: &Value, id: &str| {
        v["requirements"]
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["id"] == json!(id))
            .cloned()
    };
    assert_eq!(
        req(&v, "terms_of_service").expect("terms")["met"],
        json!(false)
    );

    call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/subscription"),
        Some(&admin),
        json!({"state": "active"}),
    )
    .await;
    call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/terms"),
        Some(&admin),
        json!({"version": "2025-01"}),
    )
    .await;
    // Six Print Stations make the tenant Enhanced, which opens its extra requirements.
    for _ in 0..6 {
        printer_agent(&f.state, &t);
    }
    let (_, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(v["measured_tier"], json!("enhanced"));
    assert_eq!(v["tier"], json!("standard"), "until the monitor sees it");
    let now = crate::core::clock::now_ms();
    crate::services::monitor::renewals::sweep(&f.state.store, now).expect("sweep");
    let (_, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(v["tier"], json!("enhanced"));
    assert_eq!(
        req(&v, "security_contact").expect("contact")["due_at"],
        json!(now + crate::core::compliance::requirements::TIER_DEADLINE_MS)
    );
    assert_eq!(v["usage"]["print_stations"], json!(6));
    assert_eq!(v["labels"], json!("redacted"));
    assert_eq!(
        req(&v, "terms_of_service").expect("terms")["met"],
        json!(true)
    );
    assert_eq!(
        req(&v, "security_contact").expect("contact")["state"],
        json!("open")
    );
    let mut att = attestation();
    att["security_contact"] = json!("security@acme.example");
    att["annual_questionnaire"] = json!(true);
    call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/attestation"),
        Some(&admin),
        att,
    )
    .await;
    let (_, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(v["labels"], json!("full"));
    assert_eq!(v["restrictions"], json!([]));
    assert_eq!(
        req(&v, "security_contact").expect("contact")["met"],
        json!(true)
    );
    assert!(req(&v, "security_attestation").expect("att")["due_at"]
        .as_u64()
        .is_some());
}

/// Renewal on a controlled clock: the attestation's date is moved back, and the monitor's
/// pass runs at an explicit `now`.
#[tokio::test]
async fn attestation_renewal_notice_then_labels_refused_until_renewed() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    printer_agent(&f.state, &t);
    let (s, v) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/webhook"),
        Some(&admin),
        json!({"url": "https://hooks.acme.example/sealprint"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["secret"].as_str().expect("secret").starts_with("whsec_"));
    let (s, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/webhook"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("secret").is_none(), "shown once: {v}");
    let (s, v) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/webhook"),
        Some(&admin),
        json!({"url": "http://hooks.acme.example/sealprint"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "https only: {v}");
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/webhook/test"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        (&v["type"], &v["delivery"]["state"]),
        (&json!("webhook_test"), &json!("pending"))
    );
    assert_eq!(f.state.store.owed_notifications().expect("owed").len(), 1);

    let year = crate::core::compliance::ATTESTATION_VALIDITY_MS;
    let day = 24 * 3600 * 1000;
    let attested_at = |at: u64| {
        f.state
            .store
            .update_tenant(&t, |r| {
                if let Some(a) = r.attestation.as_mut() {
                    a.attested_at_ms = at;
                }
            })
            .expect("update");
    };
    let labels = format!("/v1/tenants/{t}/labels");
    let label = json!({"pool": "default", "format": "zpl",
        "content_base64": STANDARD.encode(b"^XA^FDx^FS^XZ")});
    let notes = format!("/v1/tenants/{t}/notifications");

    // 29 days before expiry: the renewal notice, labels still printed.
    let now = crate::core::clock::now_ms();
    attested_at(now + 29 * day - year);
    crate::services::monitor::renewals::sweep(&f.state.store, now).expect("sweep");
    let (s, v) = call(&f.state, "GET", &notes, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["type"], json!("renewal_due"));
    assert_eq!(v[0]["subject"], json!("security_attestation"));
    assert_eq!(v[0]["due_at"], json!(now + 29 * day));
    assert_eq!(v[0]["delivery"]["state"], json!("pending"));
    assert_eq!(v[0]["delivery"]["attempts"], json!(0));
    let (s, v) = call(&f.state, "POST", &labels, Some(&admin), label.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");

    // Expired: labels refused with the reason, shown in the compliance state.
    attested_at(now - year - 1);
    let (s, v) = call(&f.state, "POST", &labels, Some(&admin), label.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(code(&v), "compliance_restricted");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("security attestation expired on"), "{msg}");
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/compliance"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["labels"], json!("refused"));
    assert_eq!(v["restrictions"][0]["kind"], json!("requirement"));
    assert_eq!(
        v["restrictions"][0]["requirement"],
        json!("security_attestation")
    );
    let att = v["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .find(|r| r["id"] == json!("security_attestation"))
        .expect("attestation requirement");
    assert_eq!(att["state"], json!("expired"));
    assert_eq!(att["due_at"], json!(now - 1));
    crate::services::monitor::renewals::sweep(&f.state.store, crate::core::clock::now_ms())
        .expect("sweep");
    let (_, v) = call(&f.state, "GET", &notes, Some(&admin), Value::Null).await;
    assert_eq!(v[0]["type"], json!("compliance_restricted"));
    let restricted = actions(&f.state)
        .into_iter()
        .any(|(a, o)| a == "compliance.restricted" && o.contains("security_attestation"));
    assert!(restricted, "audited");

    // Renewed: labels flow again at once.
    let (s, v) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/attestation"),
        Some(&admin),
        attestation(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(&f.state, "POST", &labels, Some(&admin), label).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

// ---- retention, monitoring and access (issue 4) ---------------------------------------------

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

#[tokio::test]
async fn canary_orders_are_refused_reported_and_restrict_until_cleared() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    printer_agent(&f.state, &t);
    let owner = user(&f.state, &admin, &t, "owner@acme.example", json!(["owner"])).await;
    let op = user(&f.state, &admin, &t, "op@acme.example", json!(["operator"])).await;
    let auditor = user(&f.state, &admin, &t, "aud@acme.example", json!(["auditor"])).await;
    let labels = format!("/v1/tenants/{t}/labels");
    let (s, v) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/canaries"),
        Some(&owner),
        json!({"order_ids": ["113-0000000-0000001", "bad^XZ"]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/canaries"),
        Some(&owner),
        json!({"order_ids": ["113-0000000-0000001"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(
        &f.state,
        "POST",
        &labels,
        Some(&op),
        zpl_label(Some("114-1")),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "an ordinary order prints: {v}");

    let (s, v) = call(
        &f.state,
        "POST",
        &labels,
        Some(&op),
        zpl_label(Some("113-0000000-0000001")),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "canary_order"),
        "{v}"
    );
    // Restricted now: every label is refused, with the alert that restricts.
    let (s, v) = call(&f.state, "POST", &labels, Some(&op), zpl_label(None)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "tenant_restricted"),
        "{v}"
    );
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/alerts"),
        Some(&auditor),
        Value::Null,
    )
    .await;
    let alert = v["restricted"]["id"]
        .as_str()
        .expect("restricting alert")
        .to_owned();
    assert_eq!(v["restricted"]["rule"], json!("canary"));
    assert!(
        !v.to_string().contains("113-0000000-0000001"),
        "the canary list stays secret"
    );
    let (_, c) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/compliance"),
        Some(&owner),
        Value::Null,
    )
    .await;
    assert_eq!(c["labels"], json!("refused"));
    assert!(c["restrictions"].to_string().contains(&alert));
    let clear = format!("/v1/tenants/{t}/alerts/{alert}/clear");
    let (s, _) = call(&f.state, "POST", &clear, Some(&auditor), Value::Null).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(&f.state, "POST", &clear, Some(&owner), Value::Null).await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("cleared")), "{v}");
    let (s, v) = call(&f.state, "POST", &labels, Some(&op), zpl_label(None)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");

    // An SP-API request naming the canary trips it too; `resume` lifts the restriction.
    let spapi = json!({
        "source": "mfn", "connection": "spc-x", "shipping_service_id": "S",
        "shipment_request": {"AmazonOrderId": "113-0000000-0000001"}, "pool": "default",
    });
    let (s, v) = call(&f.state, "POST", &labels, Some(&op), spapi).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "canary_order"),
        "{v}"
    );
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/resume"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["restrictions_cleared"]),
        (StatusCode::OK, &json!(1)),
        "{v}"
    );
    let (s, _) = call(&f.state, "POST", &labels, Some(&op), zpl_label(None)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let acts = actions(&f.state);
    for a in [
        "canaries.updated",
        "alert.opened",
        "label.refused",
        "alert.cleared",
    ] {
        assert!(acts.iter().any(|(x, _)| x == a), "{a} audited");
    }
    assert!(
        !format!("{acts:?}").contains("113-0000000"),
        "no order id in the audit log"
    );
}

#[tokio::test]
async fn failed_login_bursts_raise_an_alert() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let owner = user(&f.state, &admin, &t, "owner@acme.example", json!(["owner"])).await;
    for i in 0..crate::services::monitor::FAILED_LOGIN_BURST {
        // Two accounts, so no single lockout explains it.
        let email = if i % 2 == 0 {
            "owner@acme.example"
        } else {
            "x@acme.example"
        };
        if i == 1 {
            user(&f.state, &admin, &t, email, json!(["auditor"])).await;
        }
        let (s, _) = call(
            &f.state,
            "POST",
            "/v1/sessions",
            None,
            json!({"email": email, "password": "Wrong-Password-1"}),
        )
        .await;
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::LOCKED,
            "{s}"
        );
    }
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/alerts"),
        Some(&owner),
        Value::Null,
    )
    .await;
    let rules: Vec<&Value> = v["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| &a["rule"])
        .collect();
    assert_eq!(rules, [&json!("failed_logins")], "{v}");
    assert_eq!(v["restricted"], Value::Null, "an alert only");
}

#[tokio::test]
async fn api_keys_act_with_their_roles_and_are_revocable() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    printer_agent(&f.state, &t);
    let tadmin = user(&f.state, &admin, &t, "adm@acme.example", json!(["admin"])).await;
    let keys = format!("/v1/tenants/{t}/api-keys");
    let (s, v) = call(
        &f.state,
        "POST",
        &keys,
        Some(&tadmin),
        json!({"name": "wms", "roles": ["pii_reader"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins grant no PII access: {v}");
    let (s, _) = call(
        &f.state,
        "POST",
        &keys,
        Some(&admin),
        json!({"name": "wms", "roles": ["owner"]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = call(
        &f.state,
        "POST",
        &keys,
        Some(&tadmin),
        json!({"name": "wms", "roles": ["operator"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().expect("shown once").to_owned();
    let id = v["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with("spk_") && key.len() > 40);
    let (_, list) = call(&f.state, "GET", &keys, Some(&tadmin), Value::Null).await;
    assert_eq!(list[0]["id"], json!(id));
    assert!(
        !list.to_string().contains(&key[4..]),
        "never listed: {list}"
    );

    let labels = format!("/v1/tenants/{t}/labels");
    let (s, v) = call(&f.state, "POST", &labels, Some(&key), zpl_label(None)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, _) = call(&f.state, "GET", &keys, Some(&key), Value::Null).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only its roles");
    let actor = f
        .state
        .store
        .audit_entries(Some(&t))
        .expect("audit")
        .into_iter()
        .find(|e| e.entry.action == "label.requested")
        .map(|e| e.entry.actor);
    assert_eq!(actor.as_deref(), Some(id.as_str()));

    let (s, _) = call(
        &f.state,
        "DELETE",
        &format!("{keys}/{id}"),
        Some(&tadmin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&f.state, "POST", &labels, Some(&key), zpl_label(None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked");
    let (s, _) = call(
        &f.state,
        "DELETE",
        &format!("{keys}/{id}"),
        Some(&tadmin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_keys_expire_and_record_their_last_use() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let keys = format!("/v1/tenants/{t}/api-keys");
    for days in [0, 731] {
        let (s, v) = call(
            &f.state,
            "POST",
            &keys,
            Some(&admin),
            json!({"name": "erp", "roles": ["operator"], "expires_in_days": days}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{days}: {v}");
    }
    let before = crate::core::clock::now_ms();
    let (s, v) = call(
        &f.state,
        "POST",
        &keys,
        Some(&admin),
        json!({"name": "erp", "roles": ["operator"], "expires_in_days": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().expect("key").to_owned();
    let expires = v["expires_at"].as_u64().expect("expires_at");
    let day = 24 * 3600 * 1000;
    assert!((before + day..=crate::core::clock::now_ms() + day).contains(&expires));
    assert_eq!(v["last_used_at"], Value::Null);

    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/agents"),
        Some(&key),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&f.state, "GET", &keys, Some(&admin), Value::Null).await;
    let used = v[0]["last_used_at"].as_u64().expect("last use recorded");
    assert!(used >= before);
    assert_eq!(v[0]["expired"], json!(false));

    // On a controlled clock: usable until its expiry, refused from then on.
    assert!(access::authenticate_key(&f.state, &key, expires - 1).is_ok());
    let e = access::authenticate_key(&f.state, &key, expires).expect_err("expired");
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert!(e.message.contains("expired on"), "{}", e.message);
    let (_, v) = call(&f.state, "GET", &keys, Some(&admin), Value::Null).await;
    assert_eq!(
        v[0]["last_used_at"].as_u64(),
        Some(expires - 1),
        "the last use moves forward"
    );
}

#[tokio::test]
async fn the_ip_allowlist_is_enforced_from_the_peer_address() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let owner = user(&f.state, &admin, &t, "owner@acme.example", json!(["owner"])).await;
    let path = format!("/v1/tenants/{t}/ip-allowlist");
    let sites = format!("/v1/tenants/{t}/sites");
    let (s, v) = call_from(
        &f.state,
        "PUT",
        &path,
        &owner,
        json!({"cidrs": ["10.0.0.0/8"]}),
        "192.0.2.1:5000",
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "would lock the caller out: {v}"
    );
    let (s, _) = call_from(
        &f.state,
        "PUT",
        &path,
        &owner,
        json!({"cidrs": ["300.0.0.0/8"]}),
        "10.0.0.1:5000",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = call_from(
        &f.state,
        "PUT",
        &path,
        &owner,
        json!({"cidrs": ["10.0.0.0/8", "2001:db8::/32"]}),
        "10.1.2.3:5000",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = call_from(&f.state, "GET", &sites, &owner, Value::Null, "10.9.9.9:1").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call_from(&f.state, "GET", &sites, &owner, Value::Null, "192.0.2.1:1").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "ip_not_allowed"),
        "{v}"
    );
    let (s, _) = call_from(
        &f.state,
        "GET",
        &sites,
        &owner,
        Value::Null,
        "[2001:db8::5]:1",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // No known peer: refused while a list is set.
    let (s, _) = call(&f.state, "GET", &sites, Some(&owner), Value::Null).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Logins and password changes too, before the password is even checked.
    let login_from = |email: &'static str, password: &'static str, peer: &'static str| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/sessions")
            .body(Full::new(Bytes::from(
                json!({"email": email, "password": password}).to_string(),
            )))
            .expect("request");
        req.extensions_mut()
            .insert(PeerAddr(peer.parse().expect("peer")));
        let state = &f.state;
        async move {
            let resp = handle(state, req).await;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let v: Value = serde_json::from_slice(&bytes).expect("json");
            (status, v)
        }
    };
    for password in [PASSWORD, "Wrong-Password-1"] {
        let (s, v) = login_from("owner@acme.example", password, "192.0.2.1:1").await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "ip_not_allowed"),
            "{v}"
        );
    }
    let failures = |email| {
        f.state
            .store
            .user_by_email(email)
            .expect("read")
            .expect("user")
            .failed_logins
            .len()
    };
    assert_eq!(failures("owner@acme.example"), 0, "no guess was checked");
    let (s, v) = login_from("owner@acme.example", PASSWORD, "10.0.0.7:1").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = login_from("admin@example.com", PASSWORD, "192.0.2.1:1").await;
    assert_eq!(s, StatusCode::CREATED, "platform admins are exempt: {v}");
    let (s, v) = call(
        &f.state,
        "POST",
        "/v1/sessions/password",
        None,
        json!({"email": "owner@acme.example", "password": PASSWORD,
            "new_password": "Stapler-Orbit-Lantern-4"}),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "ip_not_allowed"));
    // Platform admins are not tenant principals (they can repair a list).
    let (s, _) = call_from(
        &f.state,
        "PUT",
        &path,
        &admin,
        json!({"cidrs": []}),
        "192.0.2.1:1",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_from(&f.state, "GET", &sites, &owner, Value::Null, "192.0.2.1:1").await;
    assert_eq!(s, StatusCode::OK, "an empty list allows all");
    assert!(actions(&f.state)
        .iter()
        .any(|(a, o)| a == "access.refused" && o == "refused: ip not allowed"));
    assert!(actions(&f.state)
        .iter()
        .any(|(a, o)| a == "session.failed" && o == "refused: ip not allowed"));
}

#[tokio::test]
async fn deletion_crypto_shreds_the_tenant_and_keeps_audit_ids() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let other = tenant(&f.state, &admin).await;
    let device = printer_agent(&f.state, &t);
    let owner = user(&f.state, &admin, &t, "owner@acme.example", json!(["owner"])).await;
    let op = user(&f.state, &admin, &t, "op@acme.example", json!(["operator"])).await;
    let (_, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/labels"),
        Some(&op),
        zpl_label(None),
    )
    .await;
    let job = v["id"].as_str().expect("job").to_owned();
    assert!(f.state.store.label(&t, &job).is_ok());
    let (s, _) = call(
        &f.state,
        "PUT",
        &format!("/v1/tenants/{t}/webhook"),
        Some(&owner),
        json!({"url": "https://hooks.acme.example/x"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    crate::services::notifications::notify_event(
        &f.state.store,
        &t,
        crate::store::NotificationKind::TenantSuspended,
        None,
        1,
    );
    let path = format!("/v1/tenants/{t}/deletion");
    let (s, _) = call(
        &f.state,
        "POST",
        &path,
        Some(&owner),
        json!({"confirm": other}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = call(&f.state, "POST", &path, Some(&owner), json!({"confirm": t})).await;
    assert_eq!(
        (s, &v["data_key"]),
        (StatusCode::OK, &json!("destroyed")),
        "{v}"
    );
    assert!(f.state.store.label(&t, &job).is_err(), "label unreadable");
    assert!(f.state.store.job(&t, &job).expect("read").is_none());
    assert!(f.state.store.agents(&t).expect("read").is_empty());
    assert!(f.state.store.webhook(&t).expect("read").is_none());
    assert!(f.state.store.webhook_secret(&t).is_err(), "secret shredded");
    assert!(f.state.store.notifications(&t).expect("read").is_empty());
    assert!(f.state.store.owed_notifications().expect("read").is_empty());
    assert!(f
        .recorder
        .calls
        .lock()
        .expect("lock")
        .contains(&format!("revoked {device}")));
    // The tenant's sessions are gone; its audit entries (ids only) stay.
    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/sites"),
        Some(&owner),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/audit"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let kept = f.state.store.audit_entries(Some(&t)).expect("audit");
    assert!(kept.iter().any(|e| e.entry.action == "label.requested"));
    assert!(kept.iter().any(|e| e.entry.action == "tenant.deleted"));
    assert!(f.state.store.tenant(&other).expect("read").is_some());
    assert!(f.state.store.verify_audit_chain().is_ok());
}

#[tokio::test]
async fn audit_exports_json_lines_and_checkpoints_reveal_truncation() {
    let f = fixture();
    crate::services::ca::Identity::create(&f.state.store).expect("identity");
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let req = Request::builder()
        .uri(format!("/v1/tenants/{t}/audit?format=jsonl"))
        .header("authorization", format!("Bearer {admin}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = handle(&f.state, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/x-ndjson"[..])
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= 3);
    assert!(lines
        .iter()
        .all(|l| l["tenant"] == json!(t) && l["hash"].is_string()));

    let cps = format!("/v1/tenants/{t}/audit/checkpoints");
    let (s, cp) = call(&f.state, "POST", &cps, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::CREATED, "{cp}");
    let (_, list) = call(&f.state, "GET", &cps, Some(&admin), Value::Null).await;
    assert_eq!(list["checkpoints"][0]["seq"], cp["seq"]);
    assert!(list["ca_public_key"].is_string());
    // Delete the newest entries (and everything after): the checkpoint shows it.
    let tree = f.state.store.audit_tree();
    let seq = cp["seq"].as_u64().expect("seq");
    let tail: Vec<_> = tree
        .range(seq.to_be_bytes()..)
        .map(|kv| kv.expect("kv").0)
        .collect();
    for k in tail {
        tree.remove(k).expect("rm");
    }
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("/v1/tenants/{t}/audit/verify"),
        Some(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["intact"], json!(false), "{v}");
    assert_eq!(v["first_bad_entry"], json!(seq));
    assert!(
        v["problem"].as_str().expect("problem").contains("deleted"),
        "{v}"
    );
}

mod agent_policy;
mod idempotency;
mod lists;
mod pii;
mod public_rate;
