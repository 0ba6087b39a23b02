//! Agent version enforcement against the real binaries (issue 14 item 5): an agent below the
//! minimum (the coordinator's `--min-agent-version`, or its tenant's own through
//! `PUT …/agent-policy`) stays on the mesh and heartbeats, but prints nothing: its pool's
//! job and a job aimed at its printer stay queued, `GET …/agents` lists it `outdated`, the
//! `agent_outdated` alert opens, and the agent says in its log, `status --json` and `doctor`
//! what to install. Once the tenant's minimum is removed, the queued label prints exactly once.
//! A next minimum announced ahead reaches the agent (`status`) without holding its jobs.

use std::path::Path;
use std::time::Duration;

use hyper::Method;
use sealprint_testkit::cluster::{binaries, wait_for};
use sealprint_testkit::scenario::{label_indices, marker, zpl_label, Site, Station};
use serde_json::{json, Value};
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-versions-")
        .tempdir()
        .expect("a scratch directory")
}

/// Coordinator flags: a monitor sweep every second (a file key only), plus `extra`.
fn coordinator_args(root: &Path, extra: &[&str]) -> anyhow::Result<Vec<String>> {
    let config = root.join("coordinator.toml");
    std::fs::write(&config, "monitor_interval_secs = 1\n")?;
    let mut args = vec!["--config".to_owned(), config.display().to_string()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Ok(args)
}

/// `sealprint-agent ARGS --data-dir DIR --json`: its JSON and whether it exited zero.
async fn agent_json(cmd: &str, dir: &Path) -> anyhow::Result<(bool, Value)> {
    let out = Command::new(binaries()?.agent)
        .args([cmd, "--data-dir", &dir.display().to_string(), "--json"])
        .env_remove("CUPS_SERVER")
        .output()
        .await?;
    let v = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "{cmd} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.success(), v))
}

/// The tenant's agent `device` as `GET …/agents` lists it, once `check` holds.
async fn wait_agent(
    site: &Site,
    device: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let path = format!("/v1/tenants/{}/agents", site.tenant);
    wait_for(what, LIMIT, || async {
        let list = site.admin.get(&path).await?;
        let agent = list
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == json!(device)))
            .cloned();
        Ok(agent.filter(|a| check(a)))
    })
    .await
}

/// Open `agent_outdated` alerts of `device`.
async fn outdated_alerts(site: &Site, device: &str) -> anyhow::Result<usize> {
    let v = site
        .admin
        .get(&format!("/v1/tenants/{}/alerts", site.tenant))
        .await?;
    Ok(v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| {
                    x["rule"] == "agent_outdated"
                        && x["subject"] == json!(device)
                        && x["state"] == "open"
                })
                .count()
        })
        .unwrap_or(0))
}

/// Waits for three more heartbeats of `device` than the coordinator had recorded, so any job
/// it could have been given has had its chance.
async fn three_heartbeats(site: &Site, device: &str) -> anyhow::Result<()> {
    let first = wait_agent(site, device, "a heartbeat", |a| {
        a["last_heartbeat_at"].is_u64()
    })
    .await?;
    let from = first["last_heartbeat_at"].as_u64().unwrap_or(0);
    wait_agent(site, device, "three more heartbeats", |a| {
        a["last_heartbeat_at"]
            .as_u64()
            .is_some_and(|t| t >= from + 3_000)
    })
    .await?;
    Ok(())
}

/// Submits one label to the pool and one aimed at the station's printer; returns their ids.
async fn submit_both(site: &Site, mark: &str) -> anyhow::Result<(String, String)> {
    let printers = site
        .admin
        .get(&format!("/v1/tenants/{}/printers", site.tenant))
        .await?;
    let printer = printers[0]["id"].as_str().unwrap_or_default().to_owned();
    let pooled = site
        .submit(json!({"pool": "outbound"}), &zpl_label(mark, 1))
        .await?;
    let aimed = site
        .submit(json!({"printer": printer}), &zpl_label(mark, 2))
        .await?;
    Ok((pooled, aimed))
}

