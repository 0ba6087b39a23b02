//! `GET …/labels` (filters, cursor pages, no PII) and the pages of the older lists (issue
//! 17): bad limits, cursors and filters are 400 with their own code.

use super::*;

async fn get_with_headers(
    state: &Arc<ApiState>,
    path: &str,
    token: &str,
) -> (StatusCode, Value, hyper::HeaderMap) {
    let req = Request::builder()
        .method("GET")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = handle(state, req).await;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        serde_json::from_slice(&bytes).expect("json"),
        parts.headers,
    )
}

fn upload(reference: &str) -> Value {
    json!({
        "pool": "default",
        "format": "zpl",
        "content_base64": STANDARD.encode(b"^XA^FDJane Buyer, 1 Main St^FS^XZ"),
        "client_reference": reference,
    })
}

#[tokio::test]
async fn labels_are_listed_filtered_and_paged_without_pii() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    printer_agent(&f.state, &t);
    let path = format!("/v1/tenants/{t}/labels");
    let mut ids = Vec::new();
    for i in 0..23 {
        let (s, v) = call(
            &f.state,
            "POST",
            &path,
            Some(&token),
            upload(&format!("PO-{i}#x")),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    ids.sort();
    // A bad reference is refused before anything is stored.
    let (s, v) = call(&f.state, "POST", &path, Some(&token), upload("Jane Buyer")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() {
            format!("{path}?limit=5")
        } else {
            format!("{path}?limit=5&starting_after={after}")
        };
        let (s, v) = call(&f.state, "GET", &q, Some(&token), Value::Null).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let text = v.to_string();
        assert!(
            !text.contains("Jane") && !text.contains("Main St"),
            "PII in a list: {text}"
        );
        let page = v["data"].as_array().expect("data");
        seen.extend(
            page.iter()
                .map(|j| j["id"].as_str().expect("id").to_owned()),
        );
        if v["has_more"] != json!(true) {
            assert_eq!(v["next_starting_after"], Value::Null);
            break;
        }
        after = v["next_starting_after"]
            .as_str()
            .expect("cursor")
            .to_owned();
    }
    assert_eq!(seen, ids);

    // Filters: one reference (with '#', percent-encoded), a status, a time window.
    let (s, v) = call(
        &f.state,
        "GET",
        &format!("{path}?client_reference=PO-7%23x"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["data"][0]["client_reference"], json!("PO-7#x"));
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("{path}?status=printed"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0));
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("{path}?status=queued&pool=default&created_after=0&created_before=99999999999999"),
        Some(&token),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(23));

    for (q, want) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("starting_after=../x", "invalid_cursor"),
        ("status=lost", "invalid_filter"),
        ("created_after=yesterday", "invalid_filter"),
        ("client_reference=Jane%20Buyer", "invalid_filter"),
        ("printer=a%2Fb", "invalid_filter"),
        ("colour=red", "invalid_filter"),
        ("limit=1&limit=2", "invalid_filter"),
    ] {
        let (s, v) = call(
            &f.state,
            "GET",
            &format!("{path}?{q}"),
            Some(&token),
            Value::Null,
        )
        .await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{q}: {v}");
        assert!(!v.to_string().contains("Jane"), "{v}");
    }
}

#[tokio::test]
async fn older_lists_page_with_headers_and_keep_their_body() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    for i in 0..5 {
        let (s, _) = call(
            &f.state,
            "POST",
            &format!("/v1/tenants/{t}/sites"),
            Some(&token),
            json!({"name": format!("DC{i}")}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let sites = format!("/v1/tenants/{t}/sites");
    let (_, whole, h) = get_with_headers(&f.state, &sites, &token).await;
    assert_eq!(whole.as_array().map(Vec::len), Some(5));
    assert_eq!(
        h.get("x-has-more").map(|v| v.as_bytes()),
        Some(&b"false"[..])
    );
    let mut seen = Vec::new();
    let mut q = format!("{sites}?limit=2");
    loop {
        let (s, v, h) = get_with_headers(&f.state, &q, &token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seen.extend(v.as_array().expect("array").iter().cloned());
        match h.get("x-next-starting-after").and_then(|v| v.to_str().ok()) {
            Some(next) => q = format!("{sites}?limit=2&starting_after={next}"),
            None => break,
        }
    }
    assert_eq!(Value::Array(seen), whole);
    // The audit log pages by seq and keeps ?format=jsonl.
    let audit = format!("/v1/tenants/{t}/audit");
    let (s, v, h) = get_with_headers(&f.state, &format!("{audit}?limit=3"), &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    let next = h
        .get("x-next-starting-after")
        .and_then(|v| v.to_str().ok())
        .expect("next");
    let (s, v2, _) = get_with_headers(
        &f.state,
        &format!("{audit}?limit=3&starting_after={next}"),
        &token,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v2[0]["seq"].as_u64() > v[2]["seq"].as_u64());
    for (q, want) in [
        (format!("{sites}?limit=0"), "invalid_limit"),
        (
            format!("{sites}?starting_after=site-none"),
            "invalid_cursor",
        ),
        (format!("{sites}?format=jsonl"), "invalid_filter"),
        (format!("{audit}?starting_after=999999"), "invalid_cursor"),
    ] {
        let (s, v, _) = get_with_headers(&f.state, &q, &token).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{q}: {v}");
    }
}
