//! The agent's own Prometheus metrics, served on `run --metrics-listen IP:PORT` (off by
//! default) over plain HTTP: `GET /metrics` in the text format, 404 to anything else. No
//! authentication and no PII (counts, durations and link states only): bind it to loopback or
//! a private interface.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `sealprint_agent_printer_write_seconds` | histogram | one label written to its printer, whatever the outcome |
//! | `sealprint_agent_labels_printed_total` | counter | labels printed |
//! | `sealprint_agent_print_failures_total{outcome}` | counter | `not_printed` or `in_doubt` |
//! | `sealprint_agent_link{via}` | gauge | 1 for how the last heartbeat went: `uplink`, `relay` or `none` |
//! | `sealprint_agent_heartbeats_sent_total{via}` | counter | heartbeats sent (`none`: skipped, no way out) |
//! | `sealprint_agent_heartbeats_acked_total` | counter | heartbeat replies verified and applied |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How a heartbeat leaves the station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Over its own connection to the coordinator.
    Uplink,
    /// Through a site peer.
    Relay,
    /// Neither: the heartbeat was skipped.
    None,
}

impl Link {
    const ALL: [Link; 3] = [Link::Uplink, Link::Relay, Link::None];

    fn as_str(self) -> &'static str {
        match self {
            Link::Uplink => "uplink",
            Link::Relay => "relay",
            Link::None => "none",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViaLabel {
    via: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The agent's metric families (see the module doc).
pub struct Metrics {
    registry: Registry,
    write: Histogram,
    printed: Counter,
    failures: Family<OutcomeLabel, Counter>,
    link: Family<ViaLabel, Gauge>,
    heartbeats: Family<ViaLabel, Counter>,
    acked: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            // 1 ms to about 33 s.
            write: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            printed: Counter::default(),
            failures: Family::default(),
            link: Family::default(),
            heartbeats: Family::default(),
            acked: Counter::default(),
        };
        let mut r = Registry::default();
        r.register(
            "sealprint_agent_printer_write_seconds",
            "One label written to its printer, whatever the outcome",
            m.write.clone(),
        );
        r.register(
            "sealprint_agent_labels_printed",
            "Labels printed",
            m.printed.clone(),
        );
        r.register(
            "sealprint_agent_print_failures",
            "Labels not printed (not_printed) or of unknown fate (in_doubt)",
            m.failures.clone(),
        );
        r.register(
            "sealprint_agent_link",
            "1 for how the last heartbeat left: uplink, relay or none",
            m.link.clone(),
        );
        r.register(
            "sealprint_agent_heartbeats_sent",
            "Heartbeats sent by way of the uplink or a relay (none: skipped)",
            m.heartbeats.clone(),
        );
        r.register(
            "sealprint_agent_heartbeats_acked",
            "Heartbeat replies verified and applied",
            m.acked.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// A label took `took` to write; `failure` is `None` when printed, else `not_printed` or
    /// `in_doubt`.
    pub fn written(&self, took: Duration, failure: Option<&'static str>) {
        self.write.observe(took.as_secs_f64());
        match failure {
            None => {
                self.printed.inc();
            }
            Some(outcome) => {
                self.failures.get_or_create(&OutcomeLabel { outcome }).inc();
            }
        }
    }

    /// A heartbeat left by `via` (or was skipped: [`Link::None`]).
    pub fn heartbeat(&self, via: Link) {
        self.heartbeats
            .get_or_create(&ViaLabel { via: via.as_str() })
            .inc();
        for l in Link::ALL {
            self.link
                .get_or_create(&ViaLabel { via: l.as_str() })
                .set(i64::from(l == via));
        }
    }

    /// A heartbeat reply was verified and applied.
    pub fn acked(&self) {
        self.acked.inc();
    }

    /// Every family in the text format (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// `GET /metrics`: the text format; anything else 404.
fn answer(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from(get().encode())));
    // Prometheus 3 refuses a scrape without a content type it knows.
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}

/// Binds `addr` and serves `/metrics` until `shutdown`; the bound address is returned at once.
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn listen(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "metrics listening");
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        debug!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(
                        |req| async move { Ok::<_, Infallible>(answer(&req)) },
                    );
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_links_show_in_the_text_format() {
        let m = Metrics::new();
        m.written(Duration::from_millis(20), None);
        m.written(Duration::from_millis(5), Some("in_doubt"));
        m.heartbeat(Link::Relay);
        m.acked();
        let text = m.encode();
        for line in [
            "sealprint_agent_labels_printed_total 1",
            "sealprint_agent_printer_write_seconds_count 2",
            "sealprint_agent_print_failures_total{outcome=\"in_doubt\"} 1",
            "sealprint_agent_link{via=\"relay\"} 1",
            "sealprint_agent_link{via=\"uplink\"} 0",
            "sealprint_agent_heartbeats_sent_total{via=\"relay\"} 1",
            "sealprint_agent_heartbeats_acked_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
