//! What the coordinator requires of agents: the version policy.
//!
//! [`VersionPolicy`] is the global policy of the process (`--min-agent-version`, and the next
//! minimum announced with `--next-min-agent-version` from `--next-min-agent-version-from`).
//! A tenant may raise the minimum for its own agents (never lower it below the global one):
//! [`VersionPolicy::requirement`] is the effective requirement for one tenant at `now`, the
//! one heartbeat replies carry, dispatch enforces (an agent below it gets no jobs), the
//! agents listing shows and the `agent_outdated` alert uses.
//!
//! Pure: the caller passes the tenant's override and `now`.

use sealprint_protocol::{version_below, Announced, Requirement, Version};

/// The oldest agent version served by default.
pub const MIN_AGENT_VERSION: Version = Version::new(0, 1, 0);

/// The global agent version policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionPolicy {
    /// The oldest agent version served.
    pub min: Version,
    /// The next minimum and when it takes effect (unix seconds); announced until then, the
    /// minimum afterwards.
    pub next: Option<Announced>,
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy {
            min: MIN_AGENT_VERSION,
            next: None,
        }
    }
}

impl VersionPolicy {
    /// The requirement for a tenant whose own minimum is `tenant_min`, at `now_s` (unix
    /// seconds): the larger of the global and the tenant's minimum (the announced one counts
    /// once its date has come); the announcement is carried only while it is ahead and above
    /// that minimum.
    pub fn requirement(&self, tenant_min: Option<Version>, now_s: u64) -> Requirement {
        let mut min = self.min;
        let mut next = None;
        if let Some(n) = self.next {
            if now_s >= n.from_s {
                min = min.max(n.min);
            } else {
                next = Some(n);
            }
        }
        if let Some(t) = tenant_min {
            min = min.max(t);
        }
        Requirement {
            min,
            next: next.filter(|n| n.min > min),
        }
    }
}

/// Whether an agent that reported `version` (`None`: none yet) is below `min`. An agent that
/// has not reported a version yet is not judged (it gets no jobs before its first heartbeat
/// anyway).
pub fn outdated(version: Option<&str>, min: &Version) -> bool {
    version.is_some_and(|v| version_below(v, min))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    #[test]
    fn default_keeps_the_crate_floor() {
        let r = VersionPolicy::default().requirement(None, 0);
        assert_eq!(r.encode(), "0.1.0");
        assert_eq!(MIN_AGENT_VERSION.to_string(), "0.1.0");
    }

    #[test]
    fn the_effective_minimum_is_the_larger_of_global_and_tenant() {
        let p = VersionPolicy {
            min: v("0.5.0"),
            next: None,
        };
        assert_eq!(p.requirement(None, 0).min, v("0.5.0"));
        assert_eq!(p.requirement(Some(v("0.4.0")), 0).min, v("0.5.0"));
        assert_eq!(p.requirement(Some(v("99.0.0")), 0).min, v("99.0.0"));
    }

    #[test]
    fn the_next_minimum_is_announced_until_its_date_then_required() {
        let p = VersionPolicy {
            min: v("0.1.0"),
            next: Some(Announced {
                min: v("0.2.0"),
                from_s: 1_000,
            }),
        };
        let before = p.requirement(None, 999);
        assert_eq!(before.min, v("0.1.0"));
        assert_eq!(before.next.map(|n| n.min), Some(v("0.2.0")));
        assert_eq!(before.encode(), "0.1.0;next=0.2.0;from=1000");
        let after = p.requirement(None, 1_000);
        assert_eq!((after.min, after.next), (v("0.2.0"), None));
        // A tenant already above the announced minimum hears no announcement.
        let above = p.requirement(Some(v("0.3.0")), 0);
        assert_eq!((above.min, above.next), (v("0.3.0"), None));
    }

    #[test]
    fn outdated_judges_reported_versions_only() {
        assert!(!outdated(None, &v("99.0.0")));
        assert!(outdated(Some("0.1.0"), &v("99.0.0")));
        assert!(outdated(Some("junk"), &v("0.1.0")));
        assert!(!outdated(Some("0.1.0"), &v("0.1.0")));
    }
}
