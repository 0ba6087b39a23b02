//! Renewals and tier requirements, as pure functions of a tenant's attestation, its tier of
//! record and an explicit `now`.
//!
//! - [`TierRecord`]: the tier the monitor last established for a tenant, and the deadlines
//!   its upgrades opened ([`TIER_DEADLINE_MS`] after the upgrade). A deadline, once opened,
//!   stays: a tenant whose usage dips below a threshold and rises again gets no new 30 days.
//! - [`evaluate`]: each [`Requirement`] with its [`RequirementState`] and due date: the
//!   security attestation (renewed every year), and the tier's requirements (security
//!   contact and annual questionnaire from Enhanced, SOC 2 / ISO 27001 evidence or the
//!   detailed questionnaire for Enterprise).
//! - [`restriction`]: the first requirement past its date ([`RequirementState::Expired`] or
//!   [`RequirementState::Overdue`]) and the reason shown to the tenant; labels are refused
//!   until it is provided (see [`super::label_gate`]).
//!
//! A requirement due within [`NOTICE_MS`] is [`RequirementState::RenewalDue`]: the monitor
//! sends the renewal notice then. What it does not do: read the store, count usage or send
//! anything (`services::monitor::renewals` does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{attestation_state, Attestation, AttestationState, Tier};

/// Renewal notices go out this long before a requirement expires: 30 days, ms.
pub const NOTICE_MS: u64 = 30 * DAY_MS;
/// A tier upgrade gives this long to meet the new tier's requirements: 30 days, ms.
pub const TIER_DEADLINE_MS: u64 = 30 * DAY_MS;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// The tier the monitor last established for a tenant, and the deadlines of the requirements
/// its upgrades opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierRecord {
    /// The tier of record.
    pub tier: Tier,
    /// Since when, unix ms (0: never changed).
    pub since_ms: u64,
    /// Deadlines opened by upgrades, unix ms.
    #[serde(default)]
    pub deadlines: BTreeMap<RequirementId, u64>,
}

impl TierRecord {
    /// Moves the record to `measured` at `now_ms`; an upgrade opens a deadline for each of the
    /// new tier's requirements that has none yet. Returns the previous tier when it changed.
    pub fn observe(&mut self, measured: Tier, now_ms: u64) -> Option<Tier> {
        if measured == self.tier {
            return None;
        }
        let old = self.tier;
        if measured > old {
            for id in tier_requirements(measured) {
                self.deadlines
                    .entry(*id)
                    .or_insert(now_ms.saturating_add(TIER_DEADLINE_MS));
            }
        }
        self.tier = measured;
        self.since_ms = now_ms;
        Some(old)
    }
}

/// A requirement of the customer security requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RequirementId {
    /// The security attestation (checklist questionnaire), renewed every year.
    #[serde(rename = "security_attestation")]
    SecurityAttestation,
    /// A security contact (Enhanced and above).
    #[serde(rename = "security_contact")]
    SecurityContact,
    /// The annual questionnaire (Enhanced and above), renewed every year.
    #[serde(rename = "annual_questionnaire")]
    AnnualQuestionnaire,
    /// SOC 2 or ISO 27001 evidence, or the detailed questionnaire (Enterprise).
    #[serde(rename = "soc2_iso27001_or_detailed_questionnaire")]
    Certification,
}

impl RequirementId {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementId::SecurityAttestation => "security_attestation",
            RequirementId::SecurityContact => "security_contact",
            RequirementId::AnnualQuestionnaire => "annual_questionnaire",
            RequirementId::Certification => "soc2_iso27001_or_detailed_questionnaire",
        }
    }

    /// Where a tenant provides it.
    pub fn provided_with(self) -> &'static str {
        match self {
            RequirementId::SecurityAttestation => "the security attestation",
            RequirementId::SecurityContact => "`security_contact` in the security attestation",
            RequirementId::AnnualQuestionnaire => {
                "`annual_questionnaire` in the security attestation"
            }
            RequirementId::Certification => "`certification` in the security attestation",
        }
    }
}

/// The requirements a tier adds to the security attestation.
pub fn tier_requirements(tier: Tier) -> &'static [RequirementId] {
    use RequirementId::*;
    match tier {
        Tier::Standard => &[],
        Tier::Enhanced => &[SecurityContact, AnnualQuestionnaire],
        Tier::Enterprise => &[SecurityContact, AnnualQuestionnaire, Certification],
    }
}

/// Where a requirement stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementState {
    /// The attestation was never made (labels are redacted until it is).
    Missing,
    /// The attestation was made but some item does not hold (labels are redacted).
    Incomplete,
    /// Not provided yet; due at the deadline, if one was opened.
    Open {
        /// Deadline, unix ms.
        due_at_ms: Option<u64>,
    },
    /// Met; renewed by the given time, if it expires.
    Met {
        /// Expiry, unix ms.
        renew_by_ms: Option<u64>,
    },
    /// Met, but expires within [`NOTICE_MS`]: the renewal notice is due.
    RenewalDue {
        /// Expiry, unix ms.
        due_at_ms: u64,
    },
    /// Not provided by its deadline: restricts the tenant.
    Overdue {
        /// The missed deadline, unix ms.
        due_at_ms: u64,
    },
    /// Expired without renewal: restricts the tenant.
    Expired {
        /// When it expired, unix ms.
        expired_at_ms: u64,
    },
}

