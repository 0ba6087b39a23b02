//! Whether the coordinator is ready to serve ([`Readiness`]): what `GET /readyz` answers.
//! Set by the app layer's `run` as the store, the CA (the coordinator's identity) and the mesh
//! listener come up, and when draining starts; read by the API. Atomics only: no I/O.

use std::sync::atomic::{AtomicBool, Ordering};

/// The parts a ready coordinator needs, and whether it is draining.
#[derive(Debug, Default)]
pub struct Readiness {
    store: AtomicBool,
    ca: AtomicBool,
    mesh: AtomicBool,
    draining: AtomicBool,
}

/// One part of [`Readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The store is open.
    Store,
    /// The CA key (the coordinator's identity) is loaded.
    Ca,
    /// The mesh listener is bound.
    Mesh,
}

impl Readiness {
    /// Everything up, not draining (for tests that build the API without a process).
    pub fn ready() -> Readiness {
        let r = Readiness::default();
        for p in [Part::Store, Part::Ca, Part::Mesh] {
            r.up(p);
        }
        r
    }

    /// `part` is up.
    pub fn up(&self, part: Part) {
        let flag = match part {
            Part::Store => &self.store,
            Part::Ca => &self.ca,
            Part::Mesh => &self.mesh,
        };
        flag.store(true, Ordering::SeqCst);
    }

    /// Draining has started (shutdown asked): never ready again.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether every part is up and it is not draining.
    pub fn is_ready(&self) -> bool {
        let s = self.snapshot();
        s.store && s.ca && s.mesh && !s.draining
    }

    /// What `/readyz` reports.
    pub fn snapshot(&self) -> ReadySnapshot {
        ReadySnapshot {
            store: self.store.load(Ordering::SeqCst),
            ca: self.ca.load(Ordering::SeqCst),
            mesh: self.mesh.load(Ordering::SeqCst),
            draining: self.draining.load(Ordering::SeqCst),
        }
    }
}

/// The parts' state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadySnapshot {
    /// The store is open.
    pub store: bool,
    /// The CA is loaded.
    pub ca: bool,
    /// The mesh listener is bound.
    pub mesh: bool,
    /// Draining.
    pub draining: bool,
}

impl ReadySnapshot {
    /// `ready`, `starting` or `draining`.
    pub fn status(&self) -> &'static str {
        if self.draining {
            "draining"
        } else if self.store && self.ca && self.mesh {
            "ready"
        } else {
            "starting"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_every_part_up_and_not_draining() {
        let r = Readiness::default();
        assert_eq!(r.snapshot().status(), "starting");
        r.up(Part::Store);
        r.up(Part::Ca);
        assert!(!r.is_ready());
        r.up(Part::Mesh);
        assert!(r.is_ready());
        assert_eq!(r.snapshot().status(), "ready");
        r.drain();
        assert!(!r.is_ready());
        assert_eq!(r.snapshot().status(), "draining");
    }
}
