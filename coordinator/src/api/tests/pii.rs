//! PII roles (issue 11): reprints and shipment reads are `pii_reader` actions on every route
//! that does them, and a platform admin can neither do them nor grant the role.

use super::*;

/// The two sources that fetch a label already bought: each is a reprint and a shipment read.
fn reprints() -> [Value; 2] {
    [
        json!({"source": "mfn_shipment", "connection": "spc-none", "shipment_id": "s-1",
            "pool": "default"}),
        json!({"source": "shipping_v2_shipment", "connection": "spc-none",
            "shipment_id": "amzn1.ship.1", "package_client_reference_id": "pkg-1",
            "pool": "default"}),
    ]
}

#[tokio::test]
async fn only_pii_readers_reprint_never_a_platform_admin() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let owner = user(&f.state, &admin, &t, "boss@acme.example", json!(["owner"])).await;
    let reader = user(
        &f.state,
        &owner,
        &t,
        "reader@acme.example",
        json!(["pii_reader"]),
    )
    .await;
    let operator = user(
        &f.state,
        &owner,
        &t,
        "ops@acme.example",
        json!(["operator"]),
    )
    .await;
    let path = format!("/v1/tenants/{t}/labels");
    for body in reprints() {
        for (who, token) in [
            ("platform admin", &admin),
            ("owner", &owner),
            ("operator", &operator),
        ] {
            let (s, v) = call(&f.state, "POST", &path, Some(token), body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who} reprinted {body}: {v}");
        }
        // The pii_reader is authorised: it gets as far as the (missing) connection.
        let (s, v) = call(&f.state, "POST", &path, Some(&reader), body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "pii_reader {body}: {v}");
        assert!(v.to_string().contains("spapi connection"), "{v}");
    }
    // Nothing was queued, and every refusal is audited.
    assert!(f.recorder.calls.lock().expect("lock").is_empty());
    // A purchase (not a reprint) stays an operator's action.
    let (s, v) = call(
        &f.state,
        "POST",
        &path,
        Some(&reader),
        json!({"source": "mfn", "connection": "spc-none", "shipment_request": {},
            "shipping_service_id": "x", "pool": "default"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn a_platform_admin_cannot_grant_pii_reader() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let users = format!("/v1/tenants/{t}/users");
    // Not at creation…
    let (s, v) = call(
        &f.state,
        "POST",
        &users,
        Some(&admin),
        json!({"email": "x@acme.example", "password": PASSWORD, "roles": ["pii_reader"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // …nor by changing a user's roles…
    user(&f.state, &admin, &t, "op@acme.example", json!(["operator"])).await;
    let op = user_id(&f.state, "op@acme.example");
    let (s, v) = call(
        &f.state,
        "PATCH",
        &format!("{users}/{op}"),
        Some(&admin),
        json!({"roles": ["operator", "pii_reader"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // …nor through an API key it mints.
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("/v1/tenants/{t}/api-keys"),
        Some(&admin),
        json!({"name": "wms", "roles": ["pii_reader"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // The tenant's owner can.
    let owner = user(&f.state, &admin, &t, "boss@acme.example", json!(["owner"])).await;
    let (s, v) = call(
        &f.state,
        "PATCH",
        &format!("{users}/{op}"),
        Some(&owner),
        json!({"roles": ["operator", "pii_reader"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // And once a user reads PII, a platform admin can no longer change it (say, set a
    // password and log in as it).
    let (s, v) = call(
        &f.state,
        "PATCH",
        &format!("{users}/{op}"),
        Some(&admin),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}