impl RequirementState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementState::Missing => "missing",
            RequirementState::Incomplete => "incomplete",
            RequirementState::Open { .. } => "open",
            RequirementState::Met { .. } => "met",
            RequirementState::RenewalDue { .. } => "renewal_due",
            RequirementState::Overdue { .. } => "overdue",
            RequirementState::Expired { .. } => "expired",
        }
    }

    /// Whether it is met now (possibly with a renewal due soon).
    pub fn met(self) -> bool {
        matches!(
            self,
            RequirementState::Met { .. } | RequirementState::RenewalDue { .. }
        )
    }

    /// Whether it refuses the tenant's labels.
    pub fn restricts(self) -> bool {
        matches!(
            self,
            RequirementState::Overdue { .. } | RequirementState::Expired { .. }
        )
    }

    /// The date that matters: deadline, renewal or expiry, unix ms.
    pub fn due_at_ms(self) -> Option<u64> {
        match self {
            RequirementState::Missing | RequirementState::Incomplete => None,
            RequirementState::Open { due_at_ms } => due_at_ms,
            RequirementState::Met { renew_by_ms } => renew_by_ms,
            RequirementState::RenewalDue { due_at_ms }
            | RequirementState::Overdue { due_at_ms } => Some(due_at_ms),
            RequirementState::Expired { expired_at_ms } => Some(expired_at_ms),
        }
    }
}

/// One requirement and its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// Which.
    pub id: RequirementId,
    /// Its state.
    pub state: RequirementState,
}

/// A requirement that expires at `expires_at_ms`, met until then.
fn expiring(expires_at_ms: u64, now_ms: u64) -> RequirementState {
    if now_ms >= expires_at_ms {
        RequirementState::Expired {
            expired_at_ms: expires_at_ms,
        }
    } else if now_ms.saturating_add(NOTICE_MS) >= expires_at_ms {
        RequirementState::RenewalDue {
            due_at_ms: expires_at_ms,
        }
    } else {
        RequirementState::Met {
            renew_by_ms: Some(expires_at_ms),
        }
    }
}

/// Every requirement of a tenant with `attestation` and tier record `tier` at `now_ms`: the
/// security attestation first, then the tier's requirements.
pub fn evaluate(
    attestation: Option<&Attestation>,
    tier: &TierRecord,
    now_ms: u64,
) -> Vec<Requirement> {
    let att = match attestation_state(attestation, now_ms) {
        AttestationState::Missing => RequirementState::Missing,
        AttestationState::Incomplete => RequirementState::Incomplete,
        AttestationState::Complete { expires_at_ms } => expiring(expires_at_ms, now_ms),
        AttestationState::Expired { expired_at_ms } => RequirementState::Expired { expired_at_ms },
    };
    let mut out = vec![Requirement {
        id: RequirementId::SecurityAttestation,
        state: att,
    }];
    let answers = attestation.map(|a| &a.answers);
    for &id in tier_requirements(tier.tier) {
        let provided = answers.is_some_and(|a| match id {
            RequirementId::SecurityAttestation => true,
            RequirementId::SecurityContact => a.security_contact.is_some(),
            RequirementId::AnnualQuestionnaire => a.annual_questionnaire,
            RequirementId::Certification => a.certification.is_some(),
        });
        let state = match (provided, attestation) {
            // The annual questionnaire is answered with the attestation and renewed with it.
            (true, Some(a)) if id == RequirementId::AnnualQuestionnaire => expiring(
                a.attested_at_ms
                    .saturating_add(super::ATTESTATION_VALIDITY_MS),
                now_ms,
            ),
            (true, _) => RequirementState::Met { renew_by_ms: None },
            (false, _) => match tier.deadlines.get(&id) {
                Some(&due) if now_ms >= due => RequirementState::Overdue { due_at_ms: due },
                due => RequirementState::Open {
                    due_at_ms: due.copied(),
                },
            },
        };
        out.push(Requirement { id, state });
    }
    out
}

/// The date of `ms` (UTC), `YYYY-MM-DD`.
pub fn date(ms: u64) -> String {
    let d = crate::core::clock::amz_date(ms / 1000);
    format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8])
}

