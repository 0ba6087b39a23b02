//! `sealprint-soak`: the delivery promise under faults, for as long as you like.
//!
//! A coordinator and N agents with one simulated printer each (pool `dock`), labels sent at a
//! steady rate, and every `--fault-every-secs` one fault, in turn: an agent SIGKILLed and
//! restarted a few seconds later, a printer out of paper for a few seconds, the coordinator
//! SIGKILLed and restarted. At the end every job must be final and the printers are counted:
//! no label twice, every printed job on paper once, nothing failed; jobs in doubt only on a
//! killed agent. Prints a table; exits non-zero when the promise broke.
//!
//! `cargo run --release --bin sealprint-soak -- --minutes 30`

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use sealprint_testkit::ledger::Ledger;
use sealprint_testkit::printer_sim::SimMode;
use sealprint_testkit::scenario::{Site, Station};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Sends labels for a while under faults and checks nothing is lost or printed twice"
)]
struct Args {
    /// How long to send labels, minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Labels a second.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Agents (one printer each).
    #[arg(long, default_value_t = 3)]
    agents: usize,
    /// Seconds between faults.
    #[arg(long, default_value_t = 20)]
    fault_every_secs: u64,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    AgentKill,
    PaperOut,
    CoordinatorKill,
}

const FAULTS: [Fault; 3] = [Fault::AgentKill, Fault::PaperOut, Fault::CoordinatorKill];
/// How long an agent stays dead, or a printer out of paper.
const OUTAGE: Duration = Duration::from_secs(4);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.agents >= 2, "--agents must be at least 2");
    let root = tempfile::Builder::new()
        .prefix("sealprint-soak-")
        .tempdir()?;
    println!(
        "sealprint soak — scratch directory {}",
        root.path().display()
    );
    let flags = ["--attempt-window-secs", "5"].map(str::to_owned);
    let mut site = Site::new_with(root.path(), &flags).await?;
    let mut stations: Vec<Station> = Vec::new();
    for n in 0..args.agents {
        stations.push(site.station(n, 1, "dock", &[]).await?);
    }
    site.wait_printers(args.agents).await?;
    println!(
        "{} agents up; sending {} labels/s for {} min, a fault every {} s",
        args.agents, args.rate, args.minutes, args.fault_every_secs
    );

    let mut ledger = Ledger::new(args.rate);
    let started = Instant::now();
    let end = started + Duration::from_secs(args.minutes * 60);
    let batch = usize::try_from(args.rate * args.fault_every_secs).unwrap_or(usize::MAX);
    let mut counts = [0usize; 3];
    let mut killed = Vec::new();
    let mut round = 0usize;
    while Instant::now() < end {
        let fault = FAULTS[round % FAULTS.len()];
        let victim = round % args.agents;
        round += 1;
        let round_start = ledger.jobs.len();
        // Half the batch before the fault, the rest while it lasts and after.
        ledger
            .send(&site, round_start..round_start + batch / 2, pool)
            .await?;
        let from = ledger.jobs.len();
        match fault {
            Fault::AgentKill => {
                killed.push(stations[victim].agent.device_id.clone());
                stations[victim].agent.kill().await?;
                let outage = usize::try_from(args.rate * OUTAGE.as_secs()).unwrap_or(0);
                ledger.send(&site, from..from + outage, pool).await?;
                stations[victim].agent.restart().await?;
            }
            Fault::PaperOut => {
                let sim = &stations[victim].printers[0].1;
                sim.set_mode(SimMode::PaperOut);
                let outage = usize::try_from(args.rate * OUTAGE.as_secs()).unwrap_or(0);
                ledger.send(&site, from..from + outage, pool).await?;
                sim.set_mode(SimMode::Normal);
            }
            Fault::CoordinatorKill => {
                site.coordinator.kill().await?;
                site.coordinator.start().await?;
                site.admin = site.coordinator.admin().await?;
            }
        }
        counts[fault as usize] += 1;
        let from = ledger.jobs.len();
        ledger
            .send(&site, from..(round_start + batch).max(from), pool)
            .await?;
        println!(
            "{:>6.0} s  {} labels sent, last fault {fault:?}",
            started.elapsed().as_secs_f64(),
            ledger.jobs.len()
        );
    }
    println!("settling…");
    let printers: Vec<_> = stations.iter().map(|s| &s.printers[0].1).collect();
    let tally = ledger
        .settle(&site, &printers, Duration::from_secs(30))
        .await
        .context("the delivery promise broke")?;
    let stray: Vec<_> = tally
        .in_doubt
        .iter()
        .filter(|(_, agent)| !killed.contains(agent))
        .collect();
    println!();
    println!("| labels sent | printed | in doubt | printed twice | lost | agent kills | paper outs | coordinator kills |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | 0 | 0 | {} | {} | {} |",
        ledger.jobs.len(),
        ledger.jobs.len() - tally.in_doubt.len(),
        tally.in_doubt.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    println!("per printer: {:?}", tally.per_printer);
    for s in &mut stations {
        s.agent.stop().await?;
    }
    anyhow::ensure!(
        stray.is_empty(),
        "jobs in doubt on agents that were never killed: {stray:?}"
    );
    Ok(())
}

fn pool(_: usize) -> serde_json::Value {
    json!({"pool": "dock"})
}
