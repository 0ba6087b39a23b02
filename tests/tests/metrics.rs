//! End-to-end tests of issue 17 item 5 ("watch it") against the real binaries: the
//! coordinator's and an agent's `/metrics` (parsed with a Prometheus text-format parser) count
//! the labels printed; the listeners exist only when asked for; `/readyz` is 503 while the
//! coordinator starts and while it drains, 200 in between; every API request leaves one
//! access-log line with its route template and request id and nothing of the tenant's.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::{Method, StatusCode};
use prometheus_parse::{Scrape, Value as Sample};
use sealprint_testkit::cluster::{terminate, wait_for, CoordinatorProc};
use sealprint_testkit::scenario::{marker, zpl_label, Site};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Labels printed through the agent with its own metrics, and through the other one.
const N: usize = 6;
const M: usize = 2;
const FINAL: Duration = Duration::from_secs(60);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-metrics-")
        .tempdir()
        .expect("a scratch directory")
}

/// A loopback port free a moment ago.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// `GET /metrics` over plain HTTP: the status line and the parsed body.
async fn scrape(addr: SocketAddr) -> anyhow::Result<(String, Scrape)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP answer: {text}"))?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    anyhow::ensure!(status.contains(" 200 "), "scrape answered {status}");
    anyhow::ensure!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "no OpenMetrics content type: {head}"
    );
    // Every line is a comment or a sample the parser takes: nothing is silently skipped.
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        anyhow::ensure!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "not a sample line: {line}"
        );
    }
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))?;
    Ok((status, scrape))
}

/// The value of the sample `name` whose labels include `labels` (a counter, gauge or
/// untyped sample: OpenMetrics counters end `_total`, which the parser leaves untyped).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .find_map(|x| match x.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => Some(v),
            _ => None,
        })
}

/// The total count of the histogram `name` (its `+Inf` bucket).
fn histogram_count(s: &Scrape, name: &str) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find_map(|x| match &x.value {
            Sample::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count),
            _ => None,
        })
}

/// The loopback TCP ports process `pid` listens on (Linux `/proc`: its socket inodes
/// matched against the listening sockets of its network namespace).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st … inode (10th field)
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                if let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