/// Asserts that nothing reached the station's printer and both jobs are still queued.
async fn nothing_printed(site: &Site, st: &Station, jobs: &[&str]) -> anyhow::Result<()> {
    assert!(
        st.printers[0].1.jobs().is_empty(),
        "an outdated agent printed"
    );
    for id in jobs {
        let job = site.job(id).await?;
        assert_eq!(job["status"], "queued", "{job}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_below_the_global_minimum_heartbeats_but_prints_nothing() -> anyhow::Result<()> {
    let tmp = scratch();
    let args = coordinator_args(tmp.path(), &["--min-agent-version", "99.0.0"])?;
    let mut site = Site::new_with(tmp.path(), &args).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let device = st.agent.device_id.clone();

    let listed = wait_agent(&site, &device, "the agent listed outdated", |a| {
        a["outdated"] == json!(true)
    })
    .await?;
    assert_eq!(listed["min_agent_version"], "99.0.0", "{listed}");
    assert_eq!(listed["online"], true, "{listed}");
    let policy = site
        .admin
        .get(&format!("/v1/tenants/{}/agent-policy", site.tenant))
        .await?;
    assert_eq!(policy["global_min_agent_version"], "99.0.0", "{policy}");

    let mark = marker();
    let (pooled, aimed) = submit_both(&site, &mark).await?;
    three_heartbeats(&site, &device).await?;
    nothing_printed(&site, &st, &[&pooled, &aimed]).await?;

    wait_for("the agent_outdated alert", LIMIT, || async {
        Ok((outdated_alerts(&site, &device).await? == 1).then_some(()))
    })
    .await?;

    let dir = st.agent.data_dir.clone();
    let (ok, status) = wait_for("status reporting outdated", LIMIT, || async {
        let (ok, v) = agent_json("status", &dir).await?;
        Ok((v["outdated"] == json!(true)).then_some((ok, v)))
    })
    .await?;
    assert!(ok, "{status}");
    assert_eq!(status["min_version"], "99.0.0", "{status}");
    let install = status["install"].as_str().unwrap_or_default();
    assert!(
        install.contains("install sealprint-agent 99.0.0 or later"),
        "{status}"
    );
    let (ok, doctor) = agent_json("doctor", &dir).await?;
    assert!(!ok, "doctor passes an outdated agent: {doctor}");
    let check = doctor["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "version"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(check["outcome"], "fail", "{doctor}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("99.0.0"),
        "{doctor}"
    );

    // Logged once, not on every heartbeat.
    let log = std::fs::read_to_string(&st.agent.log)?;
    let said = log
        .matches("the coordinator requires ≥ 99.0.0: install sealprint-agent 99.0.0 or later")
        .count();
    assert_eq!(said, 1, "{log}");

    // Still nothing, after all that time.
    nothing_printed(&site, &st, &[&pooled, &aimed]).await?;
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_minimum_holds_jobs_until_it_is_removed_then_they_print_once() -> anyhow::Result<()>
{
    let tmp = scratch();
    let args = coordinator_args(tmp.path(), &[])?;
    let mut site = Site::new_with(tmp.path(), &args).await?;
    let policy_path = format!("/v1/tenants/{}/agent-policy", site.tenant);
    let (s, v) = site
        .admin
        .call(
            Method::PUT,
            &policy_path,
            Some(json!({"min_agent_version": "99.0.0"})),
        )
        .await?;
    assert_eq!(s, hyper::StatusCode::OK, "{v}");
    assert_eq!(v["effective_min_agent_version"], "99.0.0", "{v}");

    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let device = st.agent.device_id.clone();
    wait_agent(&site, &device, "the agent listed outdated", |a| {
        a["outdated"] == json!(true) && a["min_agent_version"] == "99.0.0"
    })
    .await?;
    let mark = marker();
    let (pooled, aimed) = submit_both(&site, &mark).await?;
    three_heartbeats(&site, &device).await?;
    nothing_printed(&site, &st, &[&pooled, &aimed]).await?;
    wait_for("the agent_outdated alert", LIMIT, || async {
        Ok((outdated_alerts(&site, &device).await? == 1).then_some(()))
    })
    .await?;

    // The tenant's minimum removed: the global default (0.1.0) holds, the agent is current.
    let (s, v) = site
        .admin
        .call(
            Method::PUT,
            &policy_path,
            Some(json!({"min_agent_version": null})),
        )
        .await?;
    assert_eq!(s, hyper::StatusCode::OK, "{v}");
    for id in [&pooled, &aimed] {
        assert_eq!(site.wait_final(id, LIMIT).await?["status"], "printed");
    }
    let listed = wait_agent(&site, &device, "the agent listed current", |a| {
        a["outdated"] == json!(false)
    })
    .await?;
    assert_eq!(listed["min_agent_version"], "0.1.0", "{listed}");
    let printed: Vec<usize> = st.printers[0]
        .1
        .jobs()
        .iter()
        .flat_map(|b| label_indices(b, &mark))
        .collect();
    assert_eq!(
        (
            printed.iter().filter(|n| **n == 1).count(),
            printed.iter().filter(|n| **n == 2).count()
        ),
        (1, 1),
        "{printed:?}"
    );
    wait_for("the alert resolved", LIMIT, || async {
        Ok((outdated_alerts(&site, &device).await? == 0).then_some(()))
    })
    .await?;
    let dir = st.agent.data_dir.clone();
    wait_for("status reporting current", LIMIT, || async {
        let (_, v) = agent_json("status", &dir).await?;
        Ok((v["outdated"] == json!(false) && v["min_version"] == "0.1.0").then_some(()))
    })
    .await?;
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_minimum_is_announced_to_agents_without_holding_their_jobs() -> anyhow::Result<()> {
    let tmp = scratch();
    // Far ahead (2100-01-01): the warning window, not the minimum yet.
    let args = coordinator_args(
        tmp.path(),
        &[
            "--next-min-agent-version",
            "99.0.0",
            "--next-min-agent-version-from",
            "4102444800",
        ],
    )?;
    let mut site = Site::new_with(tmp.path(), &args).await?;
    let mut st = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let dir = st.agent.data_dir.clone();
    let status = wait_for("status reporting the announcement", LIMIT, || async {
        let (_, v) = agent_json("status", &dir).await?;
        Ok((v["next_min_version"] == "99.0.0").then_some(v))
    })
    .await?;
    assert_eq!(status["outdated"], false, "{status}");
    assert_eq!(status["min_version"], "0.1.0", "{status}");
    assert_eq!(
        status["next_min_version_from_s"], 4_102_444_800u64,
        "{status}"
    );
    let install = status["install"].as_str().unwrap_or_default();
    assert!(install.contains("before then"), "{status}");
    let policy = site
        .admin
        .get(&format!("/v1/tenants/{}/agent-policy", site.tenant))
        .await?;
    assert_eq!(policy["next_min_agent_version"], "99.0.0", "{policy}");
    // Not outdated yet: its labels print.
    let mark = marker();
    let id = site
        .submit(json!({"pool": "outbound"}), &zpl_label(&mark, 1))
        .await?;
    assert_eq!(site.wait_final(&id, LIMIT).await?["status"], "printed");
    let device = st.agent.device_id.clone();
    let listed = wait_agent(&site, &device, "the agent listed", |a| {
        a["outdated"].is_boolean()
    })
    .await?;
    assert_eq!(listed["outdated"], false, "{listed}");
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    Ok(())
}
