//! What a printer simulator is doing, for tests that must prove a fault took effect and
//! count only once everything has landed: connections open, the last byte's time, every job
//! received (also those the printer held because it could not print), and a stall that keeps
//! finished jobs waiting before they are recorded (jobs provably in flight).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    open: usize,
    last: Instant,
    received: usize,
    received_unready: usize,
    stalled: usize,
}

/// Counters of one simulator, shared by its connections.
#[derive(Debug)]
pub(crate) struct Activity {
    inner: Mutex<Inner>,
    stall: watch::Sender<bool>,
}

/// Counts a connection as open until dropped.
pub(crate) struct OpenGuard<'a>(&'a Activity);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.open = inner.open.saturating_sub(1);
        inner.last = Instant::now();
    }
}

/// What [`Activity::snapshot`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivitySnapshot {
    /// Connections open now.
    pub open: usize,
    /// Jobs received (their connection closed with label data), printed or not.
    pub received: usize,
    /// Of those, jobs received while the printer could not print (paper out, head open,
    /// paused, silent when faulted).
    pub received_unready: usize,
    /// Jobs fully received and waiting for the stall to end.
    pub stalled: usize,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            inner: Mutex::new(Inner {
                open: 0,
                last: Instant::now(),
                received: 0,
                received_unready: 0,
                stalled: 0,
            }),
            stall: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection opened.
    pub(crate) fn open(&self) -> OpenGuard<'_> {
        let mut inner = self.lock();
        inner.open += 1;
        inner.last = Instant::now();
        OpenGuard(self)
    }

    /// Bytes arrived.
    pub(crate) fn touch(&self) {
        self.lock().last = Instant::now();
    }

    /// A job was received; `ready` is whether the printer could print it.
    pub(crate) fn received(&self, ready: bool) {
        let mut inner = self.lock();
        inner.received += 1;
        inner.received_unready += usize::from(!ready);
        inner.last = Instant::now();
    }

    /// Waits while stalled, counting the job as stalled meanwhile.
    pub(crate) async fn pass_stall(&self) {
        let mut rx = self.stall.subscribe();
        if !*rx.borrow_and_update() {
            return;
        }
        self.lock().stalled += 1;
        let _ = rx.wait_for(|stalled| !stalled).await;
        self.lock().stalled -= 1;
    }

    /// Starts or ends the stall: while on, finished jobs are neither recorded nor answered
    /// (the sim keeps its side of the connection open).
    pub(crate) fn set_stall(&self, on: bool) {
        self.stall.send_replace(on);
    }

    pub(crate) fn snapshot(&self) -> ActivitySnapshot {
        let inner = self.lock();
        ActivitySnapshot {
            open: inner.open,
            received: inner.received,
            received_unready: inner.received_unready,
            stalled: inner.stalled,
        }
    }

    /// Whether no connection is open and nothing happened for `quiet`.
    pub(crate) fn is_quiet(&self, quiet: Duration) -> bool {
        let inner = self.lock();
        inner.open == 0 && inner.last.elapsed() >= quiet
    }
}