fn port_of(multiaddr: &str) -> Option<u16> {
    multiaddr
        .split("/tcp/")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_labels_printed_and_the_access_log_names_routes() {
    let root = scratch();
    let coord_metrics = free_port();
    let agent_metrics = free_port();
    let site = Site::new_with(
        root.path(),
        &["--metrics-listen".into(), coord_metrics.to_string()],
    )
    .await
    .expect("site");
    let watched = site
        .station(
            1,
            1,
            "watched",
            &["--metrics-listen".into(), agent_metrics.to_string()],
        )
        .await
        .expect("station 1");
    let plain = site.station(2, 1, "plain", &[]).await.expect("station 2");
    site.wait_printers(2).await.expect("printers verified");

    let mark = marker();
    let mut jobs = Vec::new();
    for i in 0..N + M {
        let pool = if i < N { "watched" } else { "plain" };
        jobs.push(
            site.submit(json!({"pool": pool}), &zpl_label(&mark, i))
                .await
                .expect("submit"),
        );
    }
    for id in &jobs {
        let job = site.wait_final(id, FINAL).await.expect("final");
        assert_eq!(job["status"], json!("printed"), "{job}");
    }

    // The coordinator: gauges follow on the mesh's next tick (every second).
    let total = (N + M) as f64;
    let s = wait_for("the coordinator's gauges", FINAL, || async {
        let (_, s) = scrape(coord_metrics).await?;
        let settled = value(&s, "sealprint_agents_online", &[]) == Some(2.0)
            && value(&s, "sealprint_jobs", &[("state", "dispatched")]) == Some(0.0);
        Ok(settled.then_some(s))
    })
    .await
    .expect("coordinator metrics");
    assert_eq!(
        value(&s, "sealprint_labels_printed_total", &[]),
        Some(total)
    );
    assert_eq!(
        value(
            &s,
            "sealprint_job_transitions_total",
            &[("state", "printed")]
        ),
        Some(total)
    );
    assert_eq!(
        value(
            &s,
            "sealprint_job_transitions_total",
            &[("state", "queued")]
        ),
        Some(total)
    );
    assert_eq!(
        histogram_count(&s, "sealprint_end_to_end_latency_seconds"),
        Some(total)
    );
    assert_eq!(
        histogram_count(&s, "sealprint_dispatch_latency_seconds"),
        Some(total)
    );
    assert_eq!(value(&s, "sealprint_queue_depth", &[]), Some(0.0));
    assert_eq!(
        value(&s, "sealprint_printers", &[("verdict", "verified")]),
        Some(2.0)
    );
    assert!(value(&s, "sealprint_mesh_connections", &[]).unwrap_or(0.0) >= 2.0);
    assert!(histogram_count(&s, "sealprint_audit_append_seconds").unwrap_or(0.0) >= total);

    // The watched agent reports its own N writes, over its uplink.
    let (_, a) = scrape(agent_metrics).await.expect("agent metrics");
    assert_eq!(
        value(&a, "sealprint_agent_labels_printed_total", &[]),
        Some(N as f64)
    );
    assert_eq!(
        histogram_count(&a, "sealprint_agent_printer_write_seconds"),
        Some(N as f64)
    );
    assert_eq!(
        value(&a, "sealprint_agent_link", &[("via", "uplink")]),
        Some(1.0)
    );
    assert!(value(&a, "sealprint_agent_heartbeats_acked_total", &[]).unwrap_or(0.0) >= 1.0);

    // The listeners exist where asked for, and only there.
    let coord_pid = site.coordinator.pid().expect("coordinator pid");
    let mesh_port = port_of(&site.coordinator.mesh[0]).expect("mesh port");
    assert_eq!(
        listening_ports(coord_pid),
        BTreeSet::from([site.coordinator.api.port(), mesh_port, coord_metrics.port()])
    );
    let watched_ports = listening_ports(watched.agent.pid().expect("pid"));
    assert!(
        watched_ports.contains(&agent_metrics.port()),
        "{watched_ports:?}"
    );
    let plain_ports = listening_ports(plain.agent.pid().expect("pid"));
    let plain_mesh = port_of(&plain.agent.listen[0]).expect("agent mesh port");
    assert_eq!(plain_ports, BTreeSet::from([plain_mesh]));
    let agent_log = std::fs::read_to_string(&plain.agent.log).expect("agent log");
    assert!(!agent_log.contains("metrics listening"));

    // One access-log line for a request, with its route template and request id.
    let request_id = "metrics-test-request-1";
    let (status, _, _) = site
        .admin
        .call_sending(
            Method::GET,
            &format!("/v1/tenants/{}/labels/{}", site.tenant, jobs[0]),
            None,
            &[("x-request-id", request_id)],
        )
        .await
        .expect("get job");
    assert_eq!(status, StatusCode::OK);
    let log = site.coordinator.log.clone();
    let line = wait_for("the access-log line", Duration::from_secs(10), || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log)?;
            Ok(text
                .lines()
                .find(|l| l.contains("sealprint::access") && l.contains(request_id))
                .map(str::to_owned))
        }
    })
    .await
    .expect("access line");
    for part in [
        "/v1/tenants/{tenant}/labels/{job}",
        "method=GET",
        "status=200",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("sealprint::access"))
        .collect();
    assert_eq!(
        access.iter().filter(|l| l.contains(request_id)).count(),
        1,
        "one line per request"
    );
    for l in &access {
        // The template, never the concrete path (the job's id), nor the label.
        assert!(!l.contains(&jobs[0]), "a concrete path in {l}");
        assert!(!l.contains(&mark), "label content in {l}");
    }
    assert!(access.len() >= N + M, "a line for every submission");
    assert!(
        !text.contains(&mark),
        "label content in the coordinator's log"
    );
    println!(
        "coordinator metrics: {} samples; agent: {} samples; {} access lines",
        s.samples.len(),
        a.samples.len(),
        access.len()
    );
}

