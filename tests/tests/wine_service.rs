//! The Windows agent as a Windows service under Wine: `sealprint-agent.exe service install|
//! start|stop|uninstall|run` against Wine's Service Control Manager (`services.exe`), with the
//! real Linux coordinator and a `winspool://` printer (a CUPS queue whose device is the
//! printer simulator, set to print directly), in a private Wine prefix.
//!
//! The steps: enroll into the default data directory (`C:\ProgramData\sealprint`, no
//! `--data-dir`); `service run` from a console fails at once with a clear error; `service
//! install` registers the service (the registry's `ImagePath` has `service run`, `Start` is 2,
//! automatic), a second install is refused; `service start` → the agent heartbeats (online),
//! its printer is verified and a label prints; `service stop` returns within the stop wait and
//! the service's process is gone; the log file is under `ProgramData\sealprint\logs` and holds
//! no label text; the key files carry the sealed-file header and no 32-byte window of them is
//! the device's ed25519 seed (checked against the public key in its certificate); a second
//! start loads the sealed keys and prints again; `service uninstall` removes the registration.
//!
//! What Wine does not show (see the README): Wine's `services.exe` takes failure actions
//! without storing them and has no failure-actions flag (the install warns); Wine's DPAPI is
//! Wine's own implementation (not Windows' machine key); the DACL is not enforced by Wine.
//!
//! Needs Debian's wine64 and gcc-mingw-w64-x86-64 ([`wine::available`]: the test fails under
//! `CI` without them and skips loudly elsewhere), and what `sealprint_testkit::cups` needs.

#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use hyper::StatusCode;
use sealprint_protocol::Certificate;
use sealprint_testkit::cluster::{self, wait_for};
use sealprint_testkit::cups::{self, Cupsd};
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle};
use sealprint_testkit::scenario::{files_containing, marker, zpl_label, Site};
use sealprint_testkit::wine::{self, windows_path, Prefix, ATTRIBUTE_DIRECT};
use serde_json::json;

const QUEUE: &str = "ZebraSvc";
const PRINTER: &str = "zs";
const SERVICE_KEY: &str = "HKLM\\System\\CurrentControlSet\\Services\\sealprint-agent";
const FINAL: Duration = Duration::from_secs(90);
/// The agent's `service::STOP_WAIT` (drain 20 s + 15 s).
const STOP_WAIT: Duration = Duration::from_secs(35);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_service_under_wine_installs_runs_prints_stops_and_seals_its_keys(
) -> anyhow::Result<()> {
    if !wine::available("windows_service_under_wine") || cups::skipped("windows_service_under_wine")
    {
        return Ok(());
    }
    let tmp = cups::scratch("sealprint-winesvc-");
    let result = service_under_wine(tmp.path()).await;
    if result.is_err() {
        eprintln!(
            "--- coordinator.log:\n{}",
            cups::tail(&tmp.path().join("coordinator.log"))
        );
    }
    result
}

/// Runs `wine64 exe ARGS…` and returns (success, stdout, stderr).
async fn agent_cmd(
    prefix: &Prefix,
    exe: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> anyhow::Result<(bool, String, String)> {
    let mut all: Vec<OsString> = vec![exe.as_os_str().to_owned()];
    all.extend(args.iter().map(OsString::from));
    let out = prefix.run_os(&all, stdin).await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

async fn must(
    prefix: &Prefix,
    exe: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> anyhow::Result<String> {
    let (ok, out, err) = agent_cmd(prefix, exe, args, stdin).await?;
    ensure!(ok, "sealprint-agent {args:?} failed: {out}{err}");
    Ok(format!("{out}{err}"))
}

/// Prints one label to the service's printer and waits for the simulator to have `count`.
async fn print_one(site: &Site, sim: &SimHandle, id: &str, count: usize) -> anyhow::Result<String> {
    let mark = marker();
    let label = zpl_label(&mark, count);
    let body = json!({"printer": id, "format": "zpl", "content_base64": base64_encode(&label)});
    let labels = format!("/v1/tenants/{}/labels", site.tenant);
    let answer = site.admin.post(&labels, body, StatusCode::ACCEPTED).await?;
    let job_id = answer["id"].as_str().context("job id")?.to_owned();
    let job = site.wait_final(&job_id, FINAL).await?;
    ensure!(job["status"] == "printed", "{job}");
    let jobs = sim
        .wait_for_jobs(count, FINAL)
        .await
        .context("the label did not reach the simulator")?;
    ensure!(jobs.last() == Some(&label), "the simulator got {jobs:?}");
    Ok(mark)
}

/// Waits until the coordinator lists the agent online and its printer verified.
async fn wait_online(site: &Site, device_id: &str, printer_id: &str) -> anyhow::Result<()> {
    let agents = format!("/v1/tenants/{}/agents", site.tenant);
    wait_for("the service's agent online", FINAL, || async {
        let list = site.admin.get(&agents).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["id"] == json!(device_id) && a["online"] == json!(true))
            .then_some(()))
    })
    .await?;
    let printers = format!("/v1/tenants/{}/printers", site.tenant);
    wait_for("the service's printer verified", FINAL, || async {
        let list = site.admin.get(&printers).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p["id"] == json!(printer_id)
                    && p["verified"] == json!(true)
                    && p["status"] == json!("ready")
            })
            .then_some(()))
    })
    .await
}

