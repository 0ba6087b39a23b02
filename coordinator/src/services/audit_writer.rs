//! A task that appends audit entries for the mesh event loop, so that the loop never waits on
//! the store (a sled write and a hash per entry) while peers wait on it.
//!
//! Entries keep their order (one writer). When the queue is full the entry is written
//! inline rather than dropped: the audit log loses nothing, and only a burst of legitimate
//! events (they come from verified peers; strangers' failures are summarised by
//! [`crate::core::failures`]) can get there. The task ends once every handle is dropped and the
//! queue is drained.

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::core::audit::AuditEntry;
use crate::store::Store;

/// Entries queued for the writer.
const QUEUE: usize = 4096;
/// Entries written per blocking call.
const BATCH: usize = 256;

/// The handle the event loop writes through.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<AuditEntry>,
    store: Store,
}

impl AuditWriter {
    /// Spawns the writer on `tracker`.
    pub fn spawn(store: Store, tracker: &TaskTracker) -> AuditWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tracker.spawn(run(rx, store.clone()));
        AuditWriter { tx, store }
    }

    /// Queues `entry`; never waits on the store unless the queue is full.
    pub fn write(&self, entry: AuditEntry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(entry) | mpsc::error::TrySendError::Closed(entry),
            ) => {
                append(&self.store, entry);
            }
        }
    }
}

fn append(store: &Store, entry: AuditEntry) {
    let action = entry.action.clone();
    if let Err(e) = store.append_audit(entry) {
        warn!(error = %e, %action, "audit entry not written");
    }
}

async fn run(mut rx: mpsc::Receiver<AuditEntry>, store: Store) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let s = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            for e in batch {
                append(&s, e);
            }
        })
        .await;
        if let Err(e) = written {
            warn!(error = %e, "audit writer batch lost");
        }
    }
}
