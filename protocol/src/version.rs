//! Agent versions and the coordinator's version requirement.
//!
//! - [`Version`]: a strict `MAJOR.MINOR.PATCH` (digits only, no leading zeros), ordered. What an
//!   operator configures is parsed with it, so a typo is an error at start-up, not a silent
//!   "everything is outdated".
//! - [`version_below`]: whether the version string an agent reports is below a minimum. It is
//!   lenient with what it is judging (`v` prefix, pre-release, build metadata) but an agent
//!   whose version does not parse at all is below: it cannot be vouched for.
//! - [`Requirement`]: what the coordinator requires now, and the next minimum it announces
//!   with the date it takes effect (the warning window). It travels in the existing
//!   [`crate::HeartbeatReply::min_version`] string (see [`Requirement::encode`]): a new field of
//!   `HeartbeatReply` would break every agent already deployed, since postcard is not
//!   self-describing and the reply is signed over its exact encoding (the `reply` module's
//!   tests prove it).
//!
//! What it does not do: decide what an outdated agent may do (the coordinator's dispatch
//! does), or read a clock (callers pass `now`).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Longest requirement string accepted from the wire.
pub const MAX_REQUIREMENT_LEN: usize = 128;

/// Why a version or requirement was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VersionError {
    /// Not `MAJOR.MINOR.PATCH` of decimal digits without leading zeros.
    #[error("not a version of the form MAJOR.MINOR.PATCH (digits only)")]
    Malformed,
    /// A requirement string that is not `MIN[;next=NEXT;from=UNIX_SECONDS]`.
    #[error("not a version requirement")]
    BadRequirement,
}

/// A release version, `MAJOR.MINOR.PATCH`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }
}

fn number(s: &str) -> Result<u64, VersionError> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(VersionError::Malformed);
    }
    s.parse().map_err(|_| VersionError::Malformed)
}

impl FromStr for Version {
    type Err = VersionError;

    /// Strict: exactly three dot-separated decimal numbers, nothing around them.
    fn from_str(s: &str) -> Result<Version, VersionError> {
        let mut parts = s.split('.');
        let mut next = || number(parts.next().ok_or(VersionError::Malformed)?);
        let v = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(VersionError::Malformed);
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Whether the `reported` version string is below `min`. A pre-release (`1.2.0-rc.1`) is
/// below its release; build metadata is ignored; a string that does not parse is below.
pub fn version_below(reported: &str, min: &Version) -> bool {
    let v = reported.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.split('+').next().unwrap_or_default();
    let (core, pre) = match v.split_once('-') {
        Some((core, _)) => (core, true),
        None => (v, false),
    };
    match core.parse::<Version>() {
        Ok(v) => v < *min || (v == *min && pre),
        Err(_) => true,
    }
}

/// A next minimum announced ahead of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// The coming minimum.
    pub min: Version,
    /// When it takes effect, unix seconds.
    pub from_s: u64,
}

/// What the coordinator requires of an agent, as a heartbeat reply carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The oldest version served now: an agent below it gets no jobs.
    pub min: Version,
    /// The next minimum, announced during its warning window.
    pub next: Option<Announced>,
}

impl Requirement {
    /// The wire form: `MIN`, or `MIN;next=NEXT;from=UNIX_SECONDS` with an announcement.
    /// Agents that predate announcements ignore the string altogether; ones that only know
    /// `MIN` read up to the first `;`.
    pub fn encode(&self) -> String {
        match self.next {
            None => self.min.to_string(),
            Some(n) => format!("{};next={};from={}", self.min, n.min, n.from_s),
        }
    }

