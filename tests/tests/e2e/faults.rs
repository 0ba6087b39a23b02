//! Delivery under faults: at most once always, exactly once whenever a verified printer of the
//! pool is reachable before the deadline.
//!
//! Each scenario sends a few hundred labels at a steady pace through the real coordinator and
//! agents, injects one fault in the middle, waits until every job has a final state, and
//! then counts what each printer simulator printed: every label at most once, every job
//! `printed` (and on paper exactly once) or `in_doubt` only where the delivery theory allows
//! it, never `failed` or still waiting. Scenarios that need several hosts run agents in
//! network namespaces on a bridge, with faults made by iptables and a delay proxy (this
//! kernel has no `tc netem`).
//!
//! The scenarios run one at a time (a lock): each measures delivery timing under a fault,
//! and two at once on two cores would mostly measure each other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::{wait_for, AgentProc};
use sealprint_testkit::delay_proxy::DelayProxy;
use sealprint_testkit::ledger::Ledger;
use sealprint_testkit::netns::Lan;
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle, SimMode};
use sealprint_testkit::scenario::Site;
use serde_json::{json, Value};

use super::scratch;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The delivery window of every scenario: short, so lost answers settle within the test.
const WINDOW_SECS: &str = "5";
/// How long jobs in doubt get to be settled by receipts where no agent restarted.
const DOUBT_GRACE: Duration = Duration::from_secs(20);
/// Labels per second the scenarios send.
const PACE: u64 = 40;

