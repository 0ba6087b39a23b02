//! Client-side rate limiting: one token bucket per (connection, operation), with sub-second
//! precision on tokio's clock (so tests run on paused time).
//!
//! A bucket starts at the operation's documented rate and burst ([`Operation::info`]). A
//! successful answer's `x-amzn-RateLimit-Limit` header (the seller's real rate for this
//! account-application pair) replaces the rate; a 429 empties the bucket so that every caller
//! on the connection slows down, not just the one that was refused. [`backoff`] gives the
//! retry delays: exponential with full jitter, capped.
//!
//! What it does not do: per-application limits (Amazon does not publish them) or sharing
//! buckets between coordinator processes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::operation::Operation;

/// Highest rate accepted from a header, requests per second.
const MAX_RATE: f64 = 1000.0;

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }
}

/// The buckets of one process.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<(String, Operation), Bucket>>,
}

impl RateLimits {
    fn with_bucket<T>(&self, conn: &str, op: Operation, f: impl FnOnce(&mut Bucket) -> T) -> T {
        // A poisoned lock only means another caller panicked mid-update of plain numbers.
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let b = map.entry((conn.to_owned(), op)).or_insert_with(|| {
            let i = op.info();
            Bucket {
                rate: i.rate,
                burst: f64::from(i.burst.max(1)),
                tokens: f64::from(i.burst.max(1)),
                last: now,
            }
        });
        b.refill(now);
        f(b)
    }

    /// Waits until a request of `op` on `conn` may be sent, and takes its token.
    ///
    /// Cancel-safe: a token is only taken when this returns.
    pub async fn acquire(&self, conn: &str, op: Operation) {
        loop {
            let wait = self.with_bucket(conn, op, |b| {
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - b.tokens) / b.rate))
                }
            });
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Applies an `x-amzn-RateLimit-Limit` header value; ignored unless it is a positive
    /// number no larger than 1000.
    pub fn observe(&self, conn: &str, op: Operation, header: &str) {
        let Ok(rate) = header.trim().parse::<f64>() else {
            return;
        };
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return;
        }
        self.with_bucket(conn, op, |b| {
            b.rate = rate;
            // A seller allowed more than the default burst gets at least one token per
            // second of rate; never less than one token.
            b.burst = b.burst.max(rate.ceil()).max(1.0);
        });
    }

    /// A 429 was received: empty the bucket.
    pub fn throttled(&self, conn: &str, op: Operation) {
        self.with_bucket(conn, op, |b| b.tokens = b.tokens.min(0.0));
    }

    /// The current rate of a bucket (tests and diagnostics).
    pub fn rate(&self, conn: &str, op: Operation) -> f64 {
        self.with_bucket(conn, op, |b| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_documented_rate() {
        let limits = RateLimits::default();
        let start = Instant::now();
        // createShipment: 2 rps, burst 2. Six calls: two at once, then one per 0.5 s.
        for _ in 0..6 {
            limits.acquire("c1", Operation::MfnCreateShipment).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
        // Another connection has its own bucket.
        let t = Instant::now();
        limits.acquire("c2", Operation::MfnCreateShipment).await;
        assert!(t.elapsed() < Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn header_adjusts_and_429_empties() {
        let limits = RateLimits::default();
        limits.observe("c", Operation::MfnGetShipment, "5.0");
        assert_eq!(limits.rate("c", Operation::MfnGetShipment), 5.0);
        for bad in ["0", "-1", "NaN", "inf", "abc", "1e9"] {
            limits.observe("c", Operation::MfnGetShipment, bad);
        }
        assert_eq!(limits.rate("c", Operation::MfnGetShipment), 5.0);
        limits.throttled("c", Operation::MfnGetShipment);
        let t = Instant::now();
        limits.acquire("c", Operation::MfnGetShipment).await;
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
    }
}
