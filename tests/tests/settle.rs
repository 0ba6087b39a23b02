//! End-to-end tests of issue 17 items 2 and 4 against the real binaries: jobs in doubt made
//! for real (a printer holds the label unanswered while its agent is SIGKILLed) are resolved
//! by an operator (`not_printed` prints once more, `printed` never again), a queued job is
//! cancelled while no agent is online and never prints, the wrong states answer 409 and a
//! role without the right 403; and a tenant's HTTPS webhook receives the job and fleet events
//! (`label.printed`, `label.in_doubt`, `label.resolved`, `agent.offline`, `agent.online`,
//! `printer.refused`),
//! each signed with the tenant's secret and carrying ids only.

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::wait_for;
use sealprint_testkit::printer_sim::{SimHandle, SimMode};
use sealprint_testkit::scenario::{label_indices, marker, zpl_label, Site};
use sealprint_testkit::webhook_receiver::{self, Delivery, Receiver};
use serde_json::{json, Value};

const FINAL: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-settle-")
        .tempdir()
        .expect("a scratch directory")
}

/// Waits until job `id` has `status`; its JSON.
async fn wait_status(site: &Site, id: &str, status: &str) -> anyhow::Result<Value> {
    wait_for(&format!("job {id} {status}"), FINAL, || async {
        let job = site.job(id).await?;
        Ok((job["status"] == status).then_some(job))
    })
    .await
}

/// Waits until the printer holds a job fully received and unanswered.
async fn wait_stalled(sim: &SimHandle) -> anyhow::Result<()> {
    wait_for(
        "a job held at the printer",
        Duration::from_secs(30),
        || async { Ok((sim.activity().stalled > 0).then_some(())) },
    )
    .await
}

/// How many times label `n` of `mark` reached the printer.
fn printed(sim: &SimHandle, mark: &str, n: usize) -> usize {
    sim.jobs()
        .iter()
        .flat_map(|b| label_indices(b, mark))
        .filter(|i| *i == n)
        .count()
}

/// Waits until the receiver got an event of `kind` about `subject`.
async fn wait_event(rx: &Receiver, kind: &str, subject: &str) -> anyhow::Result<Delivery> {
    wait_for(
        &format!("webhook {kind} {subject}"),
        Duration::from_secs(90),
        || async {
            Ok(rx
                .deliveries()
                .into_iter()
                .find(|d| d.json()["type"] == kind && d.json()["subject"] == subject))
        },
    )
    .await
}