/// Whether no 32-byte window of `bytes` is an ed25519 seed whose public key is `public`.
fn holds_no_seed_of(bytes: &[u8], public: &[u8; 32]) -> bool {
    bytes.windows(32).all(|w| {
        let seed: [u8; 32] = w.try_into().expect("a 32-byte window");
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
            != *public
    })
}

/// Waits (30 s at most) until no `sealprint-agent.exe` runs in the prefix.
async fn service_process_gone(prefix: &Prefix, what: &str) -> anyhow::Result<()> {
    wait_for(what, Duration::from_secs(30), || async {
        Ok(prefix
            .processes("sealprint-agent.exe")
            .is_empty()
            .then_some(()))
    })
    .await
}

async fn service_under_wine(tmp: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = cluster::windows_agent()?;
    let site = Site::new(tmp).await?;
    let sim = printer_sim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SimConfig::normal("SIMWINSVC01"),
        None,
    )
    .await;
    let cupsd = Cupsd::start().await;
    cupsd.add_queue(QUEUE, &format!("socket://{}", sim.addr()), &[]);
    // One wineserver for the whole test: a new one would start the auto-start service again.
    let prefix = Prefix::new_persistent(&cupsd.server()).await?;
    // Services get the system environment: the service's winspool must find the same CUPS.
    prefix
        .set_system_env("CUPS_SERVER", &cupsd.server())
        .await?;
    eprintln!("winesvc: prefix ready after {:?}", started.elapsed());

    // enroll into the default data directory, %ProgramData%\sealprint.
    let token = site.token().await?;
    let out = must(
        &prefix,
        &exe,
        &["enroll", "--name", "wine-service", "-"],
        Some(format!("{token}\n").as_bytes()),
    )
    .await?;
    let device_id = out
        .lines()
        .find_map(|l| l.strip_prefix("enrolled as "))
        .context("enroll printed no device id")?
        .trim()
        .to_owned();
    let data_dir = prefix.program_data().join("sealprint");
    ensure!(
        data_dir.join("device.cert").is_file(),
        "enroll did not use the default data directory {}",
        data_dir.display()
    );

    // The config: the winspool printer, listening on ::1 (see wine.rs), 1 s heartbeats.
    let config = tmp.join("agent-service.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"/ip6/::1/tcp/0\"]\nmdns = false\nheartbeat_interval_secs = 1\n\
             [[printer]]\nname = \"{PRINTER}\"\nuri = \"winspool://{QUEUE}\"\npool = \"wine\"\n"
        ),
    )?;
    let config_arg = windows_path(&config);
    // doctor lists the Windows printers (Wine makes the printer's registry key), then the
    // printer is set to print directly, which the agent requires.
    let _ = agent_cmd(&prefix, &exe, &["doctor", "--config", &config_arg], None).await?;
    prefix
        .set_printer_attributes(QUEUE, ATTRIBUTE_DIRECT)
        .await?;

    // `service run` from a console: a clear error at once, not a hang.
    let t = Instant::now();
    let (ok, out, err) = agent_cmd(&prefix, &exe, &["service", "run"], None).await?;
    ensure!(
        !ok && err.contains("Service Control Manager") && err.contains("sealprint-agent run"),
        "service run from a console: {out}{err}"
    );
    eprintln!(
        "winesvc: `service run` from a console refused in {:?}",
        t.elapsed()
    );

    // install, and what the SCM registered.
    let install = must(
        &prefix,
        &exe,
        &["service", "install", "--config", &config_arg],
        None,
    )
    .await?;
    eprintln!("winesvc: install said: {}", install.trim());
    let reg = prefix.run(&["reg", "query", SERVICE_KEY], None).await?;
    let reg_text = String::from_utf8_lossy(&reg.stdout).into_owned();
    ensure!(reg.status.success(), "no service key: {reg_text}");
    let value = |name: &str| {
        reg_text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let image = value("ImagePath");
    ensure!(
        image.contains("sealprint-agent.exe")
            && image.contains("service run --data-dir")
            && image.contains("--config")
            && image.contains("agent-service.toml"),
        "ImagePath: {image}\n{reg_text}"
    );
    ensure!(value("Start") == "0x2", "Start (2 = automatic): {reg_text}");
    ensure!(value("Type") == "0x10", "Type (own process): {reg_text}");
    ensure!(value("ObjectName") == "LocalSystem", "{reg_text}");
    ensure!(value("Description").contains("sealprint"), "{reg_text}");
    // Wine's services.exe accepts failure actions but does not store them, and has no
    // failure-actions flag (the install warns); Windows stores `FailureActions`.
    let failure_actions = value("FailureActions");
    eprintln!(
        "winesvc: FailureActions in the registry: {:?} (Wine does not store them)",
        failure_actions
    );
    ensure!(
        !failure_actions.is_empty() || install.contains("non-crash failures"),
        "neither stored failure actions nor the install's warning: {install}\n{reg_text}"
    );
    let (ok, out, err) = agent_cmd(&prefix, &exe, &["service", "install"], None).await?;
    ensure!(
        !ok && err.contains("already installed"),
        "a second install: {out}{err}"
    );

    // A start that fails (the device certificate moved away): `service start` reports it;
    // it does not say "running" of a service that is about to stop.
    let cert = data_dir.join("device.cert");
    let hidden = data_dir.join("device.cert.hidden");
    std::fs::rename(&cert, &hidden)?;
    let failed_start = agent_cmd(&prefix, &exe, &["service", "start"], None).await;
    std::fs::rename(&hidden, &cert)?;
    let (ok, out, err) = failed_start?;
    ensure!(
        !ok && err.contains("stopped while starting"),
        "a start that must fail: {out}{err}"
    );
    eprintln!("winesvc: a failing start said: {}", err.trim());

    // start → online, verified, prints.
    let t = Instant::now();
    must(&prefix, &exe, &["service", "start"], None).await?;
    let printer_id = format!("{device_id}.{PRINTER}");
    wait_online(&site, &device_id, &printer_id).await?;
    eprintln!("winesvc: started and online in {:?}", t.elapsed());
    let pids = prefix.processes("sealprint-agent.exe");
    ensure!(!pids.is_empty(), "no service process found in the prefix");
    let first = print_one(&site, &sim, &printer_id, 1).await?;
    eprintln!(
        "winesvc: label printed by the service after {:?}",
        started.elapsed()
    );

    // stop → returns within the stop wait, the process ends.
    let t = Instant::now();
    must(&prefix, &exe, &["service", "stop"], None).await?;
    let stop_took = t.elapsed();
    ensure!(
        stop_took < STOP_WAIT + Duration::from_secs(10),
        "{stop_took:?}"
    );
    service_process_gone(&prefix, "the service process gone").await?;
    eprintln!("winesvc: `service stop` took {stop_took:?} and the process ended");

    // The log file, without the label.
    let logs = data_dir.join("logs");
    let log = std::fs::read_to_string(logs.join("agent.log"))
        .with_context(|| format!("no agent.log under {}", logs.display()))?;
    ensure!(
        log.contains("service running") && log.contains("service stopped"),
        "the service log: {log}"
    );
    let leaked = files_containing(&data_dir, first.as_bytes());
    ensure!(
        leaked.is_empty(),
        "label text under the data dir: {leaked:?}"
    );

    // The key files are sealed: the header, and no window of them is the seed.
    let cert = Certificate::decode(&std::fs::read(data_dir.join("device.cert"))?)
        .map_err(|e| anyhow::anyhow!("device.cert: {e}"))?;
    for name in ["device.key", "x25519.key"] {
        let bytes = std::fs::read(data_dir.join(name))?;
        ensure!(
            bytes.starts_with(b"SPSEALED\x01\x01") && bytes.len() > 42,
            "{name} is not sealed ({} bytes)",
            bytes.len()
        );
    }
    let device_key = std::fs::read(data_dir.join("device.key"))?;
    ensure!(
        holds_no_seed_of(&device_key, &cert.body.ed25519_public),
        "device.key holds the raw seed"
    );
    for entry in std::fs::read_dir(&data_dir)? {
        let path = entry?.path();
        if path.is_file() {
            ensure!(
                holds_no_seed_of(&std::fs::read(&path)?, &cert.body.ed25519_public),
                "{} holds the raw seed",
                path.display()
            );
        }
    }

    // A second start loads the sealed keys and prints again.
    must(&prefix, &exe, &["service", "start"], None).await?;
    wait_online(&site, &device_id, &printer_id).await?;
    print_one(&site, &sim, &printer_id, 2).await?;
    eprintln!("winesvc: restarted on the sealed keys and printed again");

    // uninstall stops and removes it.
    let t = Instant::now();
    must(&prefix, &exe, &["service", "uninstall"], None).await?;
    eprintln!("winesvc: uninstall (stop included) took {:?}", t.elapsed());
    service_process_gone(&prefix, "the service process gone after uninstall").await?;
    let reg = prefix.run(&["reg", "query", SERVICE_KEY], None).await?;
    ensure!(
        !reg.status.success(),
        "the service key is still there: {}",
        String::from_utf8_lossy(&reg.stdout)
    );
    let (ok, out, err) = agent_cmd(&prefix, &exe, &["service", "stop"], None).await?;
    ensure!(
        !ok && err.contains("not installed"),
        "stop after uninstall: {out}{err}"
    );
    eprintln!("winesvc: whole test {:?}", started.elapsed());
    Ok(())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
