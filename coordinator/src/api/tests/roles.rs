//! The role table: every route checks the caller's role and tenant.

use super::*;

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
