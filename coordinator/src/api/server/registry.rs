//! The open connections of the API server, for its caps: at most so many per address and in
//! total. A newcomer over a cap does not wait: the oldest idle connection (no request in
//! flight: still in its handshake, silent, or kept alive between requests) of its address,
//! or of the address holding the most connections, is shed to make room; only when none is
//! idle is the newcomer refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::api::limits::AddressKey;

/// One open connection, as the registry and its task see it.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Requests whose answer is not yet sent.
    in_flight: AtomicUsize,
    /// When the last request began or its answer was sent, ms since the registry began.
    last_active_ms: AtomicU64,
    /// Whether it ever carried a request.
    served: AtomicUsize,
    /// Cancelled when the connection is shed: its task drops it at once.
    pub(crate) shed: CancellationToken,
    epoch: Instant,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request began.
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.store(1, Ordering::SeqCst);
        self.last_active_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// A request's answer was sent (or dropped).
    pub(crate) fn end(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether no request is in flight.
    pub(crate) fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Whether it ever carried a request.
    pub(crate) fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst) != 0
    }

    /// How long it has been idle, ms (0 while a request is in flight).
    pub(crate) fn idle_for_ms(&self) -> u64 {
        if self.idle() {
            self.now_ms()
                .saturating_sub(self.last_active_ms.load(Ordering::SeqCst))
        } else {
            0
        }
    }
}

/// Why a newcomer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address holds its cap of connections, none idle.
    Address,
    /// The server holds its cap of connections, none idle.
    Full,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By id, so by age.
    conns: BTreeMap<u64, (AddressKey, Arc<Conn>)>,
    per_addr: HashMap<AddressKey, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let (addr, conn) = self.conns.remove(&id)?;
        if let Some(n) = self.per_addr.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                self.per_addr.remove(&addr);
            }
        }
        Some(conn)
    }

    /// Sheds the oldest idle connection of `addr` (any address when `None`).
    fn shed_oldest(&mut self, addr: Option<AddressKey>) -> bool {
        let victim = self
            .conns
            .iter()
            .find(|(_, (a, c))| addr.is_none_or(|x| x == *a) && c.idle())
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(conn) => {
                conn.shed.cancel();
                true
            }
            None => false,
        }
    }
}

/// The open connections.
#[derive(Debug)]
pub(crate) struct Registry {
    max_total: usize,
    max_per_addr: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// A connection's place in the registry; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admission {
    registry: Arc<Registry>,
    id: u64,
    /// The connection's shared state.
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.registry.lock().remove(self.id);
    }
}

impl Registry {
    pub(crate) fn new(max_total: usize, max_per_addr: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max_total: max_total.max(1),
            max_per_addr: max_per_addr.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection from `addr`, shedding an idle one when a cap is reached.
    ///
    /// # Errors
    /// [`Refused`] when a cap is reached and no connection there is idle.
    pub(crate) fn admit(self: &Arc<Self>, addr: AddressKey) -> Result<Admission, Refused> {
        let mut inner = self.lock();
        if inner.per_addr.get(&addr).copied().unwrap_or(0) >= self.max_per_addr
            && !inner.shed_oldest(Some(addr))
        {
            return Err(Refused::Address);
        }
        if inner.conns.len() >= self.max_total {
            // The abusive first: the address that holds the most connections.
            let crowded = inner
                .per_addr
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(a, _)| *a);
            if !inner.shed_oldest(crowded) && !inner.shed_oldest(None) {
                return Err(Refused::Full);
            }
        }
        let id = inner.next;
        inner.next += 1;
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            served: AtomicUsize::new(0),
            shed: CancellationToken::new(),
            epoch: self.epoch,
        });
        conn.last_active_ms.store(conn.now_ms(), Ordering::SeqCst);
        inner.conns.insert(id, (addr, conn.clone()));
        *inner.per_addr.entry(addr).or_default() += 1;
        Ok(Admission {
            registry: self.clone(),
            id,
            conn,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> AddressKey {
        AddressKey::of(Some(s.parse().expect("ip")))
    }

    #[test]
    fn over_the_address_cap_the_oldest_idle_of_that_address_goes() {
        let r = Registry::new(100, 3);
        let a = addr("192.0.2.1");
        let first: Vec<_> = (0..3).map(|_| r.admit(a).expect("admit")).collect();
        first[0].conn.begin(); // busy: never shed
        let other = r.admit(addr("192.0.2.2")).expect("other address");
        let fourth = r.admit(a).expect("sheds one");
        assert!(!first[0].conn.shed.is_cancelled());
        assert!(first[1].conn.shed.is_cancelled(), "oldest idle shed");
        assert!(!first[2].conn.shed.is_cancelled() && !other.conn.shed.is_cancelled());
        assert_eq!(r.len(), 4);
        // Every connection of the address busy: the newcomer is refused.
        first[2].conn.begin();
        fourth.conn.begin();
        assert_eq!(r.admit(a).map(|_| ()), Err(Refused::Address));
        first[2].conn.end();
        assert!(r.admit(a).is_ok());
    }

    #[test]
    fn over_the_total_cap_the_crowded_address_pays() {
        let r = Registry::new(4, 10);
        let quiet = r.admit(addr("192.0.2.1")).expect("admit");
        let crowd: Vec<_> = (0..3)
            .map(|_| r.admit(addr("192.0.2.9")).expect("admit"))
            .collect();
        let _new = r.admit(addr("192.0.2.5")).expect("sheds");
        assert!(
            !quiet.conn.shed.is_cancelled(),
            "the older but quiet one stays"
        );
        assert!(crowd[0].conn.shed.is_cancelled());
        // Dropped admissions free their places.
        drop(crowd);
        assert_eq!(r.len(), 2);
    }
}