/// The requirement that restricts the tenant, if any, with the reason shown to it.
pub fn restriction(requirements: &[Requirement]) -> Option<(Requirement, String)> {
    let r = requirements.iter().find(|r| r.state.restricts())?;
    let reason = match r.state {
        RequirementState::Expired { expired_at_ms } => format!(
            "the {} expired on {}: labels are refused until it is renewed with {}",
            r.id.as_str().replace('_', " "),
            date(expired_at_ms),
            r.id.provided_with()
        ),
        RequirementState::Overdue { due_at_ms } => format!(
            "the tier requirement {} was due on {}: labels are refused until it is provided with {}",
            r.id.as_str(),
            date(due_at_ms),
            r.id.provided_with()
        ),
        _ => return None,
    };
    Some((*r, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::compliance::{Certification, Questionnaire, ATTESTATION_VALIDITY_MS};

    fn attested(at: u64, tweak: impl FnOnce(&mut Questionnaire)) -> Attestation {
        let mut answers = crate::core::compliance::complete_answers();
        tweak(&mut answers);
        Attestation {
            answers,
            attested_at_ms: at,
            attested_by: "usr-1".into(),
        }
    }

    fn state(reqs: &[Requirement], id: RequirementId) -> Option<RequirementState> {
        reqs.iter().find(|r| r.id == id).map(|r| r.state)
    }

    #[test]
    fn the_attestation_is_renewed_every_year() {
        let a = attested(1_000, |_| {});
        let exp = 1_000 + ATTESTATION_VALIDITY_MS;
        let std = TierRecord::default();
        let at = |now| {
            state(
                &evaluate(Some(&a), &std, now),
                RequirementId::SecurityAttestation,
            )
        };
        assert_eq!(
            at(exp - NOTICE_MS - 1),
            Some(RequirementState::Met {
                renew_by_ms: Some(exp)
            })
        );
        assert_eq!(
            at(exp - NOTICE_MS),
            Some(RequirementState::RenewalDue { due_at_ms: exp }),
            "the notice is due 30 days before"
        );
        assert_eq!(
            at(exp),
            Some(RequirementState::Expired { expired_at_ms: exp })
        );
        let (r, reason) = restriction(&evaluate(Some(&a), &std, exp)).expect("restricted");
        assert_eq!(r.id, RequirementId::SecurityAttestation);
        assert!(
            reason.contains("expired on") && reason.contains("renewed"),
            "{reason}"
        );
        assert!(restriction(&evaluate(Some(&a), &std, exp - 1)).is_none());
        // Missing or incomplete attestations redact labels; they do not restrict.
        assert!(restriction(&evaluate(None, &std, exp)).is_none());
    }

    #[test]
    fn upgrades_open_deadlines_once() {
        let mut t = TierRecord::default();
        assert_eq!(t.observe(Tier::Standard, 5), None);
        assert_eq!(t.observe(Tier::Enhanced, 10), Some(Tier::Standard));
        assert_eq!(
            t.deadlines.get(&RequirementId::SecurityContact),
            Some(&(10 + TIER_DEADLINE_MS))
        );
        assert!(!t.deadlines.contains_key(&RequirementId::Certification));
        // Down and up again: the first deadline stands.
        assert_eq!(t.observe(Tier::Standard, 20), Some(Tier::Enhanced));
        assert_eq!(t.observe(Tier::Enterprise, 30), Some(Tier::Standard));
        assert_eq!(
            t.deadlines.get(&RequirementId::SecurityContact),
            Some(&(10 + TIER_DEADLINE_MS))
        );
        assert_eq!(
            t.deadlines.get(&RequirementId::Certification),
            Some(&(30 + TIER_DEADLINE_MS))
        );
        assert_eq!(t.tier, Tier::Enterprise);
        assert_eq!(t.since_ms, 30);
    }

    #[test]
    fn missed_tier_deadlines_restrict_until_provided() {
        let mut t = TierRecord::default();
        t.observe(Tier::Enterprise, 0);
        let due = TIER_DEADLINE_MS;
        let a = attested(0, |_| {});
        let reqs = evaluate(Some(&a), &t, due - 1);
        assert_eq!(
            state(&reqs, RequirementId::Certification),
            Some(RequirementState::Open {
                due_at_ms: Some(due)
            })
        );
        assert!(restriction(&reqs).is_none());
        let reqs = evaluate(Some(&a), &t, due);
        let (r, reason) = restriction(&reqs).expect("restricted");
        assert_eq!(r.id, RequirementId::SecurityContact);
        assert!(reason.contains("was due on"), "{reason}");
        let full = attested(due, |q| {
            q.security_contact = Some("sec@acme.example".into());
            q.annual_questionnaire = true;
            q.certification = Some(Certification::Soc2);
        });
        let reqs = evaluate(Some(&full), &t, due + 1);
        assert!(restriction(&reqs).is_none());
        assert_eq!(
            state(&reqs, RequirementId::AnnualQuestionnaire),
            Some(RequirementState::Met {
                renew_by_ms: Some(due + ATTESTATION_VALIDITY_MS)
            }),
            "renewed yearly"
        );
        assert!(state(&reqs, RequirementId::Certification).is_some_and(RequirementState::met));
        // A Standard tenant has no tier requirements.
        assert_eq!(evaluate(Some(&a), &TierRecord::default(), due).len(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000_000), "2023-11-14");
    }
}
