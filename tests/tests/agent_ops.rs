//! The agent's own operator commands against the real binaries: `status` of a running agent
//! (uplink and relay), of a killed, a stopped and a never-run one; `enroll --name` and the
//! host-name default as the coordinator lists them; `printers --discover` finding a queue of
//! a private cupsd and USB printer nodes, as TOML the agent accepts and as JSON.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sealprint_testkit::cluster::{binaries, wait_for, AgentProc};
use sealprint_testkit::scenario::Site;
use serde_json::{json, Value};
use tokio::process::Command;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-ops-")
        .tempdir()
        .expect("a scratch directory")
}

async fn agent_cmd(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binaries()?.agent)
        .args(args)
        .env_remove("CUPS_SERVER")
        .output()
        .await?)
}

/// `status --json` of the agent on `dir`, with whether it exited zero.
async fn status(dir: &Path) -> anyhow::Result<(bool, Value)> {
    let dir = dir.display().to_string();
    let out = agent_cmd(&["status", "--data-dir", &dir, "--json"]).await?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "status printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.success(), v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_uplink_relay_ack_certificate_and_printers_then_a_dead_agent(
) -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let mut relay = site.station(0, 1, "outbound", &[]).await?;
    let mut hidden = site
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

    let relay_dir = relay.agent.data_dir.clone();
    let (ok, up) = wait_for(
        "an acknowledged heartbeat over the uplink",
        Duration::from_secs(30),
        || async {
            let (ok, v) = status(&relay_dir).await?;
            Ok(
                (v["last_ack_ms"].is_u64() && v["printers"][0]["verdict"] == "verified")
                    .then_some((ok, v)),
            )
        },
    )
    .await?;
    assert!(ok, "{up}");
    assert_eq!(up["state"], "running", "{up}");
    assert_eq!(up["link"], json!({"kind": "uplink"}), "{up}");
    assert_eq!(up["device_id"], json!(relay.agent.device_id), "{up}");
    assert!(
        up["certificate"]["expires_in_s"].as_i64().unwrap_or(0) > 0,
        "{up}"
    );
    assert!(up["certificate"]["not_after_s"].is_u64(), "{up}");
    // Coordinator and agent share this machine's clock: the offset is one round trip at most.
    assert!(
        up["clock_offset_ms"]
            .as_i64()
            .is_some_and(|o| o.abs() < 5_000),
        "{up}"
    );
    assert!(
        up["last_ack_age_ms"].as_u64().is_some_and(|a| a < 30_000),
        "{up}"
    );
    assert!(up["snapshot_age_ms"].is_u64(), "{up}");
    assert_eq!(up["printers"][0]["name"], "zebra-0-0", "{up}");
    assert_eq!(up["printers"][0]["pool"], "outbound", "{up}");
    assert_eq!(up["printers"][0]["identity"], "SIM00", "{up}");

    let hidden_dir = hidden.agent.data_dir.clone();
    let relay_id = relay.agent.device_id.clone();
    let via = wait_for(
        "an acknowledged heartbeat through the relay",
        Duration::from_secs(30),
        || async {
            let (_, v) = status(&hidden_dir).await?;
            Ok((v["last_ack_ms"].is_u64() && v["link"]["kind"] == "relay").then_some(v))
        },
    )
    .await?;
    assert_eq!(via["link"]["peer_device_id"], json!(relay_id), "{via}");

    // The snapshot is the owner's only and holds no label bytes (none were sent) nor paths.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(relay_dir.join("status.json"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Killed: the snapshot stays, but no process: "stale", exit non-zero, said in the text.
    hidden.agent.kill().await?;
    let (ok, dead) = status(&hidden_dir).await?;
    assert!(!ok, "{dead}");
    assert_eq!(dead["state"], "stale", "{dead}");
    let text = agent_cmd(&["status", "--data-dir", &hidden_dir.display().to_string()]).await?;
    assert!(!text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("NOT RUNNING"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Stopped cleanly: "stopped".
    relay.agent.stop().await?;
    let (ok, stopped) = status(&relay_dir).await?;
    assert!(!ok, "{stopped}");
    assert_eq!(stopped["state"], "stopped", "{stopped}");

    // Never ran here: "never_ran", nothing enrolled.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let (ok, never) = status(&empty).await?;
    assert!(!ok, "{never}");
    assert_eq!(never["state"], "never_ran", "{never}");
    assert_eq!(never["certificate"], Value::Null, "{never}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_name_and_the_host_name_default_show_in_the_agents_list() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new(tmp.path()).await?;
    let named = tmp.path().join("named");
    let token = site.token().await?;
    let out = agent_cmd(&[
        "enroll",
        "--data-dir",
        &named.display().to_string(),
        "--name",
        "dock-7",
        &token,
    ])
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --name and without $HOSTNAME (as under systemd): the kernel's host name.
    let plain = tmp.path().join("plain");
    let token = site.token().await?;
    let out = Command::new(binaries()?.agent)
        .args(["enroll", "--data-dir", &plain.display().to_string(), &token])
        .env_remove("HOSTNAME")
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_owned();

    let mut agents = Vec::new();
    for dir in [&named, &plain] {
        let args: Vec<String> = vec!["--printer".into(), "z=raw://127.0.0.1:9".into()];
        agents.push(AgentProc::start(dir, &dir.with_extension("log"), &args).await?);
    }
    let path = format!("/v1/tenants/{}/agents", site.tenant);
    let list = wait_for("both agents listed", Duration::from_secs(30), || async {
        let list = site.admin.get(&path).await?;
        Ok((list.as_array().map_or(0, Vec::len) >= 2).then_some(list))
    })
    .await?;
    let hostname_of = |id: &str| {
        list.as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == json!(id))
            .map(|a| a["hostname"].clone())
            .unwrap_or_default()
    };
    assert_eq!(hostname_of(&agents[0].device_id), "dock-7", "{list}");
    assert_eq!(hostname_of(&agents[1].device_id), json!(host), "{list}");
    assert_ne!(host, "station");
    for a in &mut agents {
        a.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_finds_a_cups_queue_and_usb_nodes_as_toml_the_agent_accepts() -> anyhow::Result<()>
{
    use sealprint_testkit::cups::{self, Cupsd};
    if cups::skipped("discover_finds_a_cups_queue_and_usb_nodes_as_toml_the_agent_accepts") {
        return Ok(());
    }
    let tmp = scratch();
    let cupsd = Cupsd::start().await;
    cupsd.add_queue("Dock_Zebra", "socket://127.0.0.1:9", &[]);
    let usb = tmp.path().join("usb");
    std::fs::create_dir_all(&usb)?;
    for node in ["lp0", "lp3", "lpfoo"] {
        std::fs::write(usb.join(node), b"")?;
    }
    let usb_dir = usb.display().to_string();
    let server = cupsd.server();
    let args = [
        "printers",
        "--discover",
        "--cups-server",
        server.as_str(),
        "--usb-dir",
        usb_dir.as_str(),
        "--dns-sd-wait-ms",
        "0",
    ];
    let out = agent_cmd(&[&args[..], &["--json"]].concat()).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout)?;
    let uris: Vec<&str> = found["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["uri"].as_str())
        .collect();
    assert_eq!(
        uris,
        [
            "cups://Dock_Zebra".to_owned(),
            "usb:///dev/usb/lp0".to_owned(),
            "usb:///dev/usb/lp3".to_owned(),
        ],
        "{found}"
    );
    assert_eq!(found["candidates"][0]["source"], "cups", "{found}");
    assert_eq!(found["candidates"][0]["name"], "dock_zebra", "{found}");
    assert_eq!(found["candidates"][1]["source"], "usb", "{found}");

    // The TOML form, pasted into a config, is accepted by the agent as it stands.
    let out = agent_cmd(&args).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout)?;
    let config = tmp.path().join("agent.toml");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\n{toml}", data.display()),
    )?;
    let out = agent_cmd(&[
        "printers",
        "--config",
        &config.display().to_string(),
        "--json",
    ])
    .await?;
    let probed: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let names: Vec<&str> = probed["printers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["dock_zebra", "usb-lp0", "usb-lp3"],
        "{probed}\n{toml}"
    );
    Ok(())
}
