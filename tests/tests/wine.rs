//! The Windows agent (`sealprint-agent.exe`, built for `x86_64-pc-windows-gnu`) under Wine,
//! against the real Linux coordinator: `--version`, `doctor`, `enroll` (token on standard
//! input) and `run` with a `winspool://` printer. Wine lists the queues of a private CUPS
//! scheduler (`sealprint_testkit::cups`, told to Wine by `CUPS_SERVER`) as Windows printers;
//! the queue's device is the printer simulator.
//!
//! With Wine's default printer attributes (0: the spooler would spool) the printer is refused,
//! by `doctor` and by the running agent, which the coordinator lists as refused with the
//! reason, and no label is printed; with "keep printed documents" it is refused for that; with
//! "print directly" (the attributes set in the prefix's registry while the agent runs) it is
//! verified and a label goes through `WritePrinter` to the simulator byte for byte.
//!
//! What Wine does underneath (seen with strace; the last two asserted here so the README's
//! account stays true): Wine's spooler writes every job to
//! `C:\windows\system32\spool\printers\NNNNN.SPL` whatever the attributes say, hands the file
//! to CUPS and deletes it; CUPS then keeps the document in its spool directory
//! (`PreserveJobFiles`' default). So under Wine the "direct" path is a test
//! of the agent's logic, not evidence about the Windows spooler.
//!
//! Needs Debian's wine64 and gcc-mingw-w64-x86-64 ([`wine::available`]: the test fails under
//! `CI` without them and skips loudly elsewhere), and what `sealprint_testkit::cups` needs.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::{self, wait_for, AgentProc};
use sealprint_testkit::cups::{self, Cupsd};
use sealprint_testkit::printer_sim::{self, SimConfig};
use sealprint_testkit::scenario::{files_containing, marker, zpl_label, Site};
use sealprint_testkit::wine::{self, Prefix, ATTRIBUTE_DIRECT, ATTRIBUTE_KEEP_PRINTED_JOBS};
use serde_json::{json, Value};

/// The Windows printer (a CUPS queue) and the agent's name for it.
const QUEUE: &str = "ZebraWine";
const PRINTER: &str = "zw";
const FINAL: Duration = Duration::from_secs(60);

/// The checks of `doctor --json` by name.
fn doctor_checks(stdout: &[u8]) -> anyhow::Result<Vec<(String, String, String)>> {
    let doc: Value = serde_json::from_slice(stdout)
        .with_context(|| format!("doctor --json: {}", String::from_utf8_lossy(stdout)))?;
    Ok(doc["checks"]
        .as_array()
        .context("no checks")?
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("outcome"), s("detail"))
        })
        .collect())
}

