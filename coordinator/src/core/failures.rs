//! Unauthenticated failures (a bad hello, a failed enrollment, a message before a hello, an
//! unknown login, a bad billing signature), counted and summarised: one audit entry per
//! source and kind per interval, with a count, instead of one entry per failure.
//!
//! A stranger can cause failures as fast as it can send; each costing a synchronous audit
//! append (a sled write and a hash) would let it fill the log and stall whoever writes. Here a
//! failure costs a hash-map update. The number of sources tracked at once is bounded: beyond
//! it, failures are counted under the source `other`.
//!
//! [`FailureTally`] holds the rules and is handed `now`; the shared handle and the task that
//! writes the summaries are `services::failures`.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::audit::AuditEntry;

/// Distinct (source, kind) windows open at once; more are counted under `other`.
pub const MAX_OPEN_WINDOWS: usize = 4096;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A mesh peer's certificate was refused.
    BadHello,
    /// A mesh peer's enrollment token was refused.
    FailedEnrollment,
    /// A mesh peer sent another message before a verified hello.
    NoHello,
    /// A login for an email that has no account.
    UnknownLogin,
    /// A billing webhook call with a bad signature.
    BadBillingSignature,
}

impl FailureKind {
    /// The audit action of its summaries.
    pub fn action(self) -> &'static str {
        match self {
            FailureKind::BadHello => "agent.refused",
            FailureKind::FailedEnrollment => "agent.enroll_refused",
            FailureKind::NoHello => "agent.no_hello",
            FailureKind::UnknownLogin => "session.failed",
            FailureKind::BadBillingSignature => "billing.refused",
        }
    }
}

/// One summary: `count` failures of `kind` from `source` between `first_ms` and `last_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Where they came from (`ip 192.0.2.1`, or `other`).
    pub source: String,
    /// What failed.
    pub kind: FailureKind,
    /// How many times.
    pub count: u64,
    /// The first one.
    pub first_ms: u64,
    /// The last one.
    pub last_ms: u64,
    /// The last reason given.
    pub reason: String,
}

impl Summary {
    /// The audit entry of this summary.
    pub fn entry(&self) -> AuditEntry {
        AuditEntry::new(
            None,
            &self.source,
            self.kind.action(),
            None,
            &format!(
                "count={} window_ms={} last_reason={}",
                self.count,
                self.last_ms.saturating_sub(self.first_ms),
                self.reason
            ),
            self.last_ms,
        )
    }
}

/// The open windows. Pure: every call is handed `now`.
#[derive(Debug)]
pub struct FailureTally {
    interval_ms: u64,
    open: HashMap<(String, FailureKind), Summary>,
}

impl FailureTally {
    /// A tally summarising every `interval`.
    pub fn new(interval: Duration) -> FailureTally {
        FailureTally {
            interval_ms: interval.as_millis().max(1) as u64,
            open: HashMap::new(),
        }
    }

    /// Counts one failure.
    pub fn record(&mut self, now_ms: u64, source: &str, kind: FailureKind, reason: &str) {
        let mut key = (source.to_owned(), kind);
        if !self.open.contains_key(&key) && self.open.len() >= MAX_OPEN_WINDOWS {
            key.0 = "other".to_owned();
        }
        let s = self
            .open
            .entry(key)
            .or_insert_with_key(|(source, kind)| Summary {
                source: source.clone(),
                kind: *kind,
                count: 0,
                first_ms: now_ms,
                last_ms: now_ms,
                reason: String::new(),
            });
        s.count += 1;
        s.last_ms = now_ms;
        if s.reason != reason {
            s.reason = reason.chars().take(200).collect();
        }
    }

    /// Closes and returns the windows that are an interval old.
    pub fn due(&mut self, now_ms: u64) -> Vec<Summary> {
        let interval = self.interval_ms;
        let keys: Vec<(String, FailureKind)> = self
            .open
            .iter()
            .filter(|(_, s)| now_ms >= s.first_ms + interval)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Summary> = keys
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .collect();
        out.sort_by_key(|s| s.first_ms);
        out
    }

    /// Closes and returns every window (at shutdown).
    pub fn drain(&mut self) -> Vec<Summary> {
        let mut out: Vec<Summary> = self.open.drain().map(|(_, s)| s).collect();
        out.sort_by_key(|s| s.first_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_summary_per_source_and_kind_per_interval() {
        let mut t = FailureTally::new(Duration::from_secs(60));
        for i in 0..100 {
            t.record(
                1_000 + i,
                "ip 192.0.2.1",
                FailureKind::FailedEnrollment,
                "bad token",
            );
        }
        t.record(
            1_050,
            "ip 192.0.2.1",
            FailureKind::BadHello,
            "unknown device",
        );
        t.record(
            1_060,
            "ip 192.0.2.2",
            FailureKind::FailedEnrollment,
            "bad token",
        );
        assert!(t.due(60_000).is_empty(), "not an interval old yet");
        let due = t.due(62_000);
        assert_eq!(due.len(), 3);
        let enroll = &due[0];
        assert_eq!(
            (enroll.source.as_str(), enroll.kind, enroll.count),
            ("ip 192.0.2.1", FailureKind::FailedEnrollment, 100)
        );
        assert!(enroll.entry().outcome.starts_with("count=100 "));
        assert!(t.due(200_000).is_empty(), "each window is written once");
        t.record(
            300_000,
            "ip 192.0.2.1",
            FailureKind::FailedEnrollment,
            "bad token",
        );
        assert_eq!(
            t.drain().len(),
            1,
            "a new window opens after the last closed"
        );
    }

    #[test]
    fn sources_beyond_the_bound_count_as_other() {
        let mut t = FailureTally::new(Duration::from_secs(60));
        for i in 0..(MAX_OPEN_WINDOWS + 50) {
            t.record(
                0,
                &format!("ip 10.0.{}.{}", i / 256, i % 256),
                FailureKind::NoHello,
                "x",
            );
        }
        let all = t.drain();
        assert_eq!(all.len(), MAX_OPEN_WINDOWS + 1);
        let other = all.iter().find(|s| s.source == "other").expect("other");
        assert_eq!(other.count, 50);
    }
}
