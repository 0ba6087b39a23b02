//! Exponential backoff with full jitter, shared by the SP-API client and webhook deliveries.
//!
//! What it does not do: sleep or count attempts (callers do).

use std::time::Duration;

use rand::Rng;

/// The delay before retry number `attempt` (0-based): uniform in `[0, min(cap, base·2^n)]`
/// ("full jitter"), so that many throttled callers do not come back in step.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cap);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 0..40 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap);
            assert!(d <= base * 2u32.saturating_pow(attempt.min(16)));
        }
    }
}
