//! `GET/PUT …/agent-policy`: a tenant's minimum agent version, validated, audited, and shown
//! in the agents list as `outdated`.

use super::*;

#[tokio::test]
async fn a_tenant_minimum_marks_its_agents_outdated_until_removed() {
    let f = fixture();
    let admin = login(&f.state).await;
    let t = tenant(&f.state, &admin).await;
    let device = printer_agent(&f.state, &t);
    let path = format!("/v1/tenants/{t}/agent-policy");
    let agents = format!("/v1/tenants/{t}/agents");

    let (s, v) = call(&f.state, "GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["min_agent_version"], Value::Null);
    assert_eq!(v["global_min_agent_version"], "0.1.0");
    assert_eq!(v["effective_min_agent_version"], "0.1.0");
    let (_, v) = call(&f.state, "GET", &agents, Some(&admin), Value::Null).await;
    assert_eq!(v[0]["id"], device.as_str());
    assert_eq!(
        (v[0]["outdated"].clone(), v[0]["min_agent_version"].clone()),
        (json!(false), json!("0.1.0"))
    );

    // Strict versions only; the field is required (null removes).
    for bad in [
        json!({"min_agent_version": "1.2"}),
        json!({"min_agent_version": "v1.2.3"}),
        json!({"min_agent_version": 5}),
    ] {
        let (s, v) = call(&f.state, "PUT", &path, Some(&admin), bad.clone()).await;
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST,
            "{bad} {s} {v}"
        );
    }
    let (s, _) = call(&f.state, "PUT", &path, Some(&admin), json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(
        &f.state,
        "PUT",
        &path,
        Some(&admin),
        json!({"min_agent_version": null, "x": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, v) = call(
        &f.state,
        "PUT",
        &path,
        Some(&admin),
        json!({"min_agent_version": "99.0.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["min_agent_version"], "99.0.0");
    assert_eq!(v["effective_min_agent_version"], "99.0.0");
    let (_, v) = call(&f.state, "GET", &agents, Some(&admin), Value::Null).await;
    assert_eq!(
        (v[0]["outdated"].clone(), v[0]["min_agent_version"].clone()),
        (json!(true), json!("99.0.0"))
    );

    let (s, v) = call(
        &f.state,
        "PUT",
        &path,
        Some(&admin),
        json!({"min_agent_version": null}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["min_agent_version"], Value::Null);
    let (_, v) = call(&f.state, "GET", &agents, Some(&admin), Value::Null).await;
    assert_eq!(v[0]["outdated"], false);

    let updates: Vec<String> = actions(&f.state)
        .into_iter()
        .filter(|(a, _)| a == "agent_policy.updated")
        .map(|(_, o)| o)
        .collect();
    assert_eq!(
        updates,
        ["ok min_agent_version=99.0.0", "ok min_agent_version=none"]
    );
}
