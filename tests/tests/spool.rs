//! No label touches the Print Station's disk when it prints through CUPS queues: the real
//! coordinator and agent binaries, a private CUPS scheduler (`sealprint_testkit::cups`, with
//! CUPS' default `PreserveJobFiles`, so any job it is sent stays in its spool directory) whose
//! queues point at printer simulators, one by `socket://` and one by `ipp://` (ippeveprinter,
//! which passes each job on to a simulator by `socket://`). Every label must reach a
//! simulator, and its canary text must be in no file of the scheduler's directories (its
//! `RequestRoot` above all) and none of the agent's data directory.
//!
//! Needs what `sealprint_testkit::cups` needs (Linux, root, Debian's cups, cups-client,
//! cups-ipp-utils, dbus, avahi-daemon); `SEALPRINT_SKIP_REAL_PRINTERS=1` skips it loudly.
//! ippeveprinter's own working directory stands for the printer's disk, not the station's, and
//! is not searched.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use sealprint_testkit::cluster::AgentProc;
use sealprint_testkit::cups::{self, Cupsd, SystemDaemons};
use sealprint_testkit::printer_sim::{self, SimConfig};
use sealprint_testkit::scenario::{files_containing, label_index, marker, zpl_label, Site};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(60);
/// Labels per queue.
const LABELS: usize = 4;

/// How many files are under `dir`, recursively.
fn file_count(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_printed_through_cups_queues_leave_nothing_in_the_spool_or_the_data_dir(
) -> anyhow::Result<()> {
    if cups::skipped("labels_printed_through_cups_queues_leave_nothing_in_the_spool") {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let tmp = cups::scratch("sealprint-spool-");
    let site = Site::new(tmp.path()).await?;

    // The printers: a simulator behind a socket:// queue, and one behind ippeveprinter, an
    // IPP printer behind an ipp:// queue.
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let socket_sim = printer_sim::start(bind().await?, SimConfig::normal("SIMSOCK01"), None).await;
    let ipp_sim = printer_sim::start(bind().await?, SimConfig::normal("SIMIPP01"), None).await;
    let printer_side = cups::scratch("sealprint-eve-");
    let _daemons = SystemDaemons::ensure(printer_side.path()).await;
    let eve_spool = printer_side.path().join("spool");
    std::fs::create_dir(&eve_spool)?;
    let eve_port = cups::free_port(true);
    let _eve = cups::start_ippeveprinter_to_device(
        printer_side.path(),
        &eve_spool,
        eve_port,
        "sealprint zebra",
        &format!("socket://{}", ipp_sim.addr()),
    )
    .await;

    let cupsd = Cupsd::start().await;
    cupsd.add_queue("ZSock", &format!("socket://{}", socket_sim.addr()), &[]);
    cupsd.add_queue(
        "ZIpp",
        &format!("ipp://127.0.0.1:{eve_port}/ipp/print"),
        &[],
    );

    // The station: one agent with both queues, one pool each.
    let data_dir = tmp.path().join("agent-cups");
    AgentProc::enroll(&data_dir, &site.token().await?).await?;
    let config = tmp.path().join("agent-cups.toml");
    std::fs::write(
        &config,
        "[[printer]]\nname = \"zsock\"\nuri = \"cups://ZSock\"\npool = \"sock\"\n\
         [[printer]]\nname = \"zipp\"\nuri = \"cups://ZIpp\"\npool = \"ipp\"\n",
    )?;
    let _agent = AgentProc::start_with_env(
        &data_dir,
        &tmp.path().join("agent-cups.log"),
        &["--config".to_owned(), config.display().to_string()],
        &[("CUPS_SERVER".to_owned(), cupsd.server())],
    )
    .await?;
    site.wait_printers(2).await?;
    eprintln!("both queues verified after {:?}", started.elapsed());

    let mark = marker();
    let mut jobs = Vec::new();
    for i in 0..2 * LABELS {
        let pool = if i < LABELS { "sock" } else { "ipp" };
        jobs.push(
            site.submit(json!({ "pool": pool }), &zpl_label(&mark, i))
                .await?,
        );
    }
    for id in &jobs {
        let job = site.wait_final(id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
        eprintln!("{id} printed after {:?}", started.elapsed());
    }

    // Every label reached the simulator behind its queue, once, byte for byte.
    let at_socket = socket_sim
        .wait_for_jobs(LABELS, FINAL)
        .await
        .unwrap_or_else(|| socket_sim.jobs());
    let at_ipp = ipp_sim
        .wait_for_jobs(LABELS, FINAL)
        .await
        .unwrap_or_else(|| ipp_sim.jobs());
    let indices = |jobs: &[Vec<u8>]| -> Vec<Option<usize>> {
        let mut seen: Vec<_> = jobs.iter().map(|j| label_index(j, &mark)).collect();
        seen.sort();
        seen
    };
    assert_eq!(
        indices(&at_socket),
        (0..LABELS).map(Some).collect::<Vec<_>>(),
        "labels at the socket queue's printer"
    );
    assert_eq!(
        indices(&at_ipp),
        (LABELS..2 * LABELS).map(Some).collect::<Vec<_>>(),
        "labels at the ipp queue's printer"
    );
    for (i, job) in at_socket.iter().chain(&at_ipp).enumerate() {
        let n = label_index(job, &mark).expect("a label");
        assert_eq!(job, &zpl_label(&mark, n), "label {i} byte for byte");
    }

    // The canary is nowhere on the station's disk: not in the scheduler's directories (its
    // RequestRoot, state, cache, temp and logs), not in the agent's data directory, not in any
    // file of the test's tree (coordinator data, logs).
    let request_root = cupsd.dir.path().join("spool");
    assert!(request_root.is_dir(), "the scheduler's RequestRoot");
    let hits = files_containing(cupsd.dir.path(), mark.as_bytes());
    assert!(
        hits.is_empty(),
        "label text in the CUPS scheduler's files: {hits:?}"
    );
    let hits = files_containing(&data_dir, mark.as_bytes());
    assert!(
        hits.is_empty(),
        "label text in the agent's data dir: {hits:?}"
    );
    let hits = files_containing(tmp.path(), mark.as_bytes());
    assert!(hits.is_empty(), "label text on disk: {hits:?}");
    eprintln!(
        "searched {} files of the scheduler ({} in its RequestRoot) and {} of the agent's data \
         dir: no label text",
        file_count(cupsd.dir.path()),
        file_count(&request_root),
        file_count(&data_dir)
    );
    Ok(())
}
