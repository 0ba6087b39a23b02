//! How the API tells the mesh loop that a device was revoked, without ever losing it.
//!
//! A message on the loop's bounded command channel can be dropped when the channel is full
//! (the API must not wait on the loop). A revocation instead goes into a set the loop drains,
//! plus a wake-up that is kept when the loop is busy, so it is taken in at the loop's next
//! turn however many events wait; the send path also consults the set, so no job is sealed
//! to a device revoked a moment ago.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Devices revoked by the API that the event loop has not taken in yet. Unlike a message on a
/// bounded channel, an entry cannot be dropped when the loop is busy: the API inserts and
/// wakes the loop (a `Notify` keeps the wake-up if the loop is not waiting), the loop drains
/// the set, and the send path consults it before sealing a job.
#[derive(Debug, Default)]
pub(super) struct RevokedSignal {
    pending: Mutex<HashSet<String>>,
    wake: Notify,
}

impl RevokedSignal {
    /// Completes when a revocation was signalled (at once if one came while nobody waited).
    pub(super) async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Records that `device_id` was revoked and wakes the loop.
    pub(super) fn insert(&self, device_id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(device_id.to_owned());
        self.wake.notify_one();
    }

    /// Every device signalled since the last call.
    pub(super) fn take(&self) -> Vec<String> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect()
    }

    /// Whether `device_id` was signalled and not taken yet.
    pub(super) fn contains(&self, device_id: &str) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(device_id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::super::{Backlog, Command, MeshHandle};
    use super::*;
    use crate::core::dispatcher::Dispatch;

    /// A revocation signalled while the loop's command channel is full and the loop busy is
    /// neither dropped nor late: the loop's next wait returns at once and finds it.
    #[tokio::test]
    async fn a_revocation_is_not_lost_under_a_full_event_queue() {
        let (tx, _rx) = mpsc::channel(1);
        tx.try_send(Command::Submitted {
            tenant_id: "tnt-1".into(),
            job_id: "job-1".into(),
        })
        .expect("fills the channel");
        let signal = Arc::new(RevokedSignal::default());
        let handle = MeshHandle {
            tx,
            backlog: Arc::new(Backlog {
                queued: AtomicUsize::new(0),
                limit: 10,
                overflowed: AtomicBool::new(false),
            }),
            revoked: signal.clone(),
        };
        for i in 0..1_000 {
            handle.job_submitted("tnt-1", &format!("job-{i}"));
        }
        handle.agent_revoked("dev-revoked");
        handle.agent_revoked("dev-other");
        assert!(
            signal.contains("dev-revoked"),
            "the send path sees it at once"
        );
        tokio::time::timeout(Duration::from_secs(1), signal.notified())
            .await
            .expect("the wake-up was kept");
        let mut taken = signal.take();
        taken.sort();
        assert_eq!(taken, ["dev-other", "dev-revoked"]);
        assert!(signal.take().is_empty());
    }
}
