//! Where this agent stands against the coordinator's version requirement, read from the
//! `min_version` of each signed heartbeat reply ([`sealprint_protocol::Requirement`]): whether
//! it is below the minimum (the coordinator then sends it no jobs), and the next minimum the
//! coordinator announced with the time it takes effect. The mesh event loop logs a change once
//! and puts the standing in the status snapshot; `status` and `doctor` show it.
//!
//! Pure: the caller passes the agent's own version and the reply's text.

use sealprint_protocol::{Requirement, VersionError};
use serde::{Deserialize, Serialize};

/// This agent's standing against the coordinator's requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The oldest version the coordinator serves now.
    pub min_version: String,
    /// Whether this agent is below it (it gets no jobs until updated).
    pub outdated: bool,
    /// The next minimum announced, when this agent is below it.
    pub next_min_version: Option<String>,
    /// When that next minimum takes effect, unix seconds.
    pub next_min_version_from_s: Option<u64>,
}

impl Standing {
    /// Judges `own` (this agent's version) against the requirement text of a reply.
    ///
    /// # Errors
    /// [`VersionError`] when the text is not a requirement.
    pub fn judge(own: &str, wire: &str) -> Result<Standing, VersionError> {
        let r = Requirement::parse(wire)?;
        let due = r.due(own);
        Ok(Standing {
            min_version: r.min.to_string(),
            outdated: r.outdated(own),
            next_min_version: due.map(|n| n.min.to_string()),
            next_min_version_from_s: due.map(|n| n.from_s),
        })
    }

    /// What to install, for a person, when this agent is outdated now.
    pub fn advice(&self, own: &str) -> Option<String> {
        self.outdated.then(|| {
            format!(
                "this agent is {own}, the coordinator requires ≥ {min}: install sealprint-agent \
                 {min} or later",
                min = self.min_version
            )
        })
    }

    /// What to install before the announced minimum takes effect, when this agent is below it.
    pub fn notice(&self, own: &str) -> Option<String> {
        let (next, from) = (
            self.next_min_version.as_ref()?,
            self.next_min_version_from_s?,
        );
        Some(format!(
            "this agent is {own}, the coordinator will require ≥ {next} from {from} (unix \
             seconds): install sealprint-agent {next} or later before then"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_the_minimum_and_the_announcement() {
        let s = Standing::judge("0.1.0", "99.0.0").expect("judged");
        assert!(s.outdated);
        assert_eq!(s.min_version, "99.0.0");
        assert_eq!(
            s.advice("0.1.0").as_deref(),
            Some(
                "this agent is 0.1.0, the coordinator requires ≥ 99.0.0: install \
                 sealprint-agent 99.0.0 or later"
            )
        );
        assert_eq!(s.notice("0.1.0"), None);

        let s = Standing::judge("0.1.0", "0.1.0;next=0.2.0;from=1767225600").expect("judged");
        assert!(!s.outdated);
        assert_eq!(s.advice("0.1.0"), None);
        assert_eq!(s.next_min_version.as_deref(), Some("0.2.0"));
        assert_eq!(s.next_min_version_from_s, Some(1_767_225_600));
        assert!(s.notice("0.1.0").expect("notice").contains("0.2.0"));

        // Already at the announced version: nothing to announce.
        let s = Standing::judge("0.2.0", "0.1.0;next=0.2.0;from=1").expect("judged");
        assert_eq!((s.outdated, s.next_min_version), (false, None));
        assert!(Standing::judge("0.1.0", "soon").is_err());
    }
}
