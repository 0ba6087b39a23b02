//! The mesh's delivery settings (attempt window, clock skew, queue bound); `app::config`
//! reads them from the configuration file and flags.

use std::time::Duration;

/// How jobs are delivered: windows and the queue bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long an agent has to print one attempt.
    pub attempt_window: Duration,
    /// Clock difference allowed between the coordinator and an agent.
    pub allowed_skew: Duration,
    /// Most jobs waiting for a printer before labels are refused with 429.
    pub max_queued_jobs: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            attempt_window: Duration::from_secs(30),
            allowed_skew: Duration::from_millis(2_000),
            max_queued_jobs: 10_000,
        }
    }
}
