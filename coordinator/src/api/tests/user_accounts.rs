//! Tenant users: isolation between tenants, password and grant rules, changes with least
//! privilege, sessions revoked on a password change, login lockouts, expired passwords.

use super::*;

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
