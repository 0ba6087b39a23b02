//! End-to-end tests: the real coordinator and agent binaries as processes, over real
//! sockets (HTTPS API, Noise-encrypted libp2p mesh, raw TCP to simulated printers).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::wait_for;
use sealprint_testkit::printer_sim::{self, SimConfig, SimMode};
use sealprint_testkit::scenario::{marker, zpl_label, Site};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-e2e-")
        .tempdir()
        .expect("a scratch directory")
}

/// Every file under `dir` (recursively), read whole.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_print_once_byte_identical_on_verified_printers_of_the_pool() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    // Two stations serve pool "outbound"; a third serves pool "returns".
    let a = site.station(0, 2, "outbound", &[]).await?;
    let b = site
        .station(1, 1, "outbound", &["--peer".into(), a.agent.dial_addr()])
        .await?;
    let c = site.station(2, 1, "returns", &[]).await?;
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

    // A label's text is in no file under any data directory, and in no log line.
    let hits = files_containing(tmp.path(), mark.as_bytes());
    assert!(hits.is_empty(), "label text found in {hits:?}");

    // The audit log records requests and prints, without PII.
    let audit = site
        .admin
        .get(&format!("/v1/tenants/{}/audit", site.tenant))
        .await?;
    let text = audit.to_string();
    assert!(text.contains("label.printed"));
    assert!(!text.contains(&mark));
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
    for p in list.as_array().into_iter().flatten() {
        match p["name"].as_str() {
            Some("impostor") => assert_eq!(p["verified"], false, "{p}"),
            Some("nopaper") => assert_ne!(p["status"], "ready", "{p}"),
            _ => {}
        }
    }
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
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = site.job(&bad_job).await?;
    assert_eq!(job["status"], "queued", "{job}");
    assert!(
        impostor.jobs().is_empty(),
        "the impostor never receives a label"
    );
    assert!(paper_out.jobs().is_empty());
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
    if status == StatusCode::ACCEPTED {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_ne!(site.job(&id).await?["status"], "printed");
    }
    assert!(
        b.printers[0].1.jobs().is_empty(),
        "a revoked agent gets no label"
    );
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
    let anon = site.coordinator.client()?;
    let (status, body) = anon.call(Method::GET, "/v1/tenants", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    let (status, _) = anon
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"email": "admin@example.test", "password": "wrong"})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let labels = format!("/v1/tenants/{}/labels", site.tenant);
    let (status, _) = site
        .admin
        .call_raw(Method::POST, &labels, b"{not json".to_vec())
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = site
        .admin
        .call(
            Method::POST,
            &labels,
            Some(json!({"pool": "x", "format": "zpl", "content_base64": "%%%"})),
        )
        .await?;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = site
        .admin
        .call(Method::GET, "/v1/tenants/tnt-nope/labels/job-nope", None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = anon.call(Method::GET, "/healthz", None).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}
