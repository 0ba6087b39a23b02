//! A task that writes records to the store for the mesh event loop, so that the loop never
//! waits on the store (a sled write, a hash, a notification) while peers wait on it. The
//! loop's audit entries and its job and fleet events both leave it through one of these
//! (their modules build on this one, never the other way).
//!
//! One task per writer, so records keep their order while the queue has room. When it is
//! full the record is written inline rather than dropped: nothing is lost, and the loop is
//! slowed instead of memory growing (only a burst of legitimate events, which come from
//! verified peers, can fill it; strangers' failures are summarised by
//! [`crate::core::failures`]). The task ends once every handle is dropped and the queue is
//! drained.

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::store::Store;

/// Records queued per writer.
const QUEUE: usize = 4096;
/// Records written per blocking call.
const BATCH: usize = 256;

/// Something a [`StoreWriter`] writes.
pub trait StoreRecord: Send + 'static {
    /// Writes it, logging (never returning) a failure: the caller has gone on long ago.
    fn write_to(self, store: &Store);
}

/// The handle the event loop writes through. Cheap to clone.
#[derive(Debug)]
pub struct StoreWriter<T> {
    tx: mpsc::Sender<T>,
    store: Store,
}

impl<T> Clone for StoreWriter<T> {
    fn clone(&self) -> Self {
        StoreWriter {
            tx: self.tx.clone(),
            store: self.store.clone(),
        }
    }
}

impl<T: StoreRecord> StoreWriter<T> {
    /// Spawns the writer task on `tracker`.
    pub fn spawn(store: Store, tracker: &TaskTracker) -> StoreWriter<T> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tracker.spawn(run(rx, store.clone()));
        StoreWriter { tx, store }
    }

    /// Queues `record`; waits on the store only when the queue is full (or the task ended).
    pub fn send(&self, record: T) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => {
                r.write_to(&self.store);
            }
        }
    }
}

async fn run<T: StoreRecord>(mut rx: mpsc::Receiver<T>, store: Store) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let s = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            for r in batch {
                r.write_to(&s);
            }
        })
        .await;
        if let Err(e) = written {
            warn!(error = %e, "store writer batch lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::AuditEntry;
    use crate::core::crypto::MasterKey;

    fn entry(i: usize) -> AuditEntry {
        AuditEntry {
            at_ms: 1,
            tenant_id: None,
            actor: "test".into(),
            action: "test.entry".into(),
            object: Some(format!("n-{i}")),
            outcome: "ok".into(),
        }
    }

    /// More records than the queue holds, sent before the task runs once (a current-thread
    /// runtime): the overflow is written inline, the rest by the task; none is lost and
    /// the task ends once the handle is dropped.
    #[tokio::test]
    async fn a_full_queue_loses_nothing_and_the_task_ends_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let tracker = TaskTracker::new();
        let writer: StoreWriter<AuditEntry> = StoreWriter::spawn(store.clone(), &tracker);
        let n = QUEUE + 100;
        for i in 0..n {
            writer.send(entry(i));
        }
        drop(writer);
        tracker.close();
        tokio::time::timeout(std::time::Duration::from_secs(60), tracker.wait())
            .await
            .expect("the writer task ends once its handles are gone");
        let written = store.audit_entries(None).expect("audit").len();
        assert_eq!(written, n);
    }
}
