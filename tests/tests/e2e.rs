//! End-to-end tests: the real coordinator and agent binaries as processes, over real
//! sockets (HTTPS API, Noise-encrypted libp2p mesh, raw TCP to simulated printers).

use std::collections::HashMap;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::wait_for;
use sealprint_testkit::printer_sim::{self, SimConfig, SimMode};
use sealprint_testkit::scenario::{files_containing, marker, zpl_label, Site};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-e2e-")
        .tempdir()
        .expect("a scratch directory")
}

/// Watches `check` for `window`: it must hold at every look (every 100 ms). For promises that
/// something does NOT happen, where no condition can end the wait early.
async fn holds_for<F, Fut>(what: &str, window: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let until = tokio::time::Instant::now() + window;
    loop {
        anyhow::ensure!(check().await?, "{what}: broken");
        if tokio::time::Instant::now() >= until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_print_once_byte_identical_on_verified_printers_of_the_pool() -> anyhow::Result<()> {
    let tmp = scratch();
    let mut site = Site::new(tmp.path()).await?;
    // Two stations serve pool "outbound"; a third serves pool "returns".
    let mut a = site.station(0, 2, "outbound", &[]).await?;
    let mut b = site
        .station(1, 1, "outbound", &["--peer".into(), a.agent.dial_addr()])
        .await?;
    let mut c = site.station(2, 1, "returns", &[]).await?;
    site.wait_printers(4).await?;

    let mark = marker();
    let count = 30;
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    for id in &ids {
        let job = site.wait_final(id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        let printer = job["printer"].as_str().unwrap_or_default();
        assert!(
            printer.starts_with(&a.agent.device_id) || printer.starts_with(&b.agent.device_id),
            "printed on {printer}, outside the pool"
        );
    }
    // The audit log records requests and prints, without PII.
    let audit = site
        .admin
        .get(&format!("/v1/tenants/{}/audit", site.tenant))
        .await?;
    let text = audit.to_string();
    assert!(text.contains("label.printed"));
    assert!(!text.contains(&mark));
    // Count once every process has stopped and every printer is quiet: a late extra copy
    // counts too.
    for st in [&mut a, &mut b, &mut c] {
        st.agent.stop().await?;
    }
    site.coordinator.stop().await?;
    for (_, sim) in a.printers.iter().chain(&b.printers).chain(&c.printers) {
        assert!(sim.wait_quiet(Duration::from_secs(1), FINAL).await);
    }
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for (_, sim) in a.printers.iter().chain(b.printers.iter()) {
        for job in sim.jobs() {
            *seen.entry(job).or_default() += 1;
        }
    }
    for i in 0..count {
        assert_eq!(
            seen.get(&zpl_label(&mark, i)),
            Some(&1),
            "label {i} printed once, identical"
        );
    }
    assert_eq!(seen.len(), count, "nothing else was printed");
    assert!(
        c.printers[0].1.jobs().is_empty(),
        "the other pool got nothing"
    );

    // A label's text is in no file under any data directory, and in no log line, in no
    // form (raw, base64, gzip).
    let hits = files_containing(tmp.path(), mark.as_bytes());
    assert!(hits.is_empty(), "label text found in {hits:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_and_paper_out_printers_never_receive_labels() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let good = site.station(0, 1, "outbound", &[]).await?;
    // A second station whose printers are an impostor (accepts bytes, answers nothing) and a
    // real printer that is out of paper.
    let impostor = printer_sim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SimConfig {
            serial: "FAKE".into(),
            model: "ZD421".into(),
            mode: SimMode::Impostor,
        },
        None,
    )
    .await;
    let paper_out = printer_sim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SimConfig {
            serial: "SIMPO".into(),
            model: "ZD421".into(),
            mode: SimMode::PaperOut,
        },
        None,
    )
    .await;
    let dir = tmp.path().join("agent-x");
    sealprint_testkit::cluster::AgentProc::enroll(&dir, &site.token().await?).await?;
    let args = vec![
        "--printer".to_owned(),
        format!("impostor=raw://{}", impostor.addr()),
        "--printer".to_owned(),
        format!("nopaper=raw://{}", paper_out.addr()),
    ];
    let _x =
        sealprint_testkit::cluster::AgentProc::start(&dir, &tmp.path().join("agent-x.log"), &args)
            .await?;
    // Pool "default" has the two bad printers; put the good one's pool in the request too.
    site.wait_printers(1).await?;
    let printers = site
        .admin
        .get(&format!("/v1/tenants/{}/printers", site.tenant))
        .await?;
    wait_for(
        "the bad printers reported",
        Duration::from_secs(20),
        || async {
            let list = site
                .admin
                .get(&format!("/v1/tenants/{}/printers", site.tenant))
                .await?;
            Ok((list.as_array().map(|a| a.len()).unwrap_or(0) >= 3).then_some(()))
        },
    )
    .await?;
    let list = site
        .admin
        .get(&format!("/v1/tenants/{}/printers", site.tenant))
        .await?;
    let row = |name: &str| {
        list.as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == json!(name))
            .cloned()
    };
    let impostor_row = row("impostor").ok_or_else(|| anyhow::anyhow!("no impostor row: {list}"))?;
    assert_eq!(impostor_row["verified"], false, "{impostor_row}");
    let nopaper_row = row("nopaper").ok_or_else(|| anyhow::anyhow!("no nopaper row: {list}"))?;
    assert_eq!(nopaper_row["status"], "paper_out", "{nopaper_row}");
    drop(printers);
    let mark = marker();
    // Labels to pool "default": only bad printers there, so nothing may print; labels to the
    // good pool print.
    let bad_job = site
        .submit(json!({"pool": "default"}), &zpl_label(&mark, 0))
        .await?;
    let good_job = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 1))
        .await?;
    assert_eq!(
        site.wait_final(&good_job, FINAL).await?["status"],
        "printed"
    );
    holds_for(
        "the label for bad printers stays queued, and they receive nothing",
        Duration::from_secs(3),
        || async {
            let job = site.job(&bad_job).await?;
            Ok(job["status"] == "queued"
                && impostor.activity().received == 0
                && paper_out.activity().received == 0)
        },
    )
    .await?;
    assert_eq!(good.printers[0].1.jobs(), vec![zpl_label(&mark, 1)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_is_relayed_through_a_peer_when_the_destination_has_no_uplink() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let relay = site.station(0, 1, "outbound", &[]).await?;
    let hidden = site
        .station(
            1,
            1,
            "outbound",
            &[
                "--no-uplink".into(),
                "--peer".into(),
                relay.agent.dial_addr(),
            ],
        )
        .await?;
    site.wait_printers(2).await?;
    let agents = site
        .admin
        .get(&format!("/v1/tenants/{}/agents", site.tenant))
        .await?;
    let hidden_row = agents
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == json!(hidden.agent.device_id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(hidden_row["online"], true, "{agents}");
    assert_eq!(
        hidden_row["relay"],
        json!(relay.agent.device_id),
        "{agents}"
    );

    let mark = marker();
    let printer = format!("{}.{}", hidden.agent.device_id, hidden.printers[0].0);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            site.submit(json!({"printer": printer}), &zpl_label(&mark, i))
                .await?,
        );
    }
    for id in &ids {
        assert_eq!(site.wait_final(id, FINAL).await?["status"], "printed");
    }
    assert_eq!(hidden.printers[0].1.jobs().len(), 5);
    assert!(relay.printers[0].1.jobs().is_empty());
    Ok(())
}

