//! What a stranger may ask of the API before it knows who they are: per-address rate limits
//! on the unauthenticated routes, the login guard (attempts counted before the password is
//! checked), and the bound on password hashing work.
//!
//! - [`AddressKey`]: requests are counted per IPv4 address or per IPv6 /64 (one customer line
//!   gets a whole /64, so counting single v6 addresses would count nothing).
//! - [`RateLimiter`]: a token bucket per address; over it, 429 with a Retry-After.
//! - [`LoginGuard`]: the per-address half of the lockout rule (the per-account half lives on
//!   the user record, see [`crate::core::accounts`]). The rule, in full:
//!   1. an address may have [`PAIR_LOCKOUT_THRESHOLD`] failed logins on one account within
//!      [`accounts::LOCKOUT_WINDOW_MS`]; the last of them locks that account *for that
//!      address* for [`accounts::LOCKOUT_MS`] (423, the right password included);
//!   2. an account is locked for every address after [`accounts::LOCKOUT_THRESHOLD`] failures
//!      from any addresses within the window (423), so it takes several addresses, each
//!      stopped at its own five, to lock an owner out;
//!   3. an address may have [`ADDRESS_FAILURE_LIMIT`] failed logins in the window over all
//!      accounts, unknown emails included; beyond that every login from it gets 429 with a
//!      Retry-After until its oldest failure leaves the window.
//!
//!   Every attempt is reserved *before* the slow argon2 check, so N concurrent guesses run at
//!   most as many checks as the thresholds allow; the reservation becomes a failure, or is
//!   released by a success (which clears that address's count on the account).
//! - [`PasswordWork`]: argon2 (19 MiB each) runs on the blocking pool under a semaphore of
//!   about the core count; a bounded number of callers wait, the rest get 429.
//!
//! The per-address state is in memory (bounded, and never written to disk: addresses are
//! personal data); a restart forgets it, the per-account lock on the record stays.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::warn;

use super::error::ApiError;
use crate::core::accounts;

/// Failed logins of one address on one account that lock the account for that address.
pub const PAIR_LOCKOUT_THRESHOLD: usize = 5;
/// Failed logins of one address, over all accounts, within the lockout window.
pub const ADDRESS_FAILURE_LIMIT: usize = 20;
/// Most addresses (and address-account pairs) remembered; past it, new ones are throttled.
const MAX_TRACKED: usize = 100_000;