fn coordinator_flags(extra: &[&str]) -> Vec<String> {
    ["--attempt-window-secs", WINDOW_SECS]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

fn pool(_: usize) -> Value {
    json!({"pool": "dock"})
}

/// Three stations of one printer each in pool `dock`, on loopback.
async fn three_stations(
    site: &Site,
    env: [&[(String, String)]; 3],
) -> anyhow::Result<Vec<sealprint_testkit::scenario::Station>> {
    let mut stations = Vec::new();
    for (n, env) in env.into_iter().enumerate() {
        stations.push(site.station_with_env(n, 1, "dock", &[], env).await?);
    }
    site.wait_printers(3).await?;
    Ok(stations)
}

fn sims(stations: &[sealprint_testkit::scenario::Station]) -> Vec<&SimHandle> {
    stations.iter().map(|s| &s.printers[0].1).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkill_mid_jobs_loses_nothing_and_prints_nothing_twice() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
    let mut stations = three_stations(&site, [&[], &[], &[]]).await?;
    let mut ledger = Ledger::new(PACE);
    ledger.send(&site, 0..100, pool).await?;
    let killed = stations[1].agent.device_id.clone();
    stations[1].agent.kill().await?;
    ledger.send(&site, 100..200, pool).await?;
    stations[1].agent.restart().await?;
    ledger.send(&site, 200..300, pool).await?;
    let tally = ledger
        .settle(&site, &sims(&stations), Duration::ZERO)
        .await?;
    // Only jobs out on the killed agent when it died can be in doubt: at most its printer's
    // in-flight limit.
    assert!(tally.in_doubt.len() <= 8, "{:?}", tally.in_doubt);
    for (job, agent) in &tally.in_doubt {
        assert_eq!(agent, &killed, "job {job} in doubt on a live agent");
    }
    assert!(
        tally.per_printer[1] > 0,
        "the killed station prints again after its restart: {:?}",
        tally.per_printer
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_out_of_paper_sends_its_jobs_elsewhere() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
    let stations = three_stations(&site, [&[], &[], &[]]).await?;
    let printers = sims(&stations);
    let mut ledger = Ledger::new(PACE);
    ledger.send(&site, 0..100, pool).await?;
    printers[0].set_mode(SimMode::PaperOut);
    let before = printers[0].job_count();
    ledger.send(&site, 100..200, pool).await?;
    let during = printers[0].job_count() - before;
    printers[0].set_mode(SimMode::Normal);
    ledger.send(&site, 200..300, pool).await?;
    let tally = ledger.settle(&site, &printers, DOUBT_GRACE).await?;
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    assert!(
        during <= 2,
        "a paper-out printer takes no new labels ({during} printed while out)"
    );
    assert_eq!(tally.per_printer.iter().sum::<usize>(), 300);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_sigkill_and_restart_loses_no_accepted_job() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let mut site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
    let stations = three_stations(&site, [&[], &[], &[]]).await?;
    let mut ledger = Ledger::new(PACE);
    for (i, range) in [0..100, 100..200, 200..300].into_iter().enumerate() {
        ledger.send(&site, range, pool).await?;
        if i < 2 {
            // Jobs are still being dispatched and printed when the process dies.
            site.coordinator.kill().await?;
            site.coordinator.start().await?;
            site.admin = site.coordinator.admin().await?;
        }
    }
    let tally = ledger.settle(&site, &sims(&stations), DOUBT_GRACE).await?;
    // Agents kept running: every answer lost with the coordinator is in their receipts.
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_within_the_clock_skew_print_and_one_beyond_it_gets_nothing() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    anyhow::ensure!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install faketime"
    );
    let faked = |offset: &str| {
        vec![
            ("LD_PRELOAD".to_owned(), LIBFAKETIME.to_owned()),
            ("FAKETIME".to_owned(), offset.to_owned()),
            // Timers and timeouts keep real time; only the wall clock is off.
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
        ]
    };
    let (ahead, behind, far) = (faked("+2s"), faked("-2s"), faked("+6s"));
    let tmp = scratch();
    let site = Site::new_with(
        tmp.path(),
        &coordinator_flags(&["--allowed-clock-skew-ms", "2500"]),
    )
    .await?;
    let stations = three_stations(&site, [&ahead[..], &behind[..], &far[..]]).await?;
    let agents_path = format!("/v1/tenants/{}/agents", site.tenant);
    let expected: HashMap<String, i64> = stations
        .iter()
        .zip([2_000, -2_000, 6_000])
        .map(|(s, off)| (s.agent.device_id.clone(), off))
        .collect();
    wait_for(
        "every agent's clock offset measured",
        Duration::from_secs(20),
        || async {
            let list = site.admin.get(&agents_path).await?;
            let ok = list.as_array().into_iter().flatten().all(|a| {
                let want = expected.get(a["id"].as_str().unwrap_or_default());
                let got = a["clock_offset_ms"].as_i64();
                matches!((want, got), (Some(w), Some(g)) if (g - w).abs() < 500)
            });
            Ok(ok.then_some(()))
        },
    )
    .await?;
    let mut ledger = Ledger::new(PACE);
    ledger.send(&site, 0..240, pool).await?;
    let tally = ledger.settle(&site, &sims(&stations), DOUBT_GRACE).await?;
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    assert_eq!(
        tally.per_printer[2], 0,
        "the agent 6 s off gets no jobs: {:?}",
        tally.per_printer
    );
    assert!(
        tally.per_printer[0] > 0 && tally.per_printer[1] > 0,
        "agents 2 s off print: {:?}",
        tally.per_printer
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_beyond_the_queue_bound_get_429_with_retry_after() -> anyhow::Result<()> {
    let tmp = scratch();
    let site = Site::new_with(tmp.path(), &coordinator_flags(&["--max-queued-jobs", "20"])).await?;
    // The pool's only station goes away: every label waits.
    let mut station = site.station(0, 1, "dock", &[]).await?;
    site.wait_printers(1).await?;
    station.agent.stop().await?;
    let mut ledger = Ledger::new(PACE);
    ledger.send(&site, 0..20, pool).await?;
    let path = format!("/v1/tenants/{}/labels", site.tenant);
    let body = json!({
        "pool": "dock",
        "format": "zpl",
        "content_base64": "XlhBXlha",
    });
    let (status, answer, retry_after) = site
        .admin
        .call_with_headers(Method::POST, &path, Some(body))
        .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["code"], "busy");
    assert_eq!(
        retry_after.get("retry-after").map(String::as_str),
        Some("5")
    );
    Ok(())
}

// ---- several hosts ------------------------------------------------------------------------

/// A site whose stations are hosts on a bridge: the coordinator and the printers on the
/// bridge's own address, one agent with one printer in each namespace, finding each other by
/// mDNS alone.
struct LanSite {
    site: Site,
    agents: Vec<AgentProc>,
    sims: Vec<SimHandle>,
    /// The coordinator's own mesh address.
    mesh: SocketAddr,
    lan: Lan,
    _proxy: Option<DelayProxy>,
}

impl LanSite {
    /// `hosts` stations; `delay` puts a proxy holding every byte that long each way between
    /// the agents and the coordinator.
    async fn new(
        root: &std::path::Path,
        hosts: usize,
        delay: Option<Duration>,
    ) -> anyhow::Result<LanSite> {
        let lan = Lan::new(hosts)?;
        let gw = lan.gateway.clone();
        let mesh_port = {
            let probe = std::net::TcpListener::bind((gw.as_str(), 0))?;
            probe.local_addr()?.port()
        };
        let mesh: SocketAddr = format!("{gw}:{mesh_port}").parse()?;
        let mut flags = coordinator_flags(&[]);
        flags.extend([
            "--mesh-listen".to_owned(),
            format!("/ip4/{gw}/tcp/{mesh_port}"),
        ]);
        let proxy = match delay {
            Some(d) => Some(DelayProxy::start(format!("{gw}:0").parse()?, mesh, d).await?),
            None => None,
        };
        // Agents dial what enrollment tokens advertise: the proxy when there is one.
        let dialled = proxy.as_ref().map_or(mesh_port, |p| p.addr().port());
        flags.extend([
            "--mesh-advertise".to_owned(),
            format!("/ip4/{gw}/tcp/{dialled}"),
        ]);
        let site = Site::new_with(root, &flags).await?;
        let mut agents = Vec::new();
        let mut sims = Vec::new();
        for h in 0..hosts {
            let sim = printer_sim::start(
                tokio::net::TcpListener::bind((gw.as_str(), 0)).await?,
                SimConfig {
                    serial: format!("LAN{h}"),
                    model: "ZD421".into(),
                    mode: SimMode::Normal,
                },
                None,
            )
            .await;
            let dir = root.join(format!("host-{h}"));
            AgentProc::enroll(&dir, &site.token().await?).await?;
            let args = vec![
                "--printer".to_owned(),
                format!("zebra=raw://{}", sim.addr()),
            ];
            let log = root.join(format!("host-{h}.log"));
            agents.push(AgentProc::start_in_netns(&lan.hosts[h], &dir, &log, &args).await?);
            sims.push(sim);
        }
        site.wait_printers(hosts).await?;
        Ok(LanSite {
            site,
            agents,
            sims,
            mesh,
            lan,
            _proxy: proxy,
        })
    }

    fn printer(&self, h: usize) -> String {
        format!("{}.zebra", self.agents[h].device_id)
    }

    /// Cuts (or heals) host `h`'s link to the coordinator; the LAN stays up.
    fn cut_uplink(&self, h: usize, cut: bool) -> anyhow::Result<()> {
        self.lan
            .set_service_cut(h, &self.mesh.ip().to_string(), self.mesh.port(), cut)
    }

    /// Waits until the coordinator hears host `h` through host `via` (`None`: directly).
    async fn wait_route(&self, h: usize, via: Option<usize>) -> anyhow::Result<()> {
        let path = format!("/v1/tenants/{}/agents", self.site.tenant);
        let id = self.agents[h].device_id.clone();
        let relay = via
            .map(|v| json!(self.agents[v].device_id))
            .unwrap_or(Value::Null);
        wait_for("the agent's route", Duration::from_secs(40), || async {
            let list = self.site.admin.get(&path).await?;
            let ok =
                list.as_array().into_iter().flatten().any(|a| {
                    a["id"] == json!(id) && a["online"] == json!(true) && a["relay"] == relay
                });
            Ok(ok.then_some(()))
        })
        .await
    }

    fn sims(&self) -> Vec<&SimHandle> {
        self.sims.iter().collect()
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        for a in &mut self.agents {
            a.stop().await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_whose_uplink_is_cut_prints_through_a_peer_found_by_mdns() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let ls = LanSite::new(tmp.path(), 2, None).await?;
    let printers = [ls.printer(0), ls.printer(1)];
    let target = |n: usize| json!({"printer": printers[n % 2]});
    let mut ledger = Ledger::new(PACE);
    ledger.send(&ls.site, 0..80, target).await?;
    ls.cut_uplink(1, true)?;
    ledger.send(&ls.site, 80..160, target).await?;
    // No static peers were given: host 1 found host 0 by mDNS, and now speaks through it.
    ls.wait_route(1, Some(0)).await?;
    ls.cut_uplink(1, false)?;
    ledger.send(&ls.site, 160..240, target).await?;
    ls.wait_route(1, None).await?;
    let tally = ledger.settle(&ls.site, &ls.sims(), DOUBT_GRACE).await?;
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    assert_eq!(
        tally.per_printer,
        [120, 120],
        "each label on the printer it named"
    );
    ls.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_cut_off_from_the_coordinator_catches_up_when_healed() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let ls = LanSite::new(tmp.path(), 2, None).await?;
    let mut ledger = Ledger::new(PACE);
    let any = |_: usize| json!({"pool": "default"});
    ledger.send(&ls.site, 0..100, any).await?;
    for h in 0..2 {
        ls.cut_uplink(h, true)?;
    }
    // Labels keep coming for ten seconds while the site is unreachable.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 100;
    while n < 200 {
        tick.tick().await;
        ledger.send(&ls.site, n..n + 1, any).await?;
        n += 1;
    }
    for h in 0..2 {
        ls.cut_uplink(h, false)?;
    }
    ledger.send(&ls.site, 200..300, any).await?;
    let tally = ledger.settle(&ls.site, &ls.sims(), DOUBT_GRACE).await?;
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    ls.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_percent_loss_and_200_ms_delay_lose_nothing() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let tmp = scratch();
    let ls = LanSite::new(tmp.path(), 2, Some(Duration::from_millis(200))).await?;
    for h in 0..2 {
        ls.lan.set_random_loss(h, 0.01)?;
    }
    let mut ledger = Ledger::new(PACE);
    ledger
        .send(&ls.site, 0..240, |_| json!({"pool": "default"}))
        .await?;
    let tally = ledger.settle(&ls.site, &ls.sims(), DOUBT_GRACE).await?;
    assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
    assert_eq!(tally.per_printer.iter().sum::<usize>(), 240);
    ls.stop().await
}
