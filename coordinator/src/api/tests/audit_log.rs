//! The audit log through the API: verification, crypto-shredding a tenant, JSON-lines export
//! and checkpoints that reveal truncation.

use super::*;

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