    /// Parses [`Requirement::encode`]'s form.
    ///
    /// # Errors
    /// [`VersionError`] when the string is too long, a version is not strict, or the
    /// announcement is incomplete.
    pub fn parse(s: &str) -> Result<Requirement, VersionError> {
        if s.len() > MAX_REQUIREMENT_LEN {
            return Err(VersionError::BadRequirement);
        }
        let mut parts = s.split(';');
        let min = parts.next().unwrap_or_default().parse()?;
        let next = match (parts.next(), parts.next(), parts.next()) {
            (None, None, None) => None,
            (Some(next), Some(from), None) => {
                let next = next
                    .strip_prefix("next=")
                    .ok_or(VersionError::BadRequirement)?;
                let from = from
                    .strip_prefix("from=")
                    .ok_or(VersionError::BadRequirement)?;
                Some(Announced {
                    min: next.parse()?,
                    from_s: number(from).map_err(|_| VersionError::BadRequirement)?,
                })
            }
            _ => return Err(VersionError::BadRequirement),
        };
        Ok(Requirement { min, next })
    }

    /// Whether an agent reporting `version` is below the minimum now.
    pub fn outdated(&self, version: &str) -> bool {
        version_below(version, &self.min)
    }

    /// The announced minimum that an agent reporting `version` is below, if any.
    pub fn due(&self, version: &str) -> Option<Announced> {
        self.next.filter(|n| version_below(version, &n.min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(v("0.1.0"), Version::new(0, 1, 0));
        assert_eq!(v("10.20.300"), Version::new(10, 20, 300));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.2.3-rc.1",
            "1.2.3+b",
            " 1.2.3",
            "1.2.x",
            "01.2.3",
            "1..3",
            "1.2.-3",
            "+1.2.3",
            "99999999999999999999.0.0",
        ] {
            assert_eq!(
                bad.parse::<Version>(),
                Err(VersionError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn versions_order_numerically() {
        assert!(v("0.10.0") > v("0.9.1"));
        assert!(v("1.0.0") > v("0.99.99"));
        assert!(v("2.0.0") == v("2.0.0"));
    }

    #[test]
    fn reported_versions_are_judged_leniently_but_safely() {
        let min = v("0.1.0");
        assert!(version_below("0.0.9", &min));
        assert!(version_below("0.1.0-rc.1", &min));
        assert!(version_below("garbage", &min));
        assert!(version_below("", &min));
        assert!(!version_below("0.1.0", &min));
        assert!(!version_below("v0.1.0", &min));
        assert!(!version_below("0.1.0+build.5", &min));
        assert!(!version_below("0.10.0", &v("0.9.1")));
        assert!(version_below("0.1.0", &v("99.0.0")));
    }

    #[test]
    fn requirements_round_trip_and_refuse_junk() {
        let plain = Requirement {
            min: v("0.1.0"),
            next: None,
        };
        assert_eq!(plain.encode(), "0.1.0");
        assert_eq!(Requirement::parse("0.1.0"), Ok(plain));
        let announced = Requirement {
            min: v("0.1.0"),
            next: Some(Announced {
                min: v("0.2.0"),
                from_s: 1_767_225_600,
            }),
        };
        assert_eq!(announced.encode(), "0.1.0;next=0.2.0;from=1767225600");
        assert_eq!(Requirement::parse(&announced.encode()), Ok(announced));
        for bad in [
            "",
            "0.1",
            "0.1.0;",
            "0.1.0;next=0.2.0",
            "0.1.0;from=1;next=0.2.0",
            "0.1.0;next=0.2.0;from=soon",
            "0.1.0;next=0.2.0;from=1;x=2",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Requirement::parse(&"9".repeat(MAX_REQUIREMENT_LEN + 1)).is_err());
    }

    #[test]
    fn outdated_and_due_follow_the_agent_version() {
        let r = Requirement::parse("0.2.0;next=0.3.0;from=100").expect("parses");
        assert!(r.outdated("0.1.9"));
        assert!(!r.outdated("0.2.0"));
        assert_eq!(r.due("0.2.5").map(|n| n.min), Some(v("0.3.0")));
        assert_eq!(r.due("0.3.0"), None);
    }
}
