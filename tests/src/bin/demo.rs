//! `sealprint-demo`: the whole sealed label path on one machine, end to end.
//!
//! A coordinator on a temporary data directory, three agents of one site in a mesh (static
//! peers on loopback), one simulated Zebra printer each, all in pool `outbound`. The demo
//! creates a tenant and a site, enrolls the agents with one-time tokens, prints labels through
//! the HTTPS API, stops one agent halfway so the rest of the pool takes over, and ends with a
//! table: labels per printer, latency (API accepted → bytes at the printer), duplicates, lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sealprint_testkit::scenario::{label_index, marker, zpl_label, Site, Station};
use sealprint_testkit::stats::Latencies;
use serde_json::json;

const LABELS: usize = 120;
const AGENTS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::Builder::new()
        .prefix("sealprint-demo-")
        .tempdir()?;
    println!(
        "sealprint demo — scratch directory {}",
        root.path().display()
    );
    println!("building and starting the coordinator…");
    let site = Site::new(root.path()).await?;
    println!(
        "coordinator up: api https://{}  mesh {}  peer {}",
        site.coordinator.api,
        site.coordinator.mesh.join(","),
        site.coordinator.peer_id
    );
    println!("tenant {}  site {}", site.tenant, site.site);

    let mut stations: Vec<Station> = Vec::new();
    for n in 0..AGENTS {
        let peers: Vec<String> = stations
            .iter()
            .flat_map(|s| ["--peer".to_owned(), s.agent.dial_addr()])
            .collect();
        let st = site.station(n, 1, "outbound", &peers).await?;
        println!(
            "agent {n} enrolled as {} with printer {} at {}",
            st.agent.device_id,
            st.printers[0].0,
            st.printers[0].1.addr()
        );
        stations.push(st);
    }
    site.wait_printers(AGENTS).await?;
    println!("all {AGENTS} printers verified (serial checked with ~HI, ~HS and getvar)");

    let mark = marker();
    let mut sent: Vec<Instant> = Vec::with_capacity(LABELS);
    let mut ids = Vec::new();
    let started = Instant::now();
    for i in 0..LABELS {
        if i == LABELS / 2 {
            println!(
                "stopping agent 2 ({}) halfway…",
                stations[2].agent.device_id
            );
            stations[2].agent.stop().await?;
        }
        let label = zpl_label(&mark, i);
        let t = Instant::now();
        let id = site.submit(json!({"pool": "outbound"}), &label).await?;
        sent.push(t);
        ids.push(id);
    }
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let job = site.wait_final(id, Duration::from_secs(90)).await?;
        *statuses
            .entry(job["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let elapsed = started.elapsed();

    // What did each printer really receive?
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut latencies = Vec::new();
    println!();
    println!("{:<12} {:<34} {:>8}", "printer", "agent", "labels");
    for (n, st) in stations.iter().enumerate() {
        let jobs = st.printers[0].1.jobs_timed();
        println!(
            "{:<12} {:<34} {:>8}",
            st.printers[0].0,
            st.agent.device_id,
            jobs.len()
        );
        for (at, bytes) in jobs {
            let Some(i) = label_index(&bytes, &mark) else {
                bail!("printer {n} printed something that is not one of ours");
            };
            if bytes != zpl_label(&mark, i) {
                bail!("label {i} arrived altered");
            }
            *seen.entry(i).or_default() += 1;
            if let Some(t) = sent.get(i) {
                latencies.push(at.saturating_duration_since(*t));
            }
        }
    }
    let duplicates: usize = seen.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    let lost = LABELS - seen.len();
    let latencies = Latencies::new(latencies);
    let (p50, p99, max) = latencies.summary_ms();
    println!();
    println!("labels submitted      {LABELS}");
    println!("job states            {statuses:?}");
    println!("printed (distinct)    {}", seen.len());
    println!("duplicates            {duplicates}");
    println!("lost                  {lost}");
    println!("latency p50           {p50:.1} ms  (POST sent -> bytes at the printer)");
    println!("latency p99           {p99:.1} ms");
    println!("latency max           {max:.1} ms");
    println!(
        "throughput            {:.1} labels/s (sequential submissions over the API)",
        LABELS as f64 / elapsed.as_secs_f64()
    );
    if duplicates > 0 || lost > 0 {
        bail!("the delivery guarantee was broken: {duplicates} duplicates, {lost} lost");
    }
    println!("\nevery label printed exactly once, byte-identical, on a verified printer");
    for st in &mut stations {
        st.agent.stop().await.context("stopping an agent")?;
    }
    Ok(())
}
