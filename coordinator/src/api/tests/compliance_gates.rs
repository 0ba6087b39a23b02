//! Compliance gates: subscription, attestation (labels redacted until complete), suspension,
//! the billing webhook, tiers and their requirements, renewals, canary orders.

use super::*;

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