/// A job in doubt for real: the printer holds label `n` unanswered while the agent is
/// SIGKILLed; `then` runs while the agent is down (what becomes of the held label), and the
/// restarted agent's first heartbeat puts the job in doubt.
async fn in_doubt_job(
    site: &Site,
    station: &mut sealprint_testkit::scenario::Station,
    printer: &str,
    label: &[u8],
    then: impl FnOnce(&SimHandle),
) -> anyhow::Result<String> {
    let sim = &station.printers[0].1;
    sim.set_stall(true);
    let id = site.submit(json!({ "printer": printer }), label).await?;
    wait_stalled(sim).await?;
    station.agent.kill().await?;
    then(sim);
    station.agent.restart().await?;
    wait_status(site, &id, "in_doubt").await?;
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_doubt_are_resolved_queued_jobs_cancelled_and_every_event_is_signed(
) -> anyhow::Result<()> {
    let tmp = scratch();
    let rx = Receiver::start().await?;
    let ca = tmp.path().join("webhook-ca.pem");
    std::fs::write(&ca, rx.cert_pem())?;
    // A monitor sweep every second (a file key only); the harness sets 1 s heartbeats, so an
    // agent is offline ~4 s after it stops.
    let config = tmp.path().join("coordinator.toml");
    std::fs::write(&config, "monitor_interval_secs = 1\n")?;
    let args: Vec<String> = [
        "--config",
        &config.display().to_string(),
        "--spapi-ca-file",
        &ca.display().to_string(),
        "--insecure-allow-loopback-outbound",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let site = Site::new_with(tmp.path(), &args).await?;
    let t = site.tenant.clone();
    let hook = site
        .admin
        .call(
            Method::PUT,
            &format!("/v1/tenants/{t}/webhook"),
            Some(json!({ "url": rx.url() })),
        )
        .await?;
    assert_eq!(hook.0, StatusCode::OK, "{}", hook.1);
    let secret = hook.1["secret"].as_str().unwrap_or_default().to_owned();
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let device = st.agent.device_id.clone();
    let printer = format!("{device}.{}", st.printers[0].0);
    let operator = site.tenant_user("operator", &["operator"]).await?;
    let auditor = site.tenant_user("auditor", &["auditor"]).await?;
    let mark = marker();
    let labels = format!("/v1/tenants/{t}/labels");

    // 1. The printer held label 1 when the agent died, and then lost it (out of paper, the
    // half-fed label pulled out): in doubt; the operator says not printed; it prints once.
    let a = in_doubt_job(&site, &mut st, &printer, &zpl_label(&mark, 1), |sim| {
        sim.set_mode(SimMode::PaperOut);
        sim.set_stall(false);
    })
    .await?;
    let sim = &st.printers[0].1;
    wait_for("the held label", Duration::from_secs(10), || async {
        Ok((sim.held_count() == 1).then_some(()))
    })
    .await?;
    assert_eq!(sim.discard_held(), 1);
    sim.set_mode(SimMode::Normal);
    assert_eq!(printed(sim, &mark, 1), 0);
    // The list finds it.
    let doubtful = site.admin.get(&format!("{labels}?status=in_doubt")).await?;
    assert!(
        doubtful["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|j| j["id"] == a.as_str())),
        "{doubtful}"
    );
    // Neither an auditor nor a bad outcome settles anything.
    let resolve = |id: &str| format!("{labels}/{id}/resolve");
    let cancel = |id: &str| format!("{labels}/{id}/cancel");
    let (s, v) = auditor
        .call(
            Method::POST,
            &resolve(&a),
            Some(json!({"outcome": "not_printed"})),
        )
        .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = auditor.call(Method::POST, &cancel(&a), None).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = operator
        .call(
            Method::POST,
            &resolve(&a),
            Some(json!({"outcome": "maybe"})),
        )
        .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(site.job(&a).await?["status"], "in_doubt");
    let v = operator
        .post(
            &resolve(&a),
            json!({"outcome": "not_printed"}),
            StatusCode::OK,
        )
        .await?;
    assert_eq!(v["status"], "queued", "{v}");
    // A second resolve finds it no longer in doubt.
    let (s, v) = operator
        .call(
            Method::POST,
            &resolve(&a),
            Some(json!({"outcome": "printed"})),
        )
        .await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_in_doubt")),
        "{v}"
    );
    wait_status(&site, &a, "printed").await?;

    // 2. The printer printed label 2 when the agent died: in doubt; the operator says
    // printed; it never prints again.
    let b = in_doubt_job(&site, &mut st, &printer, &zpl_label(&mark, 2), |sim| {
        sim.set_stall(false);
    })
    .await?;
    let v = operator
        .post(&resolve(&b), json!({"outcome": "printed"}), StatusCode::OK)
        .await?;
    assert_eq!(v["status"], "printed", "{v}");
    // A later label to the same printer prints; everything before it has been sent.
    let c = site
        .submit(json!({ "printer": printer }), &zpl_label(&mark, 3))
        .await?;
    wait_status(&site, &c, "printed").await?;
    // A job that is not in doubt: 409.
    let (s, v) = operator
        .call(
            Method::POST,
            &resolve(&c),
            Some(json!({"outcome": "not_printed"})),
        )
        .await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_in_doubt")),
        "{v}"
    );
    let (s, v) = operator.call(Method::POST, &cancel(&c), None).await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_queued")),
        "{v}"
    );
    let (s, _) = operator
        .call(
            Method::POST,
            &resolve("job-none"),
            Some(json!({"outcome": "printed"})),
        )
        .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // 3. No agent online: a queued job is cancelled and never prints, even once the agent
    // is back.
    st.agent.stop().await?;
    wait_event(&rx, "agent.offline", &device).await?;
    let d = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 4))
        .await?;
    assert_eq!(site.job(&d).await?["status"], "queued");
    let (s, v) = operator.call(Method::POST, &cancel(&d), None).await?;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("cancelled")),
        "{v}"
    );
    let (s, v) = operator.call(Method::POST, &cancel(&d), None).await?;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_queued")),
        "{v}"
    );
    let cancelled = site
        .admin
        .get(&format!("{labels}?status=cancelled"))
        .await?;
    assert_eq!(cancelled["data"][0]["id"], d.as_str(), "{cancelled}");
    st.agent.restart().await?;
    wait_event(&rx, "agent.online", &device).await?;
    let e = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 5))
        .await?;
    wait_status(&site, &e, "printed").await?;
    // The printer is swapped for another device behind the same address: the agent's
    // verification refuses it, and the webhook hears of it.
    st.printers[0].1.set_serial("SIM-SWAPPED".into());
    let refused = wait_event(&rx, "printer.refused", &printer).await?.json();
    assert_eq!(refused["data"]["agent_id"], device.as_str(), "{refused}");

    // What the printer got, once the agent is stopped and the printer quiet: 1, 2, 3 and 5
    // once each, 4 never.
    st.agent.stop().await?;
    let sim = &st.printers[0].1;
    assert!(
        sim.wait_quiet(Duration::from_secs(1), Duration::from_secs(20))
            .await
    );
    let got: Vec<usize> = (1..=5).map(|n| printed(sim, &mark, n)).collect();
    assert_eq!(got, vec![1, 1, 1, 0, 1], "copies of labels 1..=5");
    assert_eq!(site.job(&d).await?["status"], "cancelled");

    // The audit log names the operator for each settlement.
    let users = site.admin.get(&format!("/v1/tenants/{t}/users")).await?;
    let operator_id = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["email"] == "operator@acme.example"))
        .and_then(|u| u["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let audit = site.admin.get(&format!("/v1/tenants/{t}/audit")).await?;
    let entry = |action: &str, object: &str| {
        audit.as_array().and_then(|a| {
            a.iter()
                .find(|e| e["action"] == action && e["object"] == object)
                .cloned()
        })
    };
    for (action, object, outcome) in [
        ("label.resolved", &a, "ok outcome=not_printed"),
        ("label.resolved", &b, "ok outcome=printed"),
        ("label.cancelled", &d, "ok"),
    ] {
        let e = entry(action, object).unwrap_or(Value::Null);
        assert_eq!(e["actor"], operator_id.as_str(), "{action} {object}: {e}");
        assert_eq!(e["outcome"], outcome, "{e}");
    }

    // 4. The webhook heard every job and the agent, signed and without PII.
    for (kind, subject) in [
        ("label.in_doubt", &a),
        ("label.resolved", &a),
        ("label.printed", &a),
        ("label.in_doubt", &b),
        ("label.resolved", &b),
        ("label.printed", &b),
        ("label.printed", &c),
        ("label.printed", &e),
    ] {
        wait_event(&rx, kind, subject).await?;
    }
    let resolved = wait_event(&rx, "label.resolved", &a).await?.json();
    assert_eq!(resolved["data"]["outcome"], "not_printed", "{resolved}");
    assert_eq!(resolved["data"]["status"], "queued", "{resolved}");
    assert_eq!(resolved["data"]["resolved_by"], operator_id.as_str());
    let printed_e = wait_event(&rx, "label.printed", &e).await?.json();
    assert_eq!(
        printed_e["data"]["printer_id"],
        printer.as_str(),
        "{printed_e}"
    );
    assert_eq!(
        printed_e["data"]["agent_id"],
        device.as_str(),
        "{printed_e}"
    );
    assert_eq!(printed_e["tenant_id"], t.as_str());
    let allowed: BTreeSet<&str> = [
        "job_id",
        "status",
        "agent_id",
        "printer_id",
        "client_reference",
        "reprint",
        "outcome",
        "resolved_by",
        "at",
    ]
    .into();
    let deliveries = rx.deliveries();
    for d in &deliveries {
        assert!(
            webhook_receiver::verify(&secret, d.signature.as_deref(), &d.body),
            "bad signature on {}",
            String::from_utf8_lossy(&d.body)
        );
        assert!(d.id.as_deref().is_some_and(|i| i.starts_with("ntf-")));
        let text = String::from_utf8_lossy(&d.body);
        assert!(!text.contains(&mark), "label text in a webhook: {text}");
        assert!(!text.contains("acme.example"), "a user's email: {text}");
        let body = d.json();
        if let Some(data) = body["data"].as_object() {
            for k in data.keys() {
                assert!(allowed.contains(k.as_str()), "{k} in {text}");
            }
        }
    }
    // The cancelled job was never reported printed.
    assert!(!deliveries
        .iter()
        .any(|x| x.json()["type"] == "label.printed" && x.json()["subject"] == d.as_str()));
    Ok(())
}