/// The unit requests are counted by: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of `ip` (`None`, a request without a socket, counts as one address).
    pub fn of(ip: Option<IpAddr>) -> AddressKey {
        match ip {
            None => AddressKey(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Some(IpAddr::V4(v4)) => AddressKey(IpAddr::V4(v4)),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    AddressKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// A token bucket per address.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<AddressKey, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_sec` requests a second on average, `burst` at once.
    pub fn new(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; `Err(seconds)` says when to retry.
    ///
    /// # Errors
    /// The Retry-After, in whole seconds (at least 1).
    pub fn check(&self, key: AddressKey, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            // Forget the addresses whose bucket has refilled: they are as good as new.
            let full = self.burst / self.per_sec;
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full);
            if buckets.len() >= MAX_TRACKED {
                return Err(1);
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.per_sec;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.per_sec;
            // Whole seconds, rounded up; `wait` is small and positive.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked for this address until then (unix ms).
    Locked(u64),
    /// This address has failed too often: retry after so many seconds.
    Throttled(u64),
}

/// A reserved login attempt: hand it back with [`LoginGuard::succeeded`] or
/// [`LoginGuard::failed`]. Dropped without either, it stays counted as a failure.
#[derive(Debug)]
pub struct Ticket {
    addr: AddressKey,
    user: Option<String>,
    at_ms: u64,
}

#[derive(Debug, Default)]
struct Pair {
    /// Reserved or failed attempts within the window.
    attempts: Vec<u64>,
    locked_until_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct GuardState {
    pairs: HashMap<(AddressKey, String), Pair>,
    /// Reserved or failed attempts of each address within the window.
    addresses: HashMap<AddressKey, Vec<u64>>,
}

impl GuardState {
    fn prune(&mut self, now_ms: u64) {
        let live = |t: &u64| now_ms.saturating_sub(*t) < accounts::LOCKOUT_WINDOW_MS;
        self.addresses.retain(|_, v| {
            v.retain(live);
            !v.is_empty()
        });
        self.pairs.retain(|_, p| {
            p.attempts.retain(live);
            !p.attempts.is_empty() || p.locked_until_ms.is_some_and(|t| t > now_ms)
        });
    }
}

/// The per-address lockout and failure budget (see the module doc for the rule).
#[derive(Debug, Default)]
pub struct LoginGuard {
    state: Mutex<GuardState>,
}

impl LoginGuard {
    /// Reserves an attempt of `addr` on `user` (`None`: an unknown email) at `now_ms`.
    ///
    /// # Errors
    /// [`Refusal::Throttled`] when the address is over its failure budget,
    /// [`Refusal::Locked`] when the account is locked for it or has as many attempts in
    /// flight or failed as lock it.
    pub fn reserve(
        &self,
        addr: AddressKey,
        user: Option<&str>,
        now_ms: u64,
    ) -> Result<Ticket, Refusal> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.addresses.len() + s.pairs.len() >= MAX_TRACKED {
            s.prune(now_ms);
            if s.addresses.len() + s.pairs.len() >= MAX_TRACKED {
                return Err(Refusal::Throttled(60));
            }
        }
        let window = accounts::LOCKOUT_WINDOW_MS;
        let live = |t: &u64| now_ms.saturating_sub(*t) < window;
        let failures = s.addresses.entry(addr).or_default();
        failures.retain(live);
        if failures.len() >= ADDRESS_FAILURE_LIMIT {
            let oldest = failures.iter().min().copied().unwrap_or(now_ms);
            let wait_ms = (oldest + window).saturating_sub(now_ms);
            return Err(Refusal::Throttled(wait_ms.div_ceil(1000).max(1)));
        }
        if let Some(user) = user {
            let pair = s.pairs.entry((addr, user.to_owned())).or_default();
            if let Some(until) = pair.locked_until_ms.filter(|&t| t > now_ms) {
                return Err(Refusal::Locked(until));
            }
            pair.locked_until_ms = None;
            pair.attempts.retain(live);
            if pair.attempts.len() >= PAIR_LOCKOUT_THRESHOLD {
                // As many guesses as lock it are already being checked.
                return Err(Refusal::Locked(now_ms + accounts::LOCKOUT_MS));
            }
            pair.attempts.push(now_ms);
        }
        s.addresses.entry(addr).or_default().push(now_ms);
        Ok(Ticket {
            addr,
            user: user.map(str::to_owned),
            at_ms: now_ms,
        })
    }

    /// The password was right: the reservation is released and the address's count on the
    /// account cleared.
    pub fn succeeded(&self, ticket: Ticket) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = s.addresses.get_mut(&ticket.addr) {
            if let Some(i) = v.iter().position(|&t| t == ticket.at_ms) {
                v.swap_remove(i);
            }
        }
        if let Some(user) = ticket.user {
            s.pairs.remove(&(ticket.addr, user));
        }
    }

    /// No password was checked after all (the account was refused, or the work was busy):
    /// the reservation is given back without counting.
    pub fn release(&self, ticket: Ticket) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let remove = |v: &mut Vec<u64>| {
            if let Some(i) = v.iter().position(|&t| t == ticket.at_ms) {
                v.swap_remove(i);
            }
        };
        if let Some(v) = s.addresses.get_mut(&ticket.addr) {
            remove(v);
        }
        if let Some(user) = ticket.user {
            if let Some(p) = s.pairs.get_mut(&(ticket.addr, user)) {
                remove(&mut p.attempts);
            }
        }
    }

    /// The password was wrong: the reservation stays a failure; the end of the lock when
    /// this failure locks the account for the address.
    pub fn failed(&self, ticket: Ticket, now_ms: u64) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let user = ticket.user?;
        let pair = s.pairs.get_mut(&(ticket.addr, user))?;
        if pair.attempts.len() >= PAIR_LOCKOUT_THRESHOLD && pair.locked_until_ms.is_none() {
            let until = now_ms + accounts::LOCKOUT_MS;
            pair.locked_until_ms = Some(until);
            pair.attempts.clear();
            return Some(until);
        }
        pair.locked_until_ms
    }
}

/// Waiters allowed per permit before password work is refused with 429.
const WAITERS_PER_PERMIT: usize = 8;
/// Longest wait for a permit before 429.
const PERMIT_WAIT: Duration = Duration::from_secs(10);

/// The bound on argon2 work: at most about one hash per core at once.
#[derive(Debug)]
pub struct PasswordWork {
    permits: Semaphore,
    max_waiting: usize,
    waiting: AtomicUsize,
}

impl Default for PasswordWork {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        PasswordWork::new(cores)
    }
}

impl PasswordWork {
    /// A bound of `permits` hashes at once.
    pub fn new(permits: usize) -> PasswordWork {
        let permits = permits.max(1);
        PasswordWork {
            permits: Semaphore::new(permits),
            max_waiting: permits * WAITERS_PER_PERMIT,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Runs `f` (argon2) on the blocking pool once a permit is free.
    ///
    /// Cancel-safe: dropping it before the permit releases the place in the queue; after,
    /// the blocking work finishes on its own and the permit is released with it.
    ///
    /// # Errors
    /// 429 when too many wait already or no permit came within [`PERMIT_WAIT`]; 500 when the
    /// blocking task failed.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let busy = || ApiError::rate_limited("password checks are busy: retry shortly", 1);
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    warn!("password work queue full");
                    return Err(busy());
                }
                let got = tokio::time::timeout(PERMIT_WAIT, self.permits.acquire()).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match got {
                    Ok(Ok(p)) => p,
                    _ => return Err(busy()),
                }
            }
        };
        let result = tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::internal(&e));
        drop(permit);
        result
    }
}

