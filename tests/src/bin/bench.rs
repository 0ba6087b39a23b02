//! `sealprint-bench`: measures the sealed label path against the floor and against CUPS.
//!
//! Everything runs on this machine over loopback: the real coordinator and agent binaries,
//! and simulated Zebra printers. It prints one table:
//! - the floor: a direct TCP write of each label to the simulator;
//! - a CUPS raw queue (`socket://` to the same simulator), when CUPS is installed and running;
//! - sealprint end to end (HTTPS POST sent → bytes at the printer) with 1, 3 and 10 agents;
//! - memory: coordinator and idle agent RSS.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::Parser;
use sealprint_testkit::cluster::{rss_kib, wait_for};
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle, SimMode};
use sealprint_testkit::scenario::{label_index, marker, zpl_label, Site, Station};
use sealprint_testkit::stats::Latencies;
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[derive(Parser)]
#[command(about = "sealprint end-to-end benchmark")]
struct Args {
    /// Labels per measurement.
    #[arg(long, default_value_t = 500)]
    labels: usize,
    /// Concurrent API connections submitting labels.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Agent counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    agents: Vec<usize>,
    /// Simulated agents (real libp2p endpoints) for the heartbeat load test; 0 skips it.
    #[arg(long, default_value_t = 400)]
    heartbeat_agents: usize,
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Heartbeat load: simulated agents heartbeat at rising aggregate rates; one row per rate
/// until the p99 round trip passes 100 ms. At a 10 s interval, a rate of R heartbeats/s is
/// what 10·R agents send.
async fn heartbeat_load(site: &Site, agents: usize) -> anyhow::Result<()> {
    use sealprint_testkit::load::SimAgent;
    let mut sims = Vec::with_capacity(agents);
    while sims.len() < agents {
        let batch = (agents - sims.len()).min(32);
        let mut starting = Vec::new();
        for _ in 0..batch {
            let token = site.token().await?;
            starting.push(tokio::spawn(async move { SimAgent::start(&token).await }));
        }
        for s in starting {
            sims.push(s.await??);
        }
    }
    let sims = std::sync::Arc::new(sims);
    let pid = site.coordinator.pid().context("coordinator pid")?;
    println!();
    println!(
        "heartbeat load: {agents} simulated agents (real libp2p endpoints, enrolled, verified)"
    );
    println!(
        "{:>10} {:>22} {:>9} {:>9} {:>12} {:>10}",
        "hb/s", "= agents at 10 s", "p50 ms", "p99 ms", "coord CPU %", "RSS MiB"
    );
    for rate in [100usize, 250, 500, 1000, 2000, 4000] {
        let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
        let t0 = Instant::now();
        let secs = 4;
        let total = rate * secs;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            if i % (rate / 100).max(1) == 0 {
                tick.tick().await;
            }
            let sims = sims.clone();
            tasks.push(tokio::spawn(async move {
                sims[i % sims.len()].heartbeat().await
            }));
        }
        let mut lat = Vec::with_capacity(total);
        for t in tasks {
            lat.push(t.await??);
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(pid).unwrap_or(0.0) - cpu0) / wall * 100.0;
        let lat = Latencies::new(lat);
        let (p50, p99, _) = lat.summary_ms();
        let rss = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        println!(
            "{:>10} {:>22} {:>9.2} {:>9.2} {:>12.0} {:>10.1}",
            rate,
            rate * 10,
            p50,
            p99,
            cpu,
            rss
        );
        if p99 > 100.0 {
            break;
        }
    }
    Ok(())
}

struct Row {
    what: String,
    lat: Latencies,
    per_s: f64,
}

fn print_rows(rows: &[Row], floor_p50: f64) {
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>11} {:>10}",
        "path", "p50 ms", "p99 ms", "max ms", "labels/s", "p50/floor"
    );
    for r in rows {
        let (p50, p99, max) = r.lat.summary_ms();
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>9.2} {:>11.1} {:>10.1}",
            r.what,
            p50,
            p99,
            max,
            r.per_s,
            if floor_p50 > 0.0 {
                p50 / floor_p50
            } else {
                0.0
            }
        );
    }
}

async fn sim(serial: &str) -> anyhow::Result<SimHandle> {
    Ok(printer_sim::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SimConfig {
            serial: serial.into(),
            model: "ZD421-300dpi".into(),
            mode: SimMode::Normal,
        },
        None,
    )
    .await)
}

/// Floor: connect, write the label, close, wait for the printer to close.
async fn floor(n: usize) -> anyhow::Result<Row> {
    let printer = sim("FLOOR").await?;
    let mark = marker();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let label = zpl_label(&mark, i);
        let t = Instant::now();
        let mut s = tokio::net::TcpStream::connect(printer.addr()).await?;
        s.write_all(&label).await?;
        s.shutdown().await?;
        let mut sink = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink).await?;
        lat.push(t.elapsed());
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    Ok(Row {
        what: "direct TCP write to the printer (floor)".into(),
        lat: Latencies::new(lat),
        per_s,
    })
}

