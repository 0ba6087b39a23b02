//! Access beyond passwords: alerts on failed-login bursts, API keys (roles, revocation,
//! expiry, last use), the IP allowlist.

use super::*;

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