/// The coordinator's row for `id` once `done` holds for it.
async fn printer_row(
    site: &Site,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let path = format!("/v1/tenants/{}/printers", site.tenant);
    let found = wait_for(what, FINAL, || async {
        let list = site.admin.get(&path).await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == json!(id) && done(p))
            .cloned())
    })
    .await;
    match found {
        Ok(row) => Ok(row),
        Err(e) => {
            let list = site.admin.get(&path).await.unwrap_or_default();
            Err(e.context(format!("the coordinator lists: {list}")))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_agent_under_wine_enrolls_refuses_spooling_printers_and_prints_directly(
) -> anyhow::Result<()> {
    if !wine::available("windows_agent_under_wine") || cups::skipped("windows_agent_under_wine") {
        return Ok(());
    }
    let tmp = cups::scratch("sealprint-winetest-");
    let result = under_wine(tmp.path()).await;
    if result.is_err() {
        for log in ["agent-wine.log", "coordinator.log"] {
            eprintln!("--- {log}:\n{}", cups::tail(&tmp.path().join(log)));
        }
    }
    result
}

async fn under_wine(tmp: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = cluster::windows_agent()?;
    let site = Site::new(tmp).await?;
    let sim = printer_sim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SimConfig::normal("SIMWINE01"),
        None,
    )
    .await;
    let cupsd = Cupsd::start().await;
    cupsd.add_queue(QUEUE, &format!("socket://{}", sim.addr()), &[]);
    let prefix = Prefix::new(&cupsd.server()).await?;
    let exe_arg = exe.as_os_str().to_owned();

    // --version: the agent loads (the ProcessPrng DLL in place) and says its version.
    let out = prefix
        .run_os(&[exe_arg.clone(), "--version".into()], None)
        .await?;
    let version = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && version.trim() == format!("sealprint-agent {}", env!("CARGO_PKG_VERSION")),
        "--version ({}): {version}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // enroll, the one-time token on standard input.
    let data_dir = tmp.join("agent-wine");
    let token = site.token().await?;
    let mut enroll: Vec<std::ffi::OsString> = vec![exe_arg.clone(), "enroll".into()];
    enroll.extend(["--data-dir".into(), data_dir.clone().into_os_string()]);
    enroll.extend(["--name".into(), "wine-station".into(), "-".into()]);
    let out = prefix
        .run_os(&enroll, Some(format!("{token}\n").as_bytes()))
        .await?;
    ensure!(
        out.status.success(),
        "enroll under Wine ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = tmp.join("agent-wine.toml");
    std::fs::write(
        &config,
        format!(
            "[[printer]]\nname = \"{PRINTER}\"\nuri = \"winspool://{QUEUE}\"\npool = \"wine\"\n"
        ),
    )?;
    eprintln!("wine: --version and enroll after {:?}", started.elapsed());

    // doctor: the Windows printer check reports both settings; Wine's default spools.
    let doctor = |attributes: &'static str| {
        let args: Vec<std::ffi::OsString> = vec![
            exe_arg.clone(),
            "doctor".into(),
            "--json".into(),
            "--data-dir".into(),
            data_dir.clone().into_os_string(),
            "--config".into(),
            config.clone().into_os_string(),
        ];
        let prefix = &prefix;
        async move {
            let out = prefix.run_os(&args, None).await?;
            let checks = doctor_checks(&out.stdout)?;
            let name = format!("windows printer {QUEUE}");
            let check = checks
                .iter()
                .find(|c| c.0 == name)
                .with_context(|| format!("no {name:?} check ({attributes}): {checks:?}"))?
                .clone();
            let printer = checks
                .iter()
                .find(|c| c.0 == format!("printer {PRINTER}"))
                .with_context(|| format!("no printer check ({attributes}): {checks:?}"))?
                .clone();
            Ok::<_, anyhow::Error>((check, printer))
        }
    };
    let (check, printer) = doctor("default").await?;
    ensure!(
        check.1 == "warn"
            && check.2.contains(&format!("port \"CUPS:{QUEUE}\""))
            && check
                .2
                .contains("prints directly: no, keeps printed documents: no")
            && check.2.contains("Print directly to the printer"),
        "{check:?}"
    );
    ensure!(
        printer.2.contains("would keep the label on disk"),
        "{printer:?}"
    );

    // run: the printer is refused with the reason; the coordinator lists it so; no label.
    let launcher = prefix.launcher(&exe);
    // Listening on ::1, not on the 127.0.0.1 it dials the coordinator from: libp2p binds a
    // dialing socket to the listen port of the same address (port reuse, SO_REUSEADDR), which
    // Windows allows and Wine refuses (WSAEACCES), mapping it to Linux's SO_REUSEADDR.
    let mut agent = AgentProc::start_launched(
        launcher,
        "/ip6/::1/tcp/0",
        &data_dir,
        &tmp.join("agent-wine.log"),
        &["--config".to_owned(), config.display().to_string()],
        &[],
    )
    .await?;
    eprintln!("wine: agent running after {:?}", started.elapsed());
    let id = format!("{}.{PRINTER}", agent.device_id);
    let refused = |why: &'static str| {
        move |p: &Value| {
            p["verified"] == json!(false) && p["reason"].as_str().is_some_and(|r| r.contains(why))
        }
    };
    let row = printer_row(
        &site,
        &id,
        "the spooling printer refused",
        refused("Print directly to the printer"),
    )
    .await?;
    ensure!(
        row["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("would keep the label on disk"),
        "{row}"
    );
    let mark = marker();
    let label = zpl_label(&mark, 1);
    let labels = format!("/v1/tenants/{}/labels", site.tenant);
    let body = json!({"printer": id, "format": "zpl",
        "content_base64": base64_encode(&label)});
    let (status, answer) = site
        .admin
        .call(Method::POST, &labels, Some(body.clone()))
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {answer}"
    );

    // "Keep printed documents" on, printing directly: refused for that, while it runs.
    prefix
        .set_printer_attributes(QUEUE, ATTRIBUTE_DIRECT | ATTRIBUTE_KEEP_PRINTED_JOBS)
        .await?;
    printer_row(
        &site,
        &id,
        "the printer that keeps jobs refused",
        refused("Keep printed documents"),
    )
    .await?;
    let (check, _) = doctor("direct, keep").await?;
    ensure!(
        check.1 == "warn"
            && check
                .2
                .contains("prints directly: yes, keeps printed documents: yes"),
        "{check:?}"
    );
    ensure!(sim.job_count() == 0, "a refused printer printed");

    // Printing directly, nothing kept: verified, and the label reaches the simulator.
    prefix
        .set_printer_attributes(QUEUE, ATTRIBUTE_DIRECT)
        .await?;
    let (check, printer) = doctor("direct").await?;
    ensure!(
        check.1 == "pass"
            && check
                .2
                .contains("prints directly: yes, keeps printed documents: no"),
        "{check:?}"
    );
    ensure!(printer.1 == "pass", "{printer:?}");
    let row = printer_row(&site, &id, "the direct printer verified", |p| {
        p["verified"] == json!(true) && p["status"] == json!("ready")
    })
    .await?;
    ensure!(
        row["identity"] == json!(format!("CUPS:{QUEUE}|{QUEUE}")),
        "{row}"
    );
    let answer = site.admin.post(&labels, body, StatusCode::ACCEPTED).await?;
    let job_id = answer["id"].as_str().context("job id")?.to_owned();
    let job = site.wait_final(&job_id, FINAL).await?;
    ensure!(job["status"] == "printed", "{job}");
    let jobs = sim.wait_for_jobs(1, FINAL).await.with_context(|| {
        format!(
            "no job reached the simulator; the scheduler's log:\n{}",
            cups::tail(&cupsd.peer.log)
        )
    })?;
    ensure!(jobs == vec![label.clone()], "the simulator got {jobs:?}");
    eprintln!(
        "wine: label printed through winspool after {:?}",
        started.elapsed()
    );

    // Stopped (by its pid) before the disk is searched, so everything it wrote is on disk.
    agent.kill().await?;
    drop(agent);
    // What Wine did underneath: its .SPL file is gone, CUPS kept the document.
    let in_wine_spool = files_containing(&prefix.spool_dir(), mark.as_bytes());
    ensure!(
        in_wine_spool.is_empty(),
        "Wine's spool kept {in_wine_spool:?}"
    );
    let in_cups = files_containing(&cupsd.dir.path().join("spool"), mark.as_bytes());
    ensure!(
        !in_cups.is_empty(),
        "Wine printed through CUPS yet CUPS kept no copy: update the README's account"
    );
    eprintln!(
        "wine: underneath, Wine's spooler wrote the job to a .SPL file it deleted, and CUPS \
         kept the document ({} file(s) in its spool): a test of the agent's logic only",
        in_cups.len()
    );
    let in_data = files_containing(&data_dir, mark.as_bytes());
    ensure!(
        in_data.is_empty(),
        "label text in the agent's data dir: {in_data:?}"
    );
    eprintln!("wine: whole test {:?}", started.elapsed());
    Ok(())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
