//! API tests without sockets: requests go through [`handle`] against a temporary store and a
//! recording fake [`Dispatch`].

use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::crypto::{self, MasterKey};
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

const PASSWORD: &str = "a long enough password";

struct Fixture {
    _dir: tempfile::TempDir,
    state: ApiState,
    recorder: Arc<Recorder>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
    let hash = crypto::hash_password(PASSWORD).expect("hash");
    store
        .create_user("admin@example.com", hash, true, None, 1)
        .expect("admin");
    let recorder = Arc::new(Recorder::default());
    let state = ApiState {
        store,
        dispatch: recorder.clone(),
        peer_id: "12D3KooWExamplePeer".into(),
        mesh_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        heartbeat_interval: Duration::from_secs(10),
    };
    Fixture {
        _dir: dir,
        state,
        recorder,
    }
}

async fn call_raw(
    state: &ApiState,
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
    state: &ApiState,
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

async fn login(state: &ApiState) -> String {
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

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

async fn tenant(state: &ApiState, token: &str) -> String {
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
fn printer_agent(state: &ApiState, tenant: &str) -> String {
    let device = crate::crypto::random_id("dev");
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
        version: "0.1.0".into(),
        uptime_s: 1,
        clock_ms: crate::now_ms(),
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
        .record_heartbeat(&device, &hb, None, crate::now_ms())
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

    let audit = f.state.store.audit_entries(None).expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        ["session.failed", "session.failed", "session.created"]
    );
    let admin = f
        .state
        .store
        .user_by_email("admin@example.com")
        .expect("read")
        .expect("admin");
    assert_eq!(audit[0].entry.actor, admin.id, "known user: audited by id");
    assert_eq!(audit[1].entry.actor, "unknown");
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
    let now_s = crate::now_ms() / 1000;
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
    assert_eq!(f.state.store.revoked_serials(&t).expect("serials"), vec![1]);
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
        .create_user("op@example.com", hash, false, Some(mine.clone()), 1)
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
