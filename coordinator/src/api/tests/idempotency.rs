//! `Idempotency-Key` on label submission (issue 17): a retry gets the first answer and no
//! new job, another body with the key is 422, concurrent retries create one job, and bad
//! keys are 400.

use super::*;

pub(super) async fn call_keyed(
    state: &Arc<ApiState>,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("json"),
        )))
        .expect("request");
    let resp = handle(state, req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json answer"))
}

fn jobs_submitted(f: &Fixture) -> usize {
    f.recorder
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|c| c.starts_with("job "))
        .count()
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_no_new_job() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    printer_agent(&f.state, &t);
    let path = format!("/v1/tenants/{t}/labels");
    let body = zpl_label(Some("111-1"));

    let (s1, v1) = call_keyed(&f.state, &path, &token, "retry-1", &body).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{v1}");
    let (s2, v2) = call_keyed(&f.state, &path, &token, "retry-1", &body).await;
    assert_eq!((s2, &v2), (s1, &v1));
    assert_eq!(jobs_submitted(&f), 1);

    // Another body with the same key: 422 with its own code, still one job.
    let (s, v) = call_keyed(
        &f.state,
        &path,
        &token,
        "retry-1",
        &zpl_label(Some("222-2")),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{v}"
    );
    // Another key: a new job.
    let (s, v3) = call_keyed(&f.state, &path, &token, "retry-2", &body).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_ne!(v3["id"], v1["id"]);
    // No key: a new job each time.
    let (s, _) = call(&f.state, "POST", &path, Some(&token), body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(jobs_submitted(&f), 3);

    // A failed request releases its key: the retry runs (and succeeds) once fixed.
    let bad = json!({"pool": "nowhere", "format": "zpl", "content_base64": "Xlhh"});
    let (s, _) = call_keyed(&f.state, &path, &token, "retry-3", &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call_keyed(&f.state, &path, &token, "retry-3", &body).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn keys_are_per_tenant_and_bad_keys_are_400() {
    let f = fixture();
    let token = login(&f.state).await;
    let t1 = tenant(&f.state, &token).await;
    let t2 = tenant(&f.state, &token).await;
    printer_agent(&f.state, &t1);
    printer_agent(&f.state, &t2);
    let body = zpl_label(None);
    let (s, a) = call_keyed(
        &f.state,
        &format!("/v1/tenants/{t1}/labels"),
        &token,
        "k",
        &body,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = call_keyed(
        &f.state,
        &format!("/v1/tenants/{t2}/labels"),
        &token,
        "k",
        &body,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_ne!(a["id"], b["id"]);
    let path = format!("/v1/tenants/{t1}/labels");
    for key in [String::new(), "a b".into(), "x".repeat(256)] {
        let (s, v) = call_keyed(&f.state, &path, &token, &key, &body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_create_one_job() {
    let f = fixture();
    let token = login(&f.state).await;
    let t = tenant(&f.state, &token).await;
    printer_agent(&f.state, &t);
    let path = format!("/v1/tenants/{t}/labels");
    let body = zpl_label(None);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (state, path, token, body) =
                (f.state.clone(), path.clone(), token.clone(), body.clone());
            tokio::spawn(async move { call_keyed(&state, &path, &token, "same", &body).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, v) = t.await.expect("task");
        match s {
            StatusCode::ACCEPTED => {
                ids.insert(v["id"].as_str().expect("id").to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(code(&v), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(jobs_submitted(&f), 1);
}
