//! The coordinator's Prometheus metrics: one registry of metric families per process
//! ([`get`]), recorded with one call at the place where the state changes, and encoded in the
//! text format ([`Metrics::encode`]) by the `/metrics` listener (`--metrics-listen`, see
//! the app layer's `metrics` module).
//!
//! It lives at the bottom layer so that every layer that records (the store, the services)
//! can reach it; it does no I/O. Recording is a few atomic operations (a label set is looked
//! up in a read-locked map), whether or not anything scrapes.
//!
//! Labels carry ids of kinds and states only (job states, printer verdicts, SP-API operation
//! names and HTTP statuses, delivery outcomes): never a tenant, a job id, a name or an address.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `sealprint_job_transitions_total{state}` | counter | jobs entering `state` (queued on creation) |
//! | `sealprint_jobs{state}` | gauge | jobs queued, dispatched, in doubt now (each mesh tick) |
//! | `sealprint_queue_depth` | gauge | jobs waiting for a printer |
//! | `sealprint_dispatch_latency_seconds` | histogram | queued (accepted, or queued again) to sent to an agent |
//! | `sealprint_end_to_end_latency_seconds` | histogram | accepted to printed |
//! | `sealprint_labels_printed_total` | counter | labels printed (labels/s: `rate()` of it) |
//! | `sealprint_agents_online` | gauge | agents heard from within three heartbeat periods |
//! | `sealprint_printers{verdict}` | gauge | printers of online agents by verification verdict |
//! | `sealprint_mesh_connections` | gauge | open mesh connections |
//! | `sealprint_spapi_calls_total{operation,status}` | counter | SP-API requests by answer (`error`: none) |
//! | `sealprint_webhook_deliveries_total{outcome}` | counter | webhook attempts: `delivered`; failures: `pending` (tried again later), `failed` (for good, or no webhook left) |
//! | `sealprint_audit_append_seconds` | histogram | time to append one audit entry |

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A job state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `queued`, `dispatched`, `printed`, `failed`, `in_doubt`.
    pub state: &'static str,
}

/// A printer's verification verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `verified`, `refused`, `unreachable`.
    pub verdict: &'static str,
}

/// One SP-API request's operation and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The operation's name (`getShipment`, …).
    pub operation: &'static str,
    /// The HTTP status, or `error` when no answer came.
    pub status: String,
}

/// How a webhook delivery attempt ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `delivered`; failures: `pending` (tried again later), `failed` (given up).
    pub outcome: &'static str,
}

/// What the mesh event loop sees on each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeshView {
    /// Jobs waiting for a printer.
    pub queued: usize,
    /// Attempts out on agents.
    pub dispatched: usize,
    /// Jobs in doubt that receipts may still settle.
    pub in_doubt: usize,
    /// Agents heard from within three heartbeat periods.
    pub agents_online: usize,
    /// Open mesh connections.
    pub connections: usize,
    /// Printers of online agents: verified, refused, unreachable.
    pub printers: [usize; 3],
}

/// The metric families of the coordinator (see the module doc for each).
pub struct Metrics {
    registry: Registry,
    job_transitions: Family<StateLabel, Counter>,
    jobs: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    dispatch_latency: Histogram,
    end_to_end_latency: Histogram,
    labels_printed: Counter,
    agents_online: Gauge,
    printers: Family<VerdictLabel, Gauge>,
    mesh_connections: Gauge,
    spapi_calls: Family<CallLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
    audit_append: Histogram,
}

