//! The route table's public routes (issue 10 on top of issue 13): each address gets main's
//! per-address rate and the small body limit before anything else runs; what reads nothing
//! (`/healthz`, the OpenAPI document) is exempt, and another address is unaffected.

use super::*;

/// `method path` from `peer` with `body`: status and the Retry-After header.
async fn from(
    state: &Arc<ApiState>,
    method: &str,
    path: &str,
    peer: &str,
    body: Vec<u8>,
) -> (StatusCode, Option<String>) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    req.extensions_mut()
        .insert(PeerAddr(peer.parse().expect("peer")));
    let resp = handle(state, req).await;
    let retry = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status(), retry)
}

#[tokio::test]
async fn public_routes_are_rate_limited_per_address_and_body_capped() {
    let f = fixture();
    let noisy = "192.0.2.7:40000";
    // A malformed password change reads nothing of the store: 400 until the burst is spent.
    let mut limited = 0;
    for _ in 0..40 {
        let (s, retry) = from(
            &f.state,
            "POST",
            "/v1/sessions/password",
            noisy,
            b"{".to_vec(),
        )
        .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|n| n >= 1)));
            limited += 1;
        } else {
            assert_eq!(s, StatusCode::BAD_REQUEST);
        }
    }
    assert!(limited >= 15, "only {limited} of 40 answered 429");
    // The login and the billing webhook share the address's budget.
    let (s, _) = from(&f.state, "POST", "/v1/sessions", noisy, b"{}".to_vec()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = from(
        &f.state,
        "POST",
        "/v1/billing/webhook",
        noisy,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Exempt: what reads nothing.
    for path in ["/healthz", "/v1/openapi.json"] {
        let (s, _) = from(&f.state, "GET", path, noisy, Vec::new()).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    // Another address is unaffected, and its bodies are capped at PUBLIC_BODY_LIMIT.
    let quiet = "198.51.100.9:40000";
    let (s, _) = from(
        &f.state,
        "POST",
        "/v1/sessions/password",
        quiet,
        b"{".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let big = vec![b' '; PUBLIC_BODY_LIMIT + 1];
    let (s, _) = from(&f.state, "POST", "/v1/sessions", quiet, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}
