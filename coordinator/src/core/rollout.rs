//! Staged rollouts of agent releases: which agents a desired version is offered to.
//!
//! A tenant (or one of its sites) names a desired version and a rollout percentage. Each agent
//! falls in a fixed bucket 0..100 derived from a hash of its device id
//! ([`bucket`]); an agent is in the rollout when its bucket is below the percentage. Raising
//! the percentage therefore only adds agents, and the same agents are chosen on every
//! coordinator and after every restart. Pure: no store, no clock.

use sealprint_protocol::Version;
use sha2::{Digest, Sha256};

const BUCKET_DOMAIN: &[u8] = b"sealprint/rollout-bucket/v1\0";

/// The release a tenant or site wants its agents on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    /// The version to run.
    pub version: Version,
    /// How many agents in a hundred get it (0..=100).
    pub rollout_percent: u8,
}

/// The agent's bucket, 0..100: fixed for a device id.
pub fn bucket(device_id: &str) -> u8 {
    let mut h = Sha256::new();
    h.update(BUCKET_DOMAIN);
    h.update(device_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // The remainder of a division by 100 always fits a u8.
    (u64::from_be_bytes(first) % 100) as u8
}

/// Whether the device is among the first `percent` of a hundred.
pub fn in_rollout(device_id: &str, percent: u8) -> bool {
    bucket(device_id) < percent.min(100)
}

impl Desired {
    /// Whether an agent reporting `version` should be offered this release: it is in the
    /// rollout and runs another version. A lower desired version is offered too (a fleet
    /// rolled back): the agent refuses it unless it allows downgrades, and always below the
    /// fleet minimum.
    pub fn offered_to(&self, device_id: &str, version: &str) -> bool {
        let same = version.trim().parse::<Version>().ok() == Some(self.version);
        in_rollout(device_id, self.rollout_percent) && !same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_the_percentage_only_adds_agents() {
        let ids: Vec<String> = (0..500).map(|i| format!("dev-{i}")).collect();
        let mut before: Vec<&String> = Vec::new();
        for p in [0u8, 10, 34, 50, 99, 100] {
            let now: Vec<&String> = ids.iter().filter(|d| in_rollout(d, p)).collect();
            assert!(before.iter().all(|d| now.contains(d)), "{p}");
            before = now;
        }
        assert_eq!(before.len(), 500);
        assert!(ids.iter().all(|d| !in_rollout(d, 0)));
        let third = ids.iter().filter(|d| in_rollout(d, 34)).count();
        assert!((120..=220).contains(&third), "{third}");
    }

    #[test]
    fn offers_any_other_version() {
        let d = Desired {
            version: Version::new(0, 2, 0),
            rollout_percent: 100,
        };
        assert!(d.offered_to("dev-1", "0.1.0"));
        assert!(!d.offered_to("dev-1", "0.2.0"));
        assert!(d.offered_to("dev-1", "0.3.0"));
        assert!(d.offered_to("dev-1", "0.2.0-rc.1"));
        let none = Desired {
            rollout_percent: 0,
            ..d
        };
        assert!(!none.offered_to("dev-1", "0.1.0"));
    }
}