/// Labels accepted before a tenant is suspended are not printed while it is: they wait in
/// the queue and print once it is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_labels_of_a_suspended_tenant_wait_until_it_resumes() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    st.agent.stop().await?;
    let mark = marker();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    let tenant = format!("/v1/tenants/{}", site.tenant);
    site.admin
        .post(
            &format!("{tenant}/suspend"),
            json!({"reason": "incident 42"}),
            StatusCode::OK,
        )
        .await?;
    st.agent.restart().await?;
    site.wait_printers(1).await?;
    // The station is back and ready; the suspended tenant's labels still wait.
    holds_for(
        "a suspended tenant's labels wait",
        Duration::from_secs(3),
        || async {
            for id in &ids {
                if site.job(id).await?["status"] != "queued" {
                    return Ok(false);
                }
            }
            Ok(st.printers[0].1.activity().received == 0)
        },
    )
    .await?;
    site.admin
        .post(&format!("{tenant}/resume"), json!({}), StatusCode::OK)
        .await?;
    for id in &ids {
        assert_eq!(site.wait_final(id, FINAL).await?["status"], "printed");
    }
    assert_eq!(st.printers[0].1.job_count(), 3);
    st.agent.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_restart_keeps_tenants_agents_and_pending_jobs() -> anyhow::Result<()> {
    let tmp = scratch();
    let mut site = Site::new(tmp.path()).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    // The station goes away; labels wait in the queue.
    st.agent.stop().await?;
    let mark = marker();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    site.coordinator.kill().await?;
    site.coordinator.start().await?;
    site.admin = site.coordinator.admin().await?;
    for id in &ids {
        assert_eq!(site.job(id).await?["status"], "queued");
    }
    let agents = site
        .admin
        .get(&format!("/v1/tenants/{}/agents", site.tenant))
        .await?;
    assert_eq!(agents.as_array().map(|a| a.len()), Some(1));
    st.agent.restart().await?;
    for id in &ids {
        assert_eq!(site.wait_final(id, FINAL).await?["status"], "printed");
    }
    assert_eq!(st.printers[0].1.jobs().len(), 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_revoked_and_foreign_certificates_are_refused() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let a = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;

    // Another site of the same tenant, and another tenant: their agents try to join a's mesh.
    let other_site = site
        .admin
        .post(
            &format!("/v1/tenants/{}/sites", site.tenant),
            json!({"name": "Warehouse 2"}),
            StatusCode::CREATED,
        )
        .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let other_tenant = site
        .admin
        .post(
            "/v1/tenants",
            json!({"name": "Other Co"}),
            StatusCode::CREATED,
        )
        .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Provisioning needs an active subscription (issue 4).
    let (status, _) = site
        .admin
        .call(
            Method::PUT,
            &format!("/v1/tenants/{other_tenant}/subscription"),
            Some(json!({"state": "active"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let other_tenant_site = site
        .admin
        .post(
            &format!("/v1/tenants/{other_tenant}/sites"),
            json!({"name": "Elsewhere"}),
            StatusCode::CREATED,
        )
        .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (n, (tenant, s)) in [
        (site.tenant.clone(), other_site),
        (other_tenant, other_tenant_site),
    ]
    .into_iter()
    .enumerate()
    {
        let token = site
            .admin
            .post(
                &format!("/v1/tenants/{tenant}/sites/{s}/enrollment-tokens"),
                json!({}),
                StatusCode::CREATED,
            )
            .await?["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let dir = tmp.path().join(format!("foreign-{n}"));
        sealprint_testkit::cluster::AgentProc::enroll(&dir, &token).await?;
        let log = tmp.path().join(format!("foreign-{n}.log"));
        let _f = sealprint_testkit::cluster::AgentProc::start(
            &dir,
            &log,
            &["--peer".into(), a.agent.dial_addr()],
        )
        .await?;
        let reason = if n == 0 {
            "another site"
        } else {
            "another tenant"
        };
        wait_for(
            "the foreign peer refused",
            Duration::from_secs(20),
            || async {
                let text = std::fs::read_to_string(&a.agent.log).unwrap_or_default();
                Ok(text.contains(reason).then_some(()))
            },
        )
        .await?;
    }

    // A forged certificate: enroll, then alter the certificate's site id bytes on disk.
    let dir = tmp.path().join("forged");
    sealprint_testkit::cluster::AgentProc::enroll(&dir, &site.token().await?).await?;
    let mut cert = std::fs::read(dir.join("device.cert"))?;
    let last = cert.len() - 1;
    cert[last] ^= 0x55; // inside the signature
    std::fs::write(dir.join("device.cert"), &cert)?;
    let log = tmp.path().join("forged.log");
    let _forged = sealprint_testkit::cluster::AgentProc::start(
        &dir,
        &log,
        &["--peer".into(), a.agent.dial_addr()],
    )
    .await?;
    wait_for(
        "the forged certificate refused by the coordinator",
        Duration::from_secs(20),
        || async {
            let text = std::fs::read_to_string(&site.coordinator.log).unwrap_or_default();
            Ok(text.contains("bad certificate signature").then_some(()))
        },
    )
    .await?;
    wait_for(
        "the forged certificate refused by the peer",
        Duration::from_secs(20),
        || async {
            let text = std::fs::read_to_string(&a.agent.log).unwrap_or_default();
            Ok(text.contains("bad certificate signature").then_some(()))
        },
    )
    .await?;

    // Revocation: b joins, is revoked, and is refused and cut off by coordinator and peer.
    let b = site
        .station(1, 1, "outbound", &["--peer".into(), a.agent.dial_addr()])
        .await?;
    site.wait_printers(2).await?;
    let (status, _) = site
        .admin
        .call(
            Method::POST,
            &format!(
                "/v1/tenants/{}/agents/{}/revoke",
                site.tenant, b.agent.device_id
            ),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    wait_for(
        "the revoked peer cut off by its site peer",
        Duration::from_secs(20),
        || async {
            let text = std::fs::read_to_string(&a.agent.log).unwrap_or_default();
            Ok(text.contains("revoked").then_some(()))
        },
    )
    .await?;
    let mark = marker();
    let printer = format!("{}.{}", b.agent.device_id, b.printers[0].0);
    let (status, body) = site
        .admin
        .call(
            Method::POST,
            &format!("/v1/tenants/{}/labels", site.tenant),
            Some(json!({"printer": printer, "format": "zpl",
                "content_base64": base64_encode(&zpl_label(&mark, 0))})),
        )
        .await?;
    // The printer stays known and verified: the label is accepted, and never dispatched.
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no job id: {body}"))?
        .to_owned();
    holds_for(
        "a revoked agent gets no label",
        Duration::from_secs(3),
        || async {
            Ok(site.job(&id).await?["status"] == "queued"
                && b.printers[0].1.activity().received == 0)
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_renew_over_the_uplink_and_expired_ones_are_refused() -> anyhow::Result<()> {
    let tmp = scratch();
    let validity = ["--device-cert-validity-secs".to_owned(), "6".to_owned()];
    let site = Site::new_with(tmp.path(), &validity).await?;
    let a = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    // Enrolled now, started only once its 6-second certificate has expired.
    let late = tmp.path().join("late");
    sealprint_testkit::cluster::AgentProc::enroll(&late, &site.token().await?).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The running agent renewed its certificate over the uplink and still prints.
    let mark = marker();
    let id = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 0))
        .await?;
    assert_eq!(site.wait_final(&id, FINAL).await?["status"], "printed");
    let log = std::fs::read_to_string(&a.agent.log)?;
    assert!(
        log.contains("certificate renewed"),
        "no renewal in the agent's log"
    );

    // The late agent's certificate expired: the coordinator and its site peer refuse it.
    let late_log = tmp.path().join("late.log");
    let _late = sealprint_testkit::cluster::AgentProc::start(
        &late,
        &late_log,
        &["--peer".into(), a.agent.dial_addr()],
    )
    .await?;
    for (who, path) in [
        ("coordinator", &site.coordinator.log),
        ("site peer", &a.agent.log),
    ] {
        wait_for(
            &format!("the expired certificate refused by the {who}"),
            Duration::from_secs(20),
            || async {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                Ok(text.contains("certificate expired").then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_printer_prints_nothing_until_an_admin_accepts_it() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let printer_id = format!("{}.{}", st.agent.device_id, st.printers[0].0);
    let printers = format!("/v1/tenants/{}/printers", site.tenant);
    // Someone puts another device at the printer's address.
    st.printers[0].1.set_serial("SWAPPED-1".into());
    let row = wait_for(
        "the swapped printer refused",
        Duration::from_secs(20),
        || async {
            let list = site.admin.get(&printers).await?;
            Ok(list
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["id"] == json!(printer_id) && p["verified"] == json!(false))
                .cloned())
        },
    )
    .await?;
    assert!(
        row["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("identity changed"),
        "{row}"
    );
    assert_eq!(row["identity"], "SWAPPED-1");
    let mark = marker();
    // Refused at the API: the printer is not verified.
    let (status, body) = site
        .admin
        .call(
            Method::POST,
            &format!("/v1/tenants/{}/labels", site.tenant),
            Some(json!({"printer": printer_id, "format": "zpl",
                "content_base64": base64_encode(&zpl_label(&mark, 0))})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unprocessable", "{body}");
    assert_eq!(
        st.printers[0].1.activity().received,
        0,
        "nothing reached the swapped device"
    );

    let accepted = site
        .admin
        .post(
            &format!("{printers}/{printer_id}/accept"),
            json!({}),
            StatusCode::OK,
        )
        .await?;
    assert_eq!(accepted["accepted_identity"], "SWAPPED-1");
    site.wait_printers(1).await?;
    let id = site
        .submit(json!({"printer": printer_id}), &zpl_label(&mark, 1))
        .await?;
    assert_eq!(site.wait_final(&id, FINAL).await?["status"], "printed");
    assert!(st.printers[0].1.jobs().contains(&zpl_label(&mark, 1)));
    Ok(())
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_input_with_clear_errors() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let _st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let anon = site.coordinator.client()?;
    // Each refusal: its exact status, its error code, and a message saying what is wrong.
    let expect = |what: &str, got: (StatusCode, serde_json::Value), status, code, says: &str| {
        let (got_status, body) = got;
        assert_eq!(got_status, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message:?} lacks {says:?}");
    };
    expect(
        "no session",
        anon.call(Method::GET, "/v1/tenants", None).await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "",
    );
    expect(
        "wrong password",
        anon.call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"email": "admin@example.test", "password": "wrong"})),
        )
        .await?,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "email or password is wrong",
    );
    let labels = format!("/v1/tenants/{}/labels", site.tenant);
    expect(
        "not JSON",
        site.admin
            .call_raw(Method::POST, &labels, b"{not json".to_vec())
            .await?,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "not valid JSON",
    );
    expect(
        "bad base64",
        site.admin
            .call(
                Method::POST,
                &labels,
                Some(json!({"pool": "outbound", "format": "zpl", "content_base64": "%%%"})),
            )
            .await?,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "not valid base64",
    );
    expect(
        "unknown pool",
        site.admin
            .call(
                Method::POST,
                &labels,
                Some(json!({"pool": "x", "format": "zpl", "content_base64": "XlhBXlha"})),
            )
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "no printer of the tenant serves this pool",
    );
    expect(
        "not ZPL",
        site.admin
            .call(
                Method::POST,
                &labels,
                Some(json!({"pool": "outbound", "format": "zpl",
                    "content_base64": base64_encode(b"hello")})),
            )
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "not a zpl label",
    );
    expect(
        "unknown tenant",
        site.admin
            .call(Method::GET, "/v1/tenants/tnt-nope/labels/job-nope", None)
            .await?,
        StatusCode::NOT_FOUND,
        "not_found",
        "not found",
    );
    let (status, _) = anon.call(Method::GET, "/healthz", None).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

/// Two Print Stations on their own hosts (network namespaces on a bridge): the one without an
/// uplink finds its site peer by mDNS alone, and its jobs and heartbeats travel through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_finds_site_peers_across_hosts_and_relays_for_a_station_without_uplink(
) -> anyhow::Result<()> {
    use sealprint_testkit::cluster::AgentProc;
    use sealprint_testkit::netns::Lan;

    let tmp = scratch();
    let lan = Lan::new(2)?;
    let mesh = format!("/ip4/{}/tcp/0", lan.gateway);
    let site = Site::new_with(tmp.path(), &["--mesh-listen".into(), mesh]).await?;
    let mut sims = Vec::new();
    let mut agents = Vec::new();
    for h in 0..2 {
        let sim = printer_sim::start(
            tokio::net::TcpListener::bind((lan.gateway.as_str(), 0)).await?,
            SimConfig {
                serial: format!("LAN{h}"),
                model: "ZD421".into(),
                mode: SimMode::Normal,
            },
            None,
        )
        .await;
        let dir = tmp.path().join(format!("host-{h}"));
        AgentProc::enroll(&dir, &site.token().await?).await?;
        let mut args = vec![
            "--printer".to_owned(),
            format!("zebra{h}=raw://{}", sim.addr()),
        ];
        if h == 1 {
            args.push("--no-uplink".into());
        }
        let log = tmp.path().join(format!("host-{h}.log"));
        agents.push(AgentProc::start_in_netns(&lan.hosts[h], &dir, &log, &args).await?);
        sims.push(sim);
    }
    let relay = agents[0].device_id.clone();
    let hidden = agents[1].device_id.clone();
    let online = wait_for(
        "the hidden station online through its peer",
        Duration::from_secs(40),
        || async {
            let list = site
                .admin
                .get(&format!("/v1/tenants/{}/agents", site.tenant))
                .await?;
            let ok = list.as_array().into_iter().flatten().any(|a| {
                a["id"] == json!(hidden) && a["online"] == json!(true) && a["relay"] == json!(relay)
            });
            Ok(ok.then_some(()))
        },
    )
    .await;
    if let Err(e) = online {
        let logs: Vec<String> = agents
            .iter()
            .map(|a| std::fs::read_to_string(&a.log).unwrap_or_default())
            .collect();
        anyhow::bail!(
            "{e:#}\n--- host 0 ---\n{}\n--- host 1 ---\n{}",
            logs[0],
            logs[1]
        );
    }
    let mark = marker();
    let printer = format!("{hidden}.zebra1");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            site.submit(json!({"printer": printer}), &zpl_label(&mark, i))
                .await?,
        );
    }
    for id in &ids {
        assert_eq!(site.wait_final(id, FINAL).await?["status"], "printed");
    }
    assert_eq!(sims[1].jobs().len(), 3);
    assert!(sims[0].jobs().is_empty());
    let log = std::fs::read_to_string(&agents[1].log)?;
    assert!(
        log.contains("mdns discovered a peer") || log.contains("site peer verified"),
        "{log}"
    );
    for a in &mut agents {
        a.stop().await?;
    }
    Ok(())
}

// ---- SP-API: labels bought through the stand-in ------------------------------------------

mod spapi {
    use std::time::Duration;

    use hyper::{Method, StatusCode};
    use sealprint_testkit::scenario::{marker, zpl_label, Site, Station};
    use sealprint_testkit::spapi_standin::{
        rate_violations, Call, Credentials, LabelMode, PurchaseFault, Standin, TokenKind,
        BUYER_MARKER,
    };
    use serde_json::{json, Value};

    use super::{files_containing, scratch, FINAL};

    /// No file under `root` (logs, stores) holds any of `needles` raw, base64 or gzipped,
    /// except the stand-in's certificate. Run after [`stop_all`].
    fn assert_nothing_leaked(root: &std::path::Path, needles: &[&str]) {
        for needle in needles {
            let hits = files_containing(root, needle.as_bytes());
            let hits: Vec<_> = hits
                .iter()
                .filter(|h| !h.contains("spapi-ca.pem:"))
                .collect();
            assert!(hits.is_empty(), "{needle:?} found in {hits:?}");
        }
    }

    /// Stops the station and the coordinator (so every log and store write is on disk) and
    /// returns every job the printer got once it is quiet.
    async fn stop_all(site: &mut Site, station: &mut Station) -> anyhow::Result<Vec<Vec<u8>>> {
        station.agent.stop().await?;
        site.coordinator.stop().await?;
        let sim = &station.printers[0].1;
        anyhow::ensure!(
            sim.wait_quiet(Duration::from_secs(1), FINAL).await,
            "the printer is still busy: {:?}",
            sim.activity()
        );
        Ok(sim.jobs())
    }

    /// Watches `check` for `window`: it must hold at every look.
    async fn holds_for<F, Fut>(what: &str, window: Duration, check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        super::holds_for(what, window, check).await
    }

    /// A stand-in selling `label`, and a site whose coordinator trusts it, with one station
    /// of one printer in pool `outbound` and a connection to the stand-in.
    async fn setup(
        root: &std::path::Path,
        label: Vec<u8>,
    ) -> anyhow::Result<(Standin, Site, Station, String)> {
        let standin = Standin::start(Credentials::default(), label).await?;
        let ca = root.join("spapi-ca.pem");
        std::fs::write(&ca, standin.cert_pem())?;
        let site = Site::new_with(
            root,
            &[
                "--spapi-ca-file".into(),
                ca.display().to_string(),
                // The stand-in is an override on 127.0.0.1: both test-only permissions.
                "--allow-spapi-endpoint-override".into(),
                "--insecure-allow-loopback-outbound".into(),
            ],
        )
        .await?;
        let station = site.station(0, 1, "outbound", &[]).await?;
        site.wait_printers(1).await?;
        let c = Credentials::default();
        let conn = site
            .admin
            .post(
                &format!("/v1/tenants/{}/spapi-connections", site.tenant),
                json!({"region": "na", "marketplace_id": "ATVPDKIKX0DER",
                    "client_id": c.client_id, "client_secret": c.client_secret,
                    "refresh_token": c.refresh_token, "sandbox": false,
                    "endpoint": standin.endpoint(), "lwa_endpoint": standin.lwa_endpoint()}),
                StatusCode::CREATED,
            )
            .await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((standin, site, station, conn))
    }

    fn shipment_request() -> Value {
        json!({
            "AmazonOrderId": "903-5563053-5647845",
            "ItemList": [{"OrderItemId": "52986411826454", "Quantity": 1}],
            "ShipFromAddress": {"Name": "Warehouse 1", "AddressLine1": "300 Turnbull Ave",
                "City": "Detroit", "StateOrProvinceCode": "MI", "PostalCode": "48123",
                "CountryCode": "US", "Email": "ops@example.test", "Phone": "7132341234"},
            "PackageDimensions": {"Length": 10.25, "Width": 10.25, "Height": 10.25, "Unit": "inches"},
            "Weight": {"Value": 10.25, "Unit": "oz"},
            "ShippingServiceOptions": {"DeliveryExperience": "NoTracking",
                "CarrierWillPickUp": false, "LabelFormat": "ZPL203"}
        })
    }

    async fn submit(site: &Site, body: Value) -> anyhow::Result<String> {
        submit_as(&site.admin, site, body).await
    }

    async fn submit_as(
        who: &sealprint_testkit::api_client::ApiClient,
        site: &Site,
        body: Value,
    ) -> anyhow::Result<String> {
        let answer = who
            .post(
                &format!("/v1/tenants/{}/labels", site.tenant),
                body,
                StatusCode::ACCEPTED,
            )
            .await?;
        assert_eq!(answer["status"], "queued", "{answer}");
        Ok(answer["id"].as_str().unwrap_or_default().to_owned())
    }

    fn mfn(conn: &str) -> Value {
        json!({"source": "mfn", "connection": conn, "shipment_request": shipment_request(),
            "shipping_service_id": "UPS_PTP_2ND_DAY_AIR", "shipping_service_offer_id": "offer-1",
            "pool": "outbound"})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mfn_and_shipping_v2_labels_print_byte_identical() -> anyhow::Result<()> {
        let tmp = scratch();
        let mark = marker();
        let label = zpl_label(&mark, 7);
        let (standin, mut site, mut station, conn) = setup(tmp.path(), label.clone()).await?;
        let base = format!("/v1/tenants/{}/spapi-connections", site.tenant);

        // The list shows the connection, never its secrets.
        let list = site.admin.get(&base).await?;
        let c = Credentials::default();
        assert_eq!(list[0]["id"], json!(conn), "{list}");
        assert_eq!(list[0]["shipping_business_id"], "AmazonShipping_US");
        assert!(!list.to_string().contains(&c.client_secret));
        assert!(!list.to_string().contains(&c.refresh_token));

        // Shopping, then an MFN purchase behind a storm of 429s without Retry-After.
        let services = site
            .admin
            .post(
                &format!("{base}/{conn}/eligible-services"),
                json!({"shipment_request": shipment_request()}),
                StatusCode::OK,
            )
            .await?;
        assert_eq!(
            services["ShippingServiceList"][0]["ShippingServiceId"],
            "UPS_PTP_2ND_DAY_AIR"
        );
        standin.throttle_next(4);
        let mfn_job = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&mfn_job, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        let mfn_shipment = job["shipment_id"].as_str().unwrap_or_default().to_owned();
        assert!(!mfn_shipment.is_empty(), "{job}");
        assert!(
            job["tracking_id"]
                .as_str()
                .is_some_and(|t| t.starts_with("1Z")),
            "{job}"
        );
        assert_eq!(job["spapi"]["checksum"], "received", "{job}");

        // Shipping v2: rates, then a purchase with a document spec copied from the rate.
        let rates = site
            .admin
            .post(
                &format!("{base}/{conn}/rates"),
                json!({"shipTo": {"name": "x"}, "shipFrom": {"name": "Warehouse 1"},
                    "packages": [{"packageClientReferenceId": "pkg-1"}],
                    "channelDetails": {"channelType": "AMAZON"}}),
                StatusCode::OK,
            )
            .await?;
        let rate = &rates["rates"][0];
        let spec = &rate["supportedDocumentSpecifications"][0];
        let v2_job = submit(
            &site,
            json!({"source": "shipping_v2", "connection": conn,
                "request_token": rates["requestToken"], "rate_id": rate["rateId"],
                "document_spec": {"format": spec["format"], "size": spec["size"], "dpi": 203,
                    "pageLayout": "DEFAULT", "needFileJoining": false,
                    "requestedDocumentTypes": ["LABEL"]},
                "pool": "outbound"}),
        )
        .await?;
        let job = site.wait_final(&v2_job, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        let v2_shipment = job["shipment_id"].as_str().unwrap_or_default().to_owned();
        assert!(v2_shipment.starts_with("amzn1.ship."), "{job}");
        assert_eq!(job["spapi"]["idempotency_key"], json!(v2_job));

        // Every token expires; reprints renew them and print again: three MFN reprints at
        // once (getShipment: 1 per second, burst 1) into another 429 storm.
        let exchanges = standin.lwa_exchanges();
        standin.expire_tokens();
        standin.throttle_next(3);
        let mfn_reprint = json!({"source": "mfn_shipment", "connection": conn,
            "shipment_id": mfn_shipment, "pool": "outbound"});
        let v2_reprint = json!({"source": "shipping_v2_shipment", "connection": conn,
            "shipment_id": v2_shipment, "package_client_reference_id": "pkg-1",
            "format": "ZPL", "dpi": 203, "pool": "outbound"});
        // Reprints read PII again: a platform admin may not, a pii_reader may.
        let (status, _) = site
            .admin
            .call(
                Method::POST,
                &format!("/v1/tenants/{}/labels", site.tenant),
                Some(mfn_reprint.clone()),
            )
            .await?;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let reader = site.tenant_user("reader", &["pii_reader"]).await?;
        let mut reprints = Vec::new();
        for body in [&mfn_reprint, &mfn_reprint, &mfn_reprint, &v2_reprint] {
            reprints.push(submit_as(&reader, &site, body.clone()).await?);
        }
        for id in &reprints {
            let job = site.wait_final(id, FINAL).await?;
            assert_eq!(job["status"], "printed", "{job}");
        }
        assert!(standin.lwa_exchanges() > exchanges);

        // Bought once each (the printer's six copies are counted once everything stopped).
        station.printers[0]
            .1
            .wait_for_jobs(6, FINAL)
            .await
            .ok_or_else(|| anyhow::anyhow!("six labels never arrived"))?;
        assert_eq!(standin.purchases(), (1, 1));

        // The restricted calls carried an RDT (never the LWA token); the RDT was asked for
        // with the generic paths; v2 calls carried the LWA token and the US business id.
        let calls = standin.calls();
        for c in &calls {
            if c.path.starts_with("/mfn/v0/shipments") && c.status == 200 {
                assert_eq!(c.token, TokenKind::Rdt, "{c:?}");
            }
            if c.path.starts_with("/shipping/v2/") {
                // (A reprint racing the renewal may carry the expired token once.)
                assert_ne!(c.token, TokenKind::Rdt, "{c:?}");
                if c.status == 200 {
                    assert_eq!(c.token, TokenKind::Lwa, "{c:?}");
                }
                assert_eq!(c.business_id.as_deref(), Some("AmazonShipping_US"));
            }
            if c.path != "/auth/o2/token" {
                assert!(
                    c.user_agent.as_deref().is_some_and(|u| u.starts_with("sealprint/")
                        && u.contains("Language=Rust")),
                    "{c:?}"
                );
            }
        }
        assert!(
            calls.iter().filter(|c| c.status == 429).count() >= 7,
            "both storms happened"
        );
        // Through both storms no operation was called faster than its documented rate and
        // burst (the stand-in's x-amzn-RateLimit-Limit is that rate).
        let reprint_gets = calls
            .iter()
            .filter(|c| c.operation == "getShipment")
            .count();
        assert!(reprint_gets >= 3, "{reprint_gets} getShipment calls");
        let too_early = standin.rate_violations();
        assert!(too_early.is_empty(), "{too_early:#?}");
        assert!(calls.iter().any(|c| c.path == "/shipping/v2/shipments"
            && c.idempotency_key.as_deref() == Some(v2_job.as_str())));
        let rdt = standin.rdt_requests();
        assert!(!rdt.is_empty());
        assert!(rdt[0].contains(&("GET".into(), "/mfn/v0/shipments/{shipmentId}".into())));
        assert!(rdt[0].contains(&("POST".into(), "/mfn/v0/shipments".into())));

        // Byte-identical on the printer, six times and no more.
        let printed = stop_all(&mut site, &mut station).await?;
        assert_eq!(printed, vec![label.clone(); 6]);
        // No label text, buyer data or credential in any file (logs, store).
        assert_nothing_leaked(
            tmp.path(),
            &[
                mark.as_str(),
                BUYER_MARKER,
                &c.refresh_token,
                &c.client_secret,
                "Atza|",
                "Atz.sprdt|",
            ],
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_answers_and_lost_purchases_end_in_clear_job_states() -> anyhow::Result<()> {
        let tmp = scratch();
        let mark = marker();
        let label = zpl_label(&mark, 3);
        let (standin, mut site, mut station, conn) = setup(tmp.path(), label.clone()).await?;

        // A createShipment whose answer is lost: in doubt, never bought again.
        standin.fault_next_purchase(PurchaseFault::LoseAnswer);
        let id = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "in_doubt", "{job}");
        assert_eq!(job["spapi"]["failed_call"], "createShipment", "{job}");
        // A 504 after buying: in doubt too.
        standin.fault_next_purchase(PurchaseFault::BuyThenStatus(504));
        let id = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "in_doubt", "{job}");
        holds_for(
            "each createShipment was sent once",
            Duration::from_secs(2),
            || async {
                let creates = standin
                    .calls()
                    .iter()
                    .filter(|c| c.method == Method::POST && c.path == "/mfn/v0/shipments")
                    .count();
                Ok(creates == 2)
            },
        )
        .await?;
        assert_eq!(standin.purchases().0, 2);

        // A model-shaped refusal whose message echoes buyer data: a typed failure, code kept.
        standin.error_next_purchase(400, "InvalidInput");
        let id = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["spapi"]["error_code"], "InvalidInput", "{job}");
        assert!(job["spapi"]["request_id"].is_string(), "{job}");
        assert!(!job.to_string().contains(BUYER_MARKER));

        // Malformed labels: clear errors naming the check; the shipment id is kept.
        for (mode, expect) in [
            (LabelMode::BadChecksum, "checksum"),
            (LabelMode::BrokenBase64, "base64"),
            (LabelMode::NotALabel, "not a pdf, png or zpl"),
        ] {
            standin.set_label_mode(mode);
            let id = submit(&site, mfn(&conn)).await?;
            let job = site.wait_final(&id, FINAL).await?;
            assert_eq!(job["status"], "failed", "{mode:?}: {job}");
            let error = job["error"].as_str().unwrap_or_default();
            assert!(error.contains(expect), "{mode:?}: {error}");
            assert!(job["shipment_id"].is_string(), "{job}");
        }
        // An empty FileType and checksum are tolerated; a plain (not gzipped) label too.
        for mode in [LabelMode::EmptyFileType, LabelMode::Plain] {
            standin.set_label_mode(mode);
            let id = submit(&site, mfn(&conn)).await?;
            let job = site.wait_final(&id, FINAL).await?;
            assert_eq!(job["status"], "printed", "{mode:?}: {job}");
        }
        standin.set_label_mode(LabelMode::Normal);

        // A Shipping v2 purchase whose answer is lost is retried with the same idempotency
        // key: printed, bought once.
        let before = standin.purchases().1;
        standin.fault_next_purchase(PurchaseFault::LoseAnswer);
        let id = submit(
            &site,
            json!({"source": "shipping_v2", "connection": conn, "request_token": "amzn1.rq.x",
                "rate_id": "rate-1", "idempotency_key": "order-903-1",
                "document_spec": {"format": "ZPL", "size": {"width": 4, "length": 6, "unit": "INCH"},
                    "dpi": 203, "needFileJoining": false, "requestedDocumentTypes": ["LABEL"]},
                "pool": "outbound"}),
        )
        .await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        assert_eq!(standin.purchases().1, before + 1);

        // Requests that cannot be bought are refused before anything is bought.
        let labels = format!("/v1/tenants/{}/labels", site.tenant);
        for (body, status) in [
            (
                json!({"source": "fax", "connection": conn, "pool": "outbound"}),
                StatusCode::BAD_REQUEST,
            ),
            // A reprint is a pii_reader's action: a platform admin is refused first.
            (
                json!({"source": "mfn_shipment", "connection": "spc-nope", "shipment_id": "s",
                "pool": "outbound"}),
                StatusCode::FORBIDDEN,
            ),
            (
                json!({"source": "shipping_v2", "connection": conn, "request_token": "t",
                "rate_id": "r", "document_spec": {"format": "ZPL"}, "pool": "outbound"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let (s, answer) = site.admin.call(Method::POST, &labels, Some(body)).await?;
            assert_eq!(s, status, "{answer}");
        }
        let (s, _) = site
            .admin
            .call(
                Method::POST,
                &format!("/v1/tenants/{}/spapi-connections", site.tenant),
                Some(
                    json!({"region": "na", "marketplace_id": "ATVPDKIKX0DER", "client_id": "a",
                    "client_secret": "b", "refresh_token": "c", "endpoint": "http://127.0.0.1:1"}),
                ),
            )
            .await?;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "endpoint overrides must be https"
        );

        // Only the good labels printed, byte-identical.
        let printed = stop_all(&mut site, &mut station).await?;
        assert_eq!(printed, vec![label.clone(); 3]);
        assert_nothing_leaked(
            tmp.path(),
            &[mark.as_str(), BUYER_MARKER, "Atza|", "Atz.sprdt|"],
        );
        Ok(())
    }

    /// A `OneClickShipmentRequest` for an Amazon order, with the label spec copied from a
    /// rate (ZPL, 4x6, 203 dpi).
    fn one_click(conn: &str, package: &str) -> Value {
        json!({"source": "shipping_v2_one_click", "connection": conn,
            "shipFrom": {"name": "Warehouse 1", "addressLine1": "300 Turnbull Ave",
                "city": "Detroit", "stateOrRegion": "MI", "postalCode": "48123",
                "countryCode": "US"},
            "packages": [{"dimensions": {"length": 10, "width": 8, "height": 4, "unit": "INCH"},
                "weight": {"unit": "POUND", "value": 2}, "insuredValue": {"value": 10, "unit": "USD"},
                "items": [{"quantity": 1}], "packageClientReferenceId": package}],
            "channelDetails": {"channelType": "AMAZON",
                "amazonOrderDetails": {"orderId": "903-5563053-5647845"}},
            "labelSpecifications": {"format": "ZPL",
                "size": {"width": 4, "length": 6, "unit": "INCH"}, "dpi": 203,
                "pageLayout": "DEFAULT", "needFileJoining": false,
                "requestedDocumentTypes": ["LABEL"]},
            "serviceSelection": {"serviceId": ["std"]},
            "pool": "outbound"})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_click_labels_and_the_label_format_fallback_print_byte_identical(
    ) -> anyhow::Result<()> {
        let tmp = scratch();
        let mark = marker();
        let label = zpl_label(&mark, 5);
        let (standin, mut site, mut station, conn) = setup(tmp.path(), label.clone()).await?;
        let base = format!("/v1/tenants/{}/spapi-connections/{conn}", site.tenant);

        // The shopping step's extra inputs pass through.
        let inputs = site
            .admin
            .post(
                &format!("{base}/additional-seller-inputs"),
                json!({"shipping_service_id": "UPS_PTP_GND", "order_id": "903-5563053-5647845",
                    "ship_from_address": shipment_request()["ShipFromAddress"]}),
                StatusCode::OK,
            )
            .await?;
        assert!(inputs["ShipmentLevelFields"].is_array(), "{inputs}");
        let mut bad_address = shipment_request()["ShipFromAddress"].clone();
        bad_address["CountryCode"] = json!("XX");
        let refused = site
            .admin
            .post(
                &format!("{base}/additional-seller-inputs"),
                json!({"shipping_service_id": "UPS_PTP_GND", "order_id": "903-5563053-5647845",
                    "ship_from_address": bad_address}),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await?;
        assert_eq!(refused["error"]["code"], "spapi_rejected", "{refused}");
        let schema = site
            .admin
            .post(
                &format!("{base}/additional-inputs"),
                json!({"request_token": "amzn1.rq.123456789.101", "rate_id": "rate-1"}),
                StatusCode::OK,
            )
            .await?;
        assert_eq!(schema["type"], "object", "{schema}");

        // One click: bought and printed; the job shows the shipment and tracking ids.
        let id = submit(&site, one_click(&conn, "pkg-oc")).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        assert_eq!(job["spapi"]["source"], "shipping_v2_one_click", "{job}");
        let shipment = job["shipment_id"].as_str().unwrap_or_default().to_owned();
        assert!(shipment.starts_with("amzn1.ship."), "{job}");
        assert!(
            job["tracking_id"]
                .as_str()
                .is_some_and(|t| t.starts_with("TBA")),
            "{job}"
        );
        // Its package reference serves a reprint (a pii_reader's action).
        let reader = site.tenant_user("reader", &["pii_reader"]).await?;
        let id = submit_as(
            &reader,
            &site,
            json!({"source": "shipping_v2_shipment", "connection": conn,
                "shipment_id": shipment, "package_client_reference_id": "pkg-oc",
                "pool": "outbound"}),
        )
        .await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        // A reprint, flagged as one in its view and found by the list's filter.
        assert_eq!(job["reprint"], true, "{job}");
        let reprints = site
            .admin
            .get(&format!("/v1/tenants/{}/labels?reprint=true", site.tenant))
            .await?;
        let ids: Vec<&str> = reprints["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|j| j["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ids, vec![id.as_str()], "{reprints}");

        // A one-click purchase whose answer is lost is in doubt and never sent again: it
        // has no idempotency key.
        standin.fault_next_purchase(PurchaseFault::LoseAnswer);
        let id = submit(&site, one_click(&conn, "pkg-lost")).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "in_doubt", "{job}");
        // That doubt is about the purchase, not a print: nothing to resolve here.
        let (s, v) = site
            .admin
            .call(
                Method::POST,
                &format!("/v1/tenants/{}/labels/{id}/resolve", site.tenant),
                Some(json!({"outcome": "not_printed"})),
            )
            .await?;
        assert_eq!(
            (s, &v["error"]["code"]),
            (StatusCode::CONFLICT, &json!("not_in_doubt")),
            "{v}"
        );
        assert_eq!(job["spapi"]["failed_call"], "oneClickShipment", "{job}");
        holds_for(
            "each one-click purchase was sent once",
            Duration::from_secs(2),
            || async {
                let n = standin
                    .calls()
                    .iter()
                    .filter(|c| c.operation == "oneClickShipment")
                    .count();
                Ok(n == 2)
            },
        )
        .await?;
        let one_clicks: Vec<Call> = standin
            .calls()
            .into_iter()
            .filter(|c| c.operation == "oneClickShipment")
            .collect();
        assert_eq!(one_clicks.len(), 2, "each one-click purchase was sent once");
        for c in &one_clicks {
            assert_eq!(c.token, TokenKind::Lwa, "{c:?}");
            assert_eq!(c.business_id.as_deref(), Some("AmazonShipping_US"), "{c:?}");
            assert_eq!(c.idempotency_key, None, "{c:?}");
        }
        assert_eq!(standin.purchases(), (0, 2));

        // The service refuses the requested label format: bought once without it, printed,
        // and the job says so.
        standin.refuse_label_format(true);
        let id = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        assert_eq!(job["spapi"]["label_format_fallback"], true, "{job}");
        assert_eq!(
            standin.create_label_formats(),
            vec![Some("ZPL203".to_owned()), None]
        );
        assert_eq!(standin.purchases(), (1, 2));
        // Any other refusal is final: not sent again without the format.
        standin.error_next_purchase(400, "InvalidInput");
        let id = submit(&site, mfn(&conn)).await?;
        let job = site.wait_final(&id, FINAL).await?;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["spapi"]["label_format_fallback"], false, "{job}");
        let creates = standin
            .calls()
            .iter()
            .filter(|c| c.operation == "createShipment")
            .count();
        assert_eq!(creates, 3, "refused, bought without the format, refused");

        // Byte-identical on the printer, three times and no more; within the rate limits;
        // nothing leaked.
        let too_early = standin.rate_violations();
        assert!(too_early.is_empty(), "{too_early:#?}");
        let printed = stop_all(&mut site, &mut station).await?;
        assert_eq!(printed, vec![label.clone(); 3]);
        assert_nothing_leaked(
            tmp.path(),
            &[
                mark.as_str(),
                BUYER_MARKER,
                "does not offer",
                "Atza|",
                "Atz.sprdt|",
            ],
        );
        Ok(())
    }

    /// The rate check itself: calls faster than the documented burst are caught, calls at
    /// the documented rate pass.
    #[test]
    fn the_rate_check_catches_a_burst() {
        let start = std::time::Instant::now();
        let get = |ms: u64| Call {
            operation: "getShipment",
            method: Method::GET,
            path: "/mfn/v0/shipments/s-1".into(),
            token: TokenKind::Rdt,
            business_id: None,
            idempotency_key: None,
            user_agent: None,
            status: 200,
            at: start + Duration::from_millis(ms),
        };
        assert!(rate_violations(&[get(0), get(1000), get(2050)]).is_empty());
        assert_eq!(rate_violations(&[get(0), get(1000), get(1500)]).len(), 1);
    }
}