/// Everything of this module one API server holds.
#[derive(Debug)]
pub struct Limits {
    /// The unauthenticated routes' requests per address.
    pub public: RateLimiter,
    /// The per-address lockout and failure budget.
    pub logins: LoginGuard,
    /// The bound on argon2 work.
    pub passwords: PasswordWork,
}

/// Unauthenticated requests per second per address, on average.
pub const PUBLIC_RATE_PER_SEC: f64 = 5.0;
/// Unauthenticated requests per address at once.
pub const PUBLIC_BURST: f64 = 20.0;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            public: RateLimiter::new(PUBLIC_RATE_PER_SEC, PUBLIC_BURST),
            logins: LoginGuard::default(),
            passwords: PasswordWork::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn addr(s: &str) -> AddressKey {
        AddressKey::of(Some(s.parse().expect("ip")))
    }

    #[test]
    fn v6_counts_per_slash_64_and_mapped_v4_as_v4() {
        assert_eq!(addr("2001:db8:1:2::1"), addr("2001:db8:1:2:ffff::9"));
        assert_ne!(addr("2001:db8:1:2::1"), addr("2001:db8:1:3::1"));
        assert_eq!(addr("::ffff:10.0.0.1"), addr("10.0.0.1"));
    }

    #[test]
    fn bucket_refuses_past_the_burst_and_refills() {
        let l = RateLimiter::new(1.0, 3.0);
        let t = Instant::now();
        let a = addr("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.check(a, t), Ok(()));
        }
        assert_eq!(l.check(a, t), Err(1));
        assert_eq!(
            l.check(addr("192.0.2.2"), t),
            Ok(()),
            "other addresses unaffected"
        );
        assert_eq!(l.check(a, t + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn concurrent_guesses_reserve_at_most_the_threshold() {
        let g = LoginGuard::default();
        let a = addr("192.0.2.1");
        let tickets: Vec<_> = (0..100)
            .filter_map(|_| g.reserve(a, Some("usr-1"), T0).ok())
            .collect();
        assert_eq!(tickets.len(), PAIR_LOCKOUT_THRESHOLD);
        let locks: Vec<_> = tickets.into_iter().map(|t| g.failed(t, T0)).collect();
        assert_eq!(locks.last(), Some(&Some(T0 + accounts::LOCKOUT_MS)));
        assert_eq!(
            g.reserve(a, Some("usr-1"), T0 + 1).map(|_| ()),
            Err(Refusal::Locked(T0 + accounts::LOCKOUT_MS))
        );
        // Another address is not locked out by this one.
        assert!(g.reserve(addr("192.0.2.9"), Some("usr-1"), T0 + 1).is_ok());
        // After the lock, the address starts afresh.
        assert!(g
            .reserve(a, Some("usr-1"), T0 + accounts::LOCKOUT_MS + 1)
            .is_ok());
    }

    #[test]
    fn success_clears_the_pair_and_the_reservation() {
        let g = LoginGuard::default();
        let a = addr("192.0.2.1");
        for _ in 0..4 {
            let t = g.reserve(a, Some("usr-1"), T0).expect("reserve");
            assert_eq!(g.failed(t, T0), None);
        }
        let t = g.reserve(a, Some("usr-1"), T0).expect("reserve");
        g.succeeded(t);
        for _ in 0..4 {
            let t = g.reserve(a, Some("usr-1"), T0).expect("counts start again");
            g.failed(t, T0);
        }
    }

    #[test]
    fn an_address_has_a_failure_budget_over_all_accounts() {
        let g = LoginGuard::default();
        let a = addr("192.0.2.1");
        for i in 0..ADDRESS_FAILURE_LIMIT {
            let user = (i % 2 == 0).then(|| format!("usr-{i}"));
            let t = g.reserve(a, user.as_deref(), T0).expect("within budget");
            g.failed(t, T0);
        }
        let over = g.reserve(a, None, T0 + 1000);
        assert_eq!(
            over.map(|_| ()),
            Err(Refusal::Throttled(accounts::LOCKOUT_WINDOW_MS / 1000 - 1))
        );
        assert!(g.reserve(addr("192.0.2.2"), None, T0).is_ok());
        assert!(g.reserve(a, None, T0 + accounts::LOCKOUT_WINDOW_MS).is_ok());
    }

    #[tokio::test]
    async fn password_work_refuses_past_its_queue() {
        let w = std::sync::Arc::new(PasswordWork::new(1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let held = {
            let w = w.clone();
            tokio::spawn(async move { w.run(move || rx.recv().is_ok()).await })
        };
        // Wait until the first job holds the permit.
        while w.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..WAITERS_PER_PERMIT)
            .map(|_| {
                let w = w.clone();
                tokio::spawn(async move { w.run(|| true).await })
            })
            .collect();
        while w.waiting.load(Ordering::SeqCst) < WAITERS_PER_PERMIT {
            tokio::task::yield_now().await;
        }
        let refused = w.run(|| true).await.expect_err("queue full");
        assert_eq!(refused.status, hyper::StatusCode::TOO_MANY_REQUESTS);
        tx.send(()).expect("release");
        assert!(held.await.expect("join").expect("ran"));
        for t in waiters {
            assert!(t.await.expect("join").expect("ran"));
        }
    }
}
