//! The shared handle on the failure tally ([`crate::core::failures`]) and the task that
//! writes its summaries to the audit log: recording a failure costs a hash-map update under a
//! lock, never a store write, so neither the mesh loop nor an API handler waits on the store
//! for a stranger.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::core::failures::{FailureKind, FailureTally};
use crate::store::Store;

/// The shared handle: cheap to clone, never blocks on I/O.
#[derive(Debug, Clone)]
pub struct FailureLog {
    tally: Arc<Mutex<FailureTally>>,
}

impl FailureLog {
    /// A log summarising every `interval`.
    pub fn new(interval: Duration) -> FailureLog {
        FailureLog {
            tally: Arc::new(Mutex::new(FailureTally::new(interval))),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FailureTally) -> T) -> T {
        // A poisoned lock only means a panic mid-update of a counter; keep counting.
        f(&mut self.tally.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts one failure from `source` (an address, never a name or an email).
    pub fn record(&self, source: &str, kind: FailureKind, reason: &str) {
        let now = crate::core::clock::now_ms();
        self.with(|t| t.record(now, source, kind, reason));
    }

    /// Writes the summaries that are due (all of them when `all`); returns how many.
    pub fn flush(&self, store: &Store, all: bool) -> usize {
        let now = crate::core::clock::now_ms();
        let due = self.with(|t| if all { t.drain() } else { t.due(now) });
        for s in &due {
            if let Err(e) = store.append_audit(s.entry()) {
                warn!(error = %e, action = s.kind.action(), "failure summary not written");
            }
        }
        due.len()
    }
}

/// The source name of an address.
pub fn source_of(ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(ip) => format!("ip {ip}"),
        None => "unknown address".to_owned(),
    }
}

/// Writes due summaries every second until `shutdown`, then the rest.
pub async fn run(store: Store, log: FailureLog, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (s, l) = (store.clone(), log.clone());
                // sled appends block; keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || l.flush(&s, false)).await;
            }
            _ = shutdown.cancelled() => break,
        }
    }
    log.flush(&store, true);
}
