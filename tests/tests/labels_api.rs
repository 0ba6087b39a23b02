//! End-to-end tests of the label API of issue 17 against the real binaries: a POST whose
//! answer the client never reads, retried with its `Idempotency-Key`, gets the same job and
//! prints one label; keys survive a coordinator restart; a few hundred jobs page through
//! `GET …/labels` in a stable order with no duplicate and no gap.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::wait_for;
use sealprint_testkit::scenario::{label_indices, marker, zpl_label, Site};
use serde_json::{json, Value};

const FINAL: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-labels-")
        .tempdir()
        .expect("a scratch directory")
}

fn upload(mark: &str, n: usize, reference: &str) -> Value {
    json!({
        "pool": "outbound",
        "format": "zpl",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(zpl_label(mark, n)),
        "client_reference": reference,
    })
}

/// The jobs of `site` with `reference`.
async fn by_reference(site: &Site, reference: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!(
        "/v1/tenants/{}/labels?client_reference={reference}",
        site.tenant
    );
    let v = site.admin.get(&path).await?;
    Ok(v["data"].as_array().cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_retried_with_its_key_prints_once_and_keys_survive_a_restart(
) -> anyhow::Result<()> {
    let tmp = scratch();
    let mut site = Site::new(tmp.path()).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let path = format!("/v1/tenants/{}/labels", site.tenant);
    let mark = marker();
    let body = upload(&mark, 1, "ORDER-1");
    let key = [("idempotency-key", "order-1-attempt")];

    // The first POST: sent whole; the coordinator makes the job (the case a retry must not
    // double), and the client hangs up without reading the answer.
    let unread = site.admin.post_unread(&path, &body, &key).await?;
    let first = wait_for("the first POST's job", Duration::from_secs(30), || async {
        let jobs = by_reference(&site, "ORDER-1").await?;
        Ok(jobs
            .first()
            .and_then(|j| j["id"].as_str())
            .map(str::to_owned))
    })
    .await?;
    drop(unread);
    // The retry with the same key: the same job, the same status, no new job.
    let (s, v, _) = site
        .admin
        .call_sending(Method::POST, &path, Some(body.clone()), &key)
        .await?;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["id"].as_str(), Some(first.as_str()), "{v}");
    // The same key with another body: 422.
    let (s, v, _) = site
        .admin
        .call_sending(Method::POST, &path, Some(upload(&mark, 2, "ORDER-1")), &key)
        .await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("idempotency_key_reused")
        ),
        "{v}"
    );
    assert_eq!(site.wait_final(&first, FINAL).await?["status"], "printed");

    // A restart keeps the key.
    site.coordinator.kill().await?;
    site.coordinator.start().await?;
    site.admin = site.coordinator.admin().await?;
    let (s, v, _) = site
        .admin
        .call_sending(Method::POST, &path, Some(body.clone()), &key)
        .await?;
    assert_eq!(
        (s, v["id"].as_str()),
        (StatusCode::ACCEPTED, Some(first.as_str())),
        "{v}"
    );
    assert_eq!(by_reference(&site, "ORDER-1").await?.len(), 1);

    // A job submitted after everything else has printed, so every copy of the first label
    // that could ever reach the printer has reached it.
    let last = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 99))
        .await?;
    assert_eq!(site.wait_final(&last, FINAL).await?["status"], "printed");
    let printed: Vec<usize> = st.printers[0]
        .1
        .jobs()
        .iter()
        .flat_map(|b| label_indices(b, &mark))
        .collect();
    assert_eq!(
        printed.iter().filter(|n| **n == 1).count(),
        1,
        "{printed:?}"
    );
    assert!(!printed.contains(&2), "{printed:?}");
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_hundred_jobs_page_through_in_a_stable_order() -> anyhow::Result<()> {
    let tmp = scratch();
    let mut site = Site::new(tmp.path()).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    // The station goes away: the jobs stay queued while they are listed.
    st.agent.stop().await?;
    let path = format!("/v1/tenants/{}/labels", site.tenant);
    let mark = marker();
    let mut ids = BTreeSet::new();
    for i in 0..240 {
        let v = site
            .admin
            .post(
                &path,
                upload(&mark, i, &format!("BULK-{i}")),
                StatusCode::ACCEPTED,
            )
            .await?;
        ids.insert(v["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut seen = Vec::new();
    let mut q = format!("{path}?limit=37&status=queued");
    loop {
        let v = site.admin.get(&q).await?;
        let page = v["data"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= 37);
        for j in &page {
            assert!(
                !j.to_string().contains(&mark),
                "label content in a list: {j}"
            );
            seen.push(j["id"].as_str().unwrap_or_default().to_owned());
        }
        if v["has_more"] != json!(true) {
            break;
        }
        let next = v["next_starting_after"].as_str().unwrap_or_default();
        q = format!("{path}?limit=37&status=queued&starting_after={next}");
    }
    assert_eq!(seen.len(), ids.len(), "duplicates or gaps");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not in a stable order"
    );
    let (s, v) = site
        .admin
        .call(Method::GET, &format!("{path}?limit=0"), None)
        .await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_limit"))
    );
    site.coordinator.stop().await?;
    Ok(())
}
