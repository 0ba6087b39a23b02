//! The per-connection gate the codec consults before reading a frame: whether the peer behind
//! the connection has been verified (a valid hello, or a pinned PeerId), whether the
//! connection is being closed, and whether an unverified peer already has its one stream.
//!
//! A request-response codec is not told which connection a stream belongs to, so each
//! connection's codec gets its gate at the moment request-response builds the connection's
//! handler: `Admission` (the admission module) puts a fresh gate in the [`Handoff`]
//! just before (it is the field before `rr` in the behaviour), and the codec's `Clone` takes it
//! (request-response clones its prototype codec once per connection, then that clone once per
//! stream). A codec that never got a gate treats its peer as unverified: the mistake fails
//! closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::task::AtomicWaker;

/// What the codec knows about one connection.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    verified: AtomicBool,
    closing: AtomicBool,
    busy: AtomicBool,
    /// The peer broke a pre-hello rule (a second stream, an oversized frame): close now.
    violated: AtomicBool,
}

impl Gate {
    pub(crate) fn new(verified: bool) -> Gate {
        let gate = Gate::default();
        gate.verified.store(verified, Ordering::Release);
        gate
    }

    pub(crate) fn set_verified(&self, verified: bool) {
        self.verified.store(verified, Ordering::Release);
    }

    pub(crate) fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn violated(&self) -> bool {
        self.violated.load(Ordering::Acquire)
    }

    /// The one stream an unverified peer may have; `None` while it is taken.
    pub(crate) fn take_stream(self: &Arc<Self>) -> Option<StreamPermit> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| StreamPermit(self.clone()))
    }
}

/// Held by the codec of an unverified peer's stream until the stream is done.
#[derive(Debug)]
pub(crate) struct StreamPermit(Arc<Gate>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Shared by `Admission` (the admission module) and the prototype codec.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// The gate of the connection whose handler is being built.
    next: Mutex<Option<Arc<Gate>>>,
    /// Woken when a codec reports a violation, so admission closes the connection at once.
    pub(crate) waker: AtomicWaker,
}

impl Handoff {
    pub(crate) fn offer(&self, gate: Arc<Gate>) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate);
    }

    pub(crate) fn take(&self) -> Option<Arc<Gate>> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Marks `gate` violated and wakes admission.
    pub(crate) fn report(&self, gate: &Gate) {
        gate.violated.store(true, Ordering::Release);
        self.waker.wake();
    }
}