/// Seconds, from 1 ms to about 9 hours (doubling).
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            job_transitions: Family::default(),
            jobs: Family::default(),
            queue_depth: Gauge::default(),
            dispatch_latency: latency_buckets(),
            end_to_end_latency: latency_buckets(),
            labels_printed: Counter::default(),
            agents_online: Gauge::default(),
            printers: Family::default(),
            mesh_connections: Gauge::default(),
            spapi_calls: Family::default(),
            webhook_deliveries: Family::default(),
            // 10 µs to about 0.3 s.
            audit_append: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
        };
        let mut r = Registry::default();
        r.register(
            "sealprint_job_transitions",
            "Jobs entering a state (queued on creation)",
            m.job_transitions.clone(),
        );
        r.register(
            "sealprint_jobs",
            "Jobs queued, dispatched or in doubt now",
            m.jobs.clone(),
        );
        r.register(
            "sealprint_queue_depth",
            "Jobs waiting for a printer",
            m.queue_depth.clone(),
        );
        r.register(
            "sealprint_dispatch_latency_seconds",
            "From queued (accepted or queued again) to sent to an agent",
            m.dispatch_latency.clone(),
        );
        r.register(
            "sealprint_end_to_end_latency_seconds",
            "From accepted to printed",
            m.end_to_end_latency.clone(),
        );
        r.register(
            "sealprint_labels_printed",
            "Labels printed",
            m.labels_printed.clone(),
        );
        r.register(
            "sealprint_agents_online",
            "Agents heard from within three heartbeat periods",
            m.agents_online.clone(),
        );
        r.register(
            "sealprint_printers",
            "Printers of online agents by verification verdict",
            m.printers.clone(),
        );
        r.register(
            "sealprint_mesh_connections",
            "Open mesh connections",
            m.mesh_connections.clone(),
        );
        r.register(
            "sealprint_spapi_calls",
            "SP-API requests by operation and HTTP status (error: no answer)",
            m.spapi_calls.clone(),
        );
        r.register(
            "sealprint_webhook_deliveries",
            "Webhook delivery attempts by outcome (pending and failed are failures)",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "sealprint_audit_append_seconds",
            "Time to append one audit entry",
            m.audit_append.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// A job entered `state` (created, or its record rewritten with a new state).
    pub fn job_entered(&self, state: &'static str) {
        self.job_transitions
            .get_or_create(&StateLabel { state })
            .inc();
    }

    /// A job queued since `queued_ms` was sent to an agent at `now_ms`.
    pub fn dispatched(&self, queued_ms: u64, now_ms: u64) {
        self.dispatch_latency.observe(seconds(queued_ms, now_ms));
    }

    /// A job accepted at `created_ms` was printed at `now_ms`.
    pub fn printed(&self, created_ms: u64, now_ms: u64) {
        self.labels_printed.inc();
        self.end_to_end_latency.observe(seconds(created_ms, now_ms));
    }

    /// The mesh's view on a tick.
    pub fn mesh(&self, v: &MeshView) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, n) in [
            ("queued", v.queued),
            ("dispatched", v.dispatched),
            ("in_doubt", v.in_doubt),
        ] {
            self.jobs.get_or_create(&StateLabel { state }).set(g(n));
        }
        self.queue_depth.set(g(v.queued));
        self.agents_online.set(g(v.agents_online));
        self.mesh_connections.set(g(v.connections));
        for (verdict, n) in ["verified", "refused", "unreachable"]
            .into_iter()
            .zip(v.printers)
        {
            self.printers
                .get_or_create(&VerdictLabel { verdict })
                .set(g(n));
        }
    }

    /// An SP-API request of `operation` got `status` (`None`: no answer).
    pub fn spapi_call(&self, operation: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.spapi_calls
            .get_or_create(&CallLabels { operation, status })
            .inc();
    }

    /// A webhook delivery attempt ended with `outcome` (`delivered`, `pending`, `failed`).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One audit entry took `took` to append.
    pub fn audit_appended(&self, took: Duration) {
        self.audit_append.observe(took.as_secs_f64());
    }

    /// Every family in the Prometheus text format (OpenMetrics 1.0, ending `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn seconds(from_ms: u64, to_ms: u64) -> f64 {
    Duration::from_millis(to_ms.saturating_sub(from_ms)).as_secs_f64()
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_in_the_text_format() {
        let m = Metrics::new();
        m.job_entered("queued");
        m.dispatched(1_000, 1_250);
        m.printed(1_000, 3_000);
        m.spapi_call("getShipment", Some(200));
        m.spapi_call("getShipment", None);
        m.webhook_delivery("pending");
        m.mesh(&MeshView {
            agents_online: 2,
            printers: [3, 1, 0],
            ..MeshView::default()
        });
        let text = m.encode();
        for line in [
            "sealprint_job_transitions_total{state=\"queued\"} 1",
            "sealprint_labels_printed_total 1",
            "sealprint_end_to_end_latency_seconds_count 1",
            "sealprint_end_to_end_latency_seconds_sum 2.0",
            "sealprint_dispatch_latency_seconds_count 1",
            "sealprint_spapi_calls_total{operation=\"getShipment\",status=\"200\"} 1",
            "sealprint_spapi_calls_total{operation=\"getShipment\",status=\"error\"} 1",
            "sealprint_webhook_deliveries_total{outcome=\"pending\"} 1",
            "sealprint_agents_online 2",
            "sealprint_printers{verdict=\"verified\"} 3",
            "sealprint_printers{verdict=\"unreachable\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn a_clock_going_back_is_zero_not_a_panic() {
        assert_eq!(seconds(5_000, 1_000), 0.0);
    }
}