/// A CUPS raw queue to the simulator, if CUPS is here: `lp` at its absolute path, label on
/// standard input.
async fn cups(n: usize) -> anyhow::Result<Option<Row>> {
    let (lpadmin, lp) = (Path::new("/usr/sbin/lpadmin"), Path::new("/usr/bin/lp"));
    if !lpadmin.exists() || !lp.exists() {
        return Ok(None);
    }
    let printer = sim("CUPS").await?;
    let queue = format!("sealprint-bench-{}", std::process::id());
    let ok = tokio::process::Command::new(lpadmin)
        .args(["-p", &queue, "-E", "-v"])
        .arg(format!("socket://{}", printer.addr()))
        .args(["-m", "raw"])
        .status()
        .await?;
    if !ok.success() {
        return Ok(None);
    }
    let mark = marker();
    let mut sent = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let mut child = tokio::process::Command::new(lp)
            .args(["-d", &queue, "-o", "raw", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().context("lp stdin")?;
        stdin.write_all(&zpl_label(&mark, i)).await?;
        drop(stdin);
        child.wait().await?;
        sent.push(t);
    }
    let arrived = printer.wait_for_jobs(n, Duration::from_secs(120)).await;
    let elapsed = start.elapsed();
    let _ = tokio::process::Command::new(lpadmin)
        .args(["-x", &queue])
        .status()
        .await;
    if arrived.is_none() {
        bail!("CUPS delivered fewer than {n} labels within 120 s");
    }
    let lat = printer
        .jobs_timed()
        .into_iter()
        .filter_map(|(at, bytes)| {
            label_index(&bytes, &mark).map(|i| at.saturating_duration_since(sent[i]))
        })
        .collect();
    Ok(Some(Row {
        what: "CUPS raw queue (lp → socket://)".into(),
        lat: Latencies::new(lat),
        per_s: n as f64 / elapsed.as_secs_f64(),
    }))
}

/// sealprint end to end with the given stations, `n` labels from `c` connections.
async fn sealed(site: &Site, stations: &[Station], n: usize, c: usize) -> anyhow::Result<Row> {
    let mark = marker();
    let before: usize = stations.iter().map(|s| s.printers[0].1.job_count()).sum();
    let path = format!("/v1/tenants/{}/labels", site.tenant);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..c {
        let mut conn = site.admin.connect().await?;
        let path = path.clone();
        let mark = mark.clone();
        workers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in (w..n).step_by(c) {
                let body = json!({
                    "pool": "bench",
                    "format": "zpl",
                    "content_base64": base64::engine::general_purpose::STANDARD.encode(zpl_label(&mark, i)),
                });
                let t = Instant::now();
                let (status, answer) = conn.post(&path, &body).await?;
                if status != hyper::StatusCode::ACCEPTED {
                    bail!("label {i} refused: {status} {answer}");
                }
                sent.push((i, t));
            }
            Ok::<_, anyhow::Error>(sent)
        }));
    }
    let mut sent = vec![start; n];
    for w in workers {
        for (i, t) in w.await?? {
            sent[i] = t;
        }
    }
    wait_for(
        "every label at a printer",
        Duration::from_secs(300),
        || async {
            let now: usize = stations.iter().map(|s| s.printers[0].1.job_count()).sum();
            Ok((now >= before + n).then_some(()))
        },
    )
    .await?;
    let mut lat = Vec::with_capacity(n);
    let mut last = start;
    for s in stations {
        for (at, bytes) in s.printers[0].1.jobs_timed() {
            if let Some(i) = label_index(&bytes, &mark) {
                lat.push(at.saturating_duration_since(sent[i]));
                last = last.max(at);
            }
        }
    }
    if lat.len() != n {
        bail!("{} labels printed for {n} sent", lat.len());
    }
    Ok(Row {
        what: format!(
            "sealprint, {} agent(s), {c} API connections",
            stations.len()
        ),
        lat: Latencies::new(lat),
        per_s: n as f64 / last.duration_since(start).as_secs_f64(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.labels;
    println!(
        "sealprint bench: {n} labels per row, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    let mut rows = vec![floor(n).await?];
    let floor_p50 = rows[0].lat.summary_ms().0;
    match cups(n.min(200)).await {
        Ok(Some(row)) => rows.push(row),
        Ok(None) => {
            println!("CUPS not installed or not running: its row is skipped (apt-get install cups)")
        }
        Err(e) => println!("CUPS row failed: {e:#}"),
    }
    let root = tempfile::Builder::new()
        .prefix("sealprint-bench-")
        .tempdir()?;
    let site = Site::new(root.path()).await?;
    let mut stations: Vec<Station> = Vec::new();
    let mut sorted = args.agents.clone();
    sorted.sort_unstable();
    for k in sorted {
        while stations.len() < k {
            let peers: Vec<String> = stations
                .first()
                .map(|s| vec!["--peer".to_owned(), s.agent.dial_addr()])
                .unwrap_or_default();
            stations.push(site.station(stations.len(), 1, "bench", &peers).await?);
        }
        site.wait_printers(k).await?;
        // Warm-up: connections, caches.
        sealed(&site, &stations, 20.min(n), 2).await?;
        // Latency of one label at a time (no queueing), then throughput under load (where the
        // latency includes the time spent queued behind other labels).
        rows.push(sealed(&site, &stations, (n / 2).max(1), 1).await?);
        rows.push(sealed(&site, &stations, n, args.concurrency).await?);
    }
    print_rows(&rows, floor_p50);
    if args.heartbeat_agents > 0 {
        heartbeat_load(&site, args.heartbeat_agents).await?;
    }
    println!();
    if let Some(kib) = site.coordinator.pid().and_then(rss_kib) {
        println!(
            "coordinator RSS after the runs   {:>8.1} MiB",
            kib as f64 / 1024.0
        );
    }
    if let Some(kib) = stations
        .first()
        .and_then(|s| s.agent.pid())
        .and_then(rss_kib)
    {
        println!(
            "agent RSS (idle, after the runs) {:>8.1} MiB",
            kib as f64 / 1024.0
        );
    }
    let store = root.path().join("coordinator-data");
    println!(
        "coordinator data directory       {:>8.1} MiB",
        dir_size(&store) as f64 / 1048576.0
    );
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
