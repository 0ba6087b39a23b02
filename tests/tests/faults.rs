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
//! Each scenario also proves its fault took effect (jobs in flight at a kill, a printer that
//! took nothing new while out of paper, agents offline during a cut, packets dropped, traffic
//! through the delay proxy) and that it recovered; it counts what the printers got only
//! once the agents are stopped and the simulators quiet, every label of every connection.
//!
//! Its own test binary (cargo runs test binaries one after another), so nothing else of the
//! suite runs beside it, and the scenarios run one at a time (a lock): each measures delivery
//! timing under a fault, and two at once on two cores would mostly measure each other. Each
//! has one overall deadline. Network namespaces, veths and firewall rules a killed run left
//! are swept before the first one is made (`netns::sweep_stale`).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::{wait_for, AgentProc};
use sealprint_testkit::delay_proxy::DelayProxy;
use sealprint_testkit::ledger::{Ledger, Tally};
use sealprint_testkit::netns::Lan;
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle, SimMode};
use sealprint_testkit::scenario::Site;
use serde_json::{json, Value};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole of one scenario, from the first process started to the last count.
const DEADLINE: Duration = Duration::from_secs(360);
/// The coordinator's in-flight limit per printer (`max_in_flight_per_printer`).
const IN_FLIGHT_LIMIT: usize = 8;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-faults-")
        .tempdir()
        .expect("a scratch directory")
}

/// Runs one scenario alone (the lock) under the overall [`DEADLINE`], once the binaries are
/// built.
async fn scenario<F>(name: &str, body: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let _one = ONE_AT_A_TIME.lock().await;
    // Building the binaries under test (first scenario of the run) is not the scenario's time.
    tokio::task::spawn_blocking(sealprint_testkit::cluster::binaries).await??;
    tokio::time::timeout(DEADLINE, body)
        .await
        .map_err(|_| anyhow::anyhow!("{name}: not done within {DEADLINE:?}"))?
}

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

/// Waits until every job is final, stops every agent, and counts once the printers are quiet.
async fn settle_and_stop(
    ledger: &Ledger,
    site: &Site,
    stations: &mut [sealprint_testkit::scenario::Station],
    doubt_grace: Duration,
) -> anyhow::Result<Tally> {
    let finals = ledger.wait_final(site, doubt_grace).await?;
    for s in stations.iter_mut() {
        s.agent.stop().await?;
    }
    ledger.count(&finals, &sims(stations)).await
}

/// Waits until the coordinator lists printer `id` with `status`.
async fn wait_printer_status(site: &Site, id: &str, status: &str) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{}/printers", site.tenant);
    wait_for(
        &format!("printer {id} {status}"),
        Duration::from_secs(30),
        || async {
            let list = site.admin.get(&path).await?;
            let ok = list
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["id"] == json!(id) && p["status"] == json!(status));
            Ok(ok.then_some(()))
        },
    )
    .await
}