/// `GET /readyz` over a fresh connection: its status and body, or `None` when nothing
/// answers.
async fn readyz(c: &sealprint_testkit::api_client::ApiClient) -> Option<(u16, serde_json::Value)> {
    c.call(Method::GET, "/readyz", None)
        .await
        .ok()
        .map(|(s, v)| (s.as_u16(), v))
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_starting_and_draining() {
    let root = scratch();
    let mut coord = CoordinatorProc::start_new(root.path())
        .await
        .expect("coordinator");
    let client = coord.client().expect("client");
    assert_eq!(readyz(&client).await.map(|r| r.0), Some(200));
    assert_eq!(
        client
            .call(Method::GET, "/healthz", None)
            .await
            .expect("healthz")
            .0,
        StatusCode::OK
    );
    // No --metrics-listen: the coordinator listens on the API and the mesh only.
    let mesh_port = port_of(&coord.mesh[0]).expect("mesh port");
    assert_eq!(
        listening_ports(coord.pid().expect("pid")),
        BTreeSet::from([coord.api.port(), mesh_port])
    );
    coord.stop().await.expect("stop");

    // Restart on the same port, polling /readyz from before the process starts.
    let (stop_polling, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let poller = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(u16, String)> = Vec::new();
            loop {
                if stopped.try_recv().is_ok() {
                    return seen;
                }
                if let Some((status, body)) = readyz(&client).await {
                    let what = body["status"].as_str().unwrap_or_default().to_owned();
                    if seen.last() != Some(&(status, what.clone())) {
                        seen.push((status, what));
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    coord.start().await.expect("restart");
    wait_for("ready", FINAL, || async {
        Ok((readyz(&client).await.map(|r| r.0) == Some(200)).then_some(()))
    })
    .await
    .expect("ready");
    let _ = stop_polling.send(());
    let seen = poller.await.expect("poller");
    println!("/readyz while starting: {seen:?}");
    assert_eq!(seen.last().map(|s| s.0), Some(200), "{seen:?}");
    let first_ok = seen.iter().position(|s| s.0 == 200).unwrap_or(0);
    assert!(
        seen[..first_ok]
            .iter()
            .all(|s| s.0 == 503 && s.1 == "starting"),
        "only 503 starting before ready: {seen:?}"
    );
    assert!(
        first_ok > 0,
        "a 503 was seen while the store, CA and mesh came up: {seen:?}"
    );

    // Draining: a request in flight holds the drain; meanwhile /readyz says 503 draining
    // and other routes 503 with a Retry-After.
    let held = client
        .post_partial("/v1/sessions", 100, b"{")
        .await
        .expect("a request in flight");
    let pid = coord.pid().expect("pid");
    terminate(pid);
    let draining = wait_for("503 draining", Duration::from_secs(10), || async {
        Ok(readyz(&client)
            .await
            .filter(|(s, v)| *s == 503 && v["status"] == json!("draining")))
    })
    .await
    .expect("draining seen");
    assert_eq!(draining.1["store"], json!(true), "{}", draining.1);
    let (status, body, headers) = client
        .call_with_headers(Method::GET, "/v1/openapi.json", None)
        .await
        .expect("a route while draining");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    drop(held);
    coord.stop().await.expect("stopped");
    let log = std::fs::read_to_string(&coord.log).expect("log");
    assert!(
        !log.contains("metrics listening"),
        "no metrics listener without the flag"
    );
    assert!(log.contains("stopped"), "the coordinator stopped cleanly");
}