/// Waits until at least one job is held, fully received and unanswered, by one of `printers`.
async fn wait_stalled(printers: &[&SimHandle]) -> anyhow::Result<usize> {
    wait_for(
        "a job in flight at a printer",
        Duration::from_secs(20),
        || async {
            let n: usize = printers.iter().map(|p| p.activity().stalled).sum();
            Ok((n > 0).then_some(n))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkill_mid_jobs_loses_nothing_and_prints_nothing_twice() -> anyhow::Result<()> {
    scenario("agent sigkill", async {
        let tmp = scratch();
        let site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
        let mut stations = three_stations(&site, [&[], &[], &[]]).await?;
        let killed = stations[1].agent.device_id.clone();
        let killed_printer = format!("{killed}.{}", stations[1].printers[0].0);
        let mut ledger = Ledger::new(PACE);
        ledger.send(&site, 0..100, pool).await?;
        // The station about to die holds its jobs at the printer, received and unanswered:
        // they are provably in flight when the agent is killed.
        stations[1].printers[0].1.set_stall(true);
        ledger.send(&site, 100..130, pool).await?;
        let in_flight = wait_stalled(&[&stations[1].printers[0].1]).await?;
        stations[1].agent.kill().await?;
        // The printer got those labels whole: they print (the in-doubt case).
        stations[1].printers[0].1.set_stall(false);
        ledger.send(&site, 130..200, pool).await?;
        stations[1].agent.restart().await?;
        // After the restart, every tenth label names the killed station's printer: they can
        // only be printed there, so the restarted agent must print again.
        let target = |n: usize| {
            if n.is_multiple_of(10) {
                json!({"printer": killed_printer})
            } else {
                pool(n)
            }
        };
        ledger.send(&site, 200..300, target).await?;
        let tally = settle_and_stop(&ledger, &site, &mut stations, Duration::ZERO).await?;
        assert!(in_flight >= 1);
        // Only jobs out on the killed agent when it died can be in doubt: at most its
        // printer's in-flight limit.
        assert!(
            tally.in_doubt.len() <= IN_FLIGHT_LIMIT,
            "{:?}",
            tally.in_doubt
        );
        for (job, agent) in &tally.in_doubt {
            assert_eq!(agent, &killed, "job {job} in doubt on a live agent");
        }
        // Labels that named the killed station's printer can only print there.
        let mut after_restart: Vec<usize> = tally.labels_by_printer[1]
            .iter()
            .copied()
            .filter(|&n| n >= 200 && n.is_multiple_of(10))
            .collect();
        after_restart.sort_unstable();
        assert_eq!(
            after_restart,
            (200..300).step_by(10).collect::<Vec<_>>(),
            "the restarted station prints again: {:?}",
            tally.labels_by_printer[1]
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_out_of_paper_sends_its_jobs_elsewhere() -> anyhow::Result<()> {
    scenario("paper out", async {
        let tmp = scratch();
        let site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
        let mut stations = three_stations(&site, [&[], &[], &[]]).await?;
        let out_id = format!(
            "{}.{}",
            stations[0].agent.device_id, stations[0].printers[0].0
        );
        let mut ledger = Ledger::new(PACE);
        ledger.send(&site, 0..100, pool).await?;
        let out = &stations[0].printers[0].1;
        out.set_mode(SimMode::PaperOut);
        let before = out.activity();
        ledger.send(&site, 100..200, pool).await?;
        // The fault took effect: the coordinator saw it.
        wait_printer_status(&site, &out_id, "paper_out").await?;
        let during = out.activity();
        out.set_mode(SimMode::Normal);
        wait_printer_status(&site, &out_id, "ready").await?;
        ledger.send(&site, 200..300, pool).await?;
        let tally = settle_and_stop(&ledger, &site, &mut stations, DOUBT_GRACE).await?;
        assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
        // Every job that arrived while out of paper counts, printed later or not.
        let received_out = during.received_unready - before.received_unready;
        assert!(
            received_out <= IN_FLIGHT_LIMIT,
            "a paper-out printer takes no new labels beyond those in flight \
             ({received_out} received while out)"
        );
        assert!(
            during.received - before.received <= IN_FLIGHT_LIMIT,
            "{before:?} -> {during:?}"
        );
        assert_eq!(tally.per_printer.iter().sum::<usize>(), 300);
        assert!(
            tally.labels_by_printer[0].iter().any(|&n| n >= 200),
            "the printer prints again once it has paper: {:?}",
            tally.labels_by_printer[0]
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_sigkill_and_restart_loses_no_accepted_job() -> anyhow::Result<()> {
    scenario("coordinator sigkill", async {
        let tmp = scratch();
        let mut site = Site::new_with(tmp.path(), &coordinator_flags(&[])).await?;
        let mut stations = three_stations(&site, [&[], &[], &[]]).await?;
        let mut ledger = Ledger::new(PACE);
        let mut in_flight = Vec::new();
        for (i, range) in [0..100, 100..200, 200..300].into_iter().enumerate() {
            if i < 2 {
                // Printers hold what they receive: jobs are provably out when the process dies.
                for p in sims(&stations) {
                    p.set_stall(true);
                }
            }
            ledger.send(&site, range, pool).await?;
            if i < 2 {
                in_flight.push(wait_stalled(&sims(&stations)).await?);
                site.coordinator.kill().await?;
                for p in sims(&stations) {
                    p.set_stall(false);
                }
                site.coordinator.start().await?;
                site.admin = site.coordinator.admin().await?;
            }
        }
        let tally = settle_and_stop(&ledger, &site, &mut stations, DOUBT_GRACE).await?;
        assert!(in_flight.iter().all(|&n| n >= 1), "{in_flight:?}");
        // Agents kept running: every answer lost with the coordinator is in their receipts.
        assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
        assert_eq!(tally.per_printer.iter().sum::<usize>(), 300);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_within_the_clock_skew_print_and_one_beyond_it_gets_nothing() -> anyhow::Result<()> {
    scenario("clock skew", async {
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
        let mut stations = three_stations(&site, [&ahead[..], &behind[..], &far[..]]).await?;
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
                let rows = list.as_array().cloned().unwrap_or_default();
                // Every expected agent listed, each with its offset: not `all` of nothing.
                let measured = expected.iter().all(|(id, want)| {
                    rows.iter().any(|a| {
                        a["id"] == json!(id)
                            && a["clock_offset_ms"]
                                .as_i64()
                                .is_some_and(|got| (got - want).abs() < 500)
                    })
                });
                Ok((rows.len() == expected.len() && measured).then_some(()))
            },
        )
        .await?;
        let mut ledger = Ledger::new(PACE);
        ledger.send(&site, 0..240, pool).await?;
        let tally = settle_and_stop(&ledger, &site, &mut stations, DOUBT_GRACE).await?;
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
        assert_eq!(tally.per_printer.iter().sum::<usize>(), 240);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_beyond_the_queue_bound_get_429_with_retry_after() -> anyhow::Result<()> {
    scenario("queue bound", async {
        let tmp = scratch();
        let site =
            Site::new_with(tmp.path(), &coordinator_flags(&["--max-queued-jobs", "20"])).await?;
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
    })
    .await
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
    proxy: Option<DelayProxy>,
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
        let last_start = tokio::time::Instant::now();
        site.wait_printers(hosts).await?;
        // A lost answer is reassigned only when the agent provably ran at the send (its boot,
        // known to the second from its uptime, plus the allowed 2 s skew, before it); a job
        // lost earlier ends in doubt by design. The faults below come after that point, however
        // fast this machine reaches them.
        tokio::time::sleep_until(last_start + Duration::from_secs(5)).await;
        Ok(LanSite {
            site,
            agents,
            sims,
            mesh,
            lan,
            proxy,
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

    /// Whether the coordinator lists every agent of `hosts` with `online`.
    async fn all_online(&self, hosts: &[usize], online: bool) -> anyhow::Result<bool> {
        let path = format!("/v1/tenants/{}/agents", self.site.tenant);
        let list = self.site.admin.get(&path).await?;
        let rows = list.as_array().cloned().unwrap_or_default();
        Ok(hosts.iter().all(|&h| {
            rows.iter()
                .any(|a| a["id"] == json!(self.agents[h].device_id) && a["online"] == json!(online))
        }))
    }

    /// Waits until every job is final, stops the agents, and counts once the printers are
    /// quiet.
    async fn settle_and_stop(
        &mut self,
        ledger: &Ledger,
        doubt_grace: Duration,
    ) -> anyhow::Result<Tally> {
        let finals = ledger.wait_final(&self.site, doubt_grace).await?;
        for a in &mut self.agents {
            a.stop().await?;
        }
        ledger.count(&finals, &self.sims()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_whose_uplink_is_cut_prints_through_a_peer_found_by_mdns() -> anyhow::Result<()> {
    scenario("uplink cut", async {
        let tmp = scratch();
        let mut ls = LanSite::new(tmp.path(), 2, None).await?;
        let printers = [ls.printer(0), ls.printer(1)];
        let target = |n: usize| json!({"printer": printers[n % 2]});
        let mut ledger = Ledger::new(PACE);
        ledger.send(&ls.site, 0..80, target).await?;
        let dropped_before = ls.lan.dropped_packets(1)?;
        ls.cut_uplink(1, true)?;
        ledger.send(&ls.site, 80..160, target).await?;
        // No static peers were given: host 1 found host 0 by mDNS, and now speaks through it.
        ls.wait_route(1, Some(0)).await?;
        // The cut took effect: host 1's packets to and from the coordinator were dropped.
        let dropped = ls.lan.dropped_packets(1)? - dropped_before;
        ls.cut_uplink(1, false)?;
        ledger.send(&ls.site, 160..240, target).await?;
        ls.wait_route(1, None).await?;
        let tally = ls.settle_and_stop(&ledger, DOUBT_GRACE).await?;
        assert!(dropped > 0, "the cut dropped no packet");
        assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
        assert_eq!(
            tally.per_printer,
            [120, 120],
            "each label on the printer it named"
        );
        for (h, labels) in tally.labels_by_printer.iter().enumerate() {
            assert!(labels.iter().all(|n| n % 2 == h), "printer {h}: {labels:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_cut_off_from_the_coordinator_catches_up_when_healed() -> anyhow::Result<()> {
    scenario("site cut", async {
        let tmp = scratch();
        let mut ls = LanSite::new(tmp.path(), 2, None).await?;
        let mut ledger = Ledger::new(PACE);
        let any = |_: usize| json!({"pool": "default"});
        ledger.send(&ls.site, 0..100, any).await?;
        anyhow::ensure!(ls.all_online(&[0, 1], true).await?, "agents online before");
        for h in 0..2 {
            ls.cut_uplink(h, true)?;
        }
        // Labels keep coming, one every 100 ms, while the site is unreachable: at least 100
        // of them, and until the coordinator has seen both agents go offline.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 100;
        let mut offline_at = None;
        let cut_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while n < 200 || offline_at.is_none() {
            anyhow::ensure!(
                tokio::time::Instant::now() < cut_deadline,
                "agents never reported offline during the cut"
            );
            tick.tick().await;
            ledger.send(&ls.site, n..n + 1, any).await?;
            n += 1;
            if offline_at.is_none() && ls.all_online(&[0, 1], false).await? {
                // What was in flight when the link went has landed by now.
                offline_at = Some(ls.sims.iter().map(|s| s.activity().received).sum::<usize>());
            }
        }
        let received_at_offline = offline_at.unwrap_or_default();
        let received_at_heal: usize = ls.sims.iter().map(|s| s.activity().received).sum();
        let dropped: u64 = (0..2)
            .map(|h| ls.lan.dropped_packets(h))
            .sum::<anyhow::Result<u64>>()?;
        for h in 0..2 {
            ls.cut_uplink(h, false)?;
        }
        let sent_during_cut = n - 100;
        ledger.send(&ls.site, n..n + 100, any).await?;
        let tally = ls.settle_and_stop(&ledger, DOUBT_GRACE).await?;
        assert!(dropped > 0, "the cut dropped no packet");
        assert_eq!(
            received_at_heal, received_at_offline,
            "nothing printed while the site was offline"
        );
        assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
        assert_eq!(tally.per_printer.iter().sum::<usize>(), n + 100);
        assert!(sent_during_cut >= 100);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_percent_loss_and_200_ms_delay_lose_nothing() -> anyhow::Result<()> {
    scenario("loss and delay", async {
        let tmp = scratch();
        let mut ls = LanSite::new(tmp.path(), 2, Some(Duration::from_millis(200))).await?;
        for h in 0..2 {
            ls.lan.set_random_loss(h, 0.01)?;
        }
        let mut ledger = Ledger::new(PACE);
        ledger
            .send(&ls.site, 0..240, |_| json!({"pool": "default"}))
            .await?;
        let dropped: u64 = (0..2)
            .map(|h| ls.lan.dropped_packets(h))
            .sum::<anyhow::Result<u64>>()?;
        let (connections, bytes) = ls
            .proxy
            .as_ref()
            .map(DelayProxy::traffic)
            .unwrap_or_default();
        let tally = ls.settle_and_stop(&ledger, DOUBT_GRACE).await?;
        assert!(dropped > 0, "1 % loss dropped no packet");
        // Every uplink goes through the proxy: labels for 240 jobs crossed it.
        assert!(
            connections >= 2,
            "{connections} connections through the proxy"
        );
        assert!(bytes > 240 * 100, "{bytes} bytes through the proxy");
        assert!(tally.in_doubt.is_empty(), "{:?}", tally.in_doubt);
        assert_eq!(tally.per_printer.iter().sum::<usize>(), 240);
        Ok(())
    })
    .await
}
