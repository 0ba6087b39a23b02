//! The compliance side of the monitor's sweep, at an explicit `now`: tiers of record,
//! renewal notices, and restrictions of tenants that missed a requirement.
//!
//! For every tenant, [`sweep`]:
//! 1. measures its [`Usage`] and moves its tier of record
//!    ([`crate::core::compliance::requirements::TierRecord::observe`]); a change is audited
//!    (`tier.changed`), an upgrade notifies (`tier_upgraded`, due at the new requirements'
//!    deadline, 30 days later);
//! 2. evaluates its requirements: one within 30 days of expiry gets a `renewal_due` notice;
//!    a tier requirement still missing [`DEADLINE_REMINDER_MS`] before its deadline gets a
//!    `requirement_due` reminder; one expired or overdue gets a `compliance_restricted`
//!    notice, audited once as `compliance.restricted`.
//!
//! Each notice is created once per requirement and date (dedupe keys), so the sweep can run
//! as often as it likes. The restriction itself is not stored: the label gate evaluates the
//! same requirements at each request, so it begins exactly at the deadline and ends as soon
//! as the requirement is provided.
//!
//! What it does not do: deliver notifications (see [`crate::services::notifications`]).

use tracing::{info, warn};

use crate::core::compliance::requirements::{evaluate, tier_requirements, RequirementState};
use crate::core::compliance::{tier_for, Tier};
use crate::store::{NewNotification, NotificationKind, Store, StoreError};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// A missing tier requirement is reminded of this long before its deadline: 7 days, ms.
pub const DEADLINE_REMINDER_MS: u64 = 7 * DAY_MS;

/// What a tenant's tier is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Labels requested in the last 30 days.
    pub labels_30d: u64,
    /// Enrolled, not revoked, Print Stations.
    pub stations: u64,
    /// Merchants: seller (SP-API) connections, at least one (the tenant itself).
    pub merchants: u64,
}

impl Usage {
    /// The tier this usage puts a tenant in.
    pub fn tier(&self) -> Tier {
        tier_for(self.labels_30d, self.stations, self.merchants)
    }
}

/// Measures a tenant's usage at `now_ms`.
///
/// # Errors
/// [`StoreError`].
pub fn usage(store: &Store, tenant: &str, now_ms: u64) -> Result<Usage, StoreError> {
    Ok(Usage {
        labels_30d: store.jobs_created_since(tenant, now_ms.saturating_sub(30 * DAY_MS))?,
        stations: store.agents(tenant)?.iter().filter(|a| !a.revoked).count() as u64,
        merchants: (store.spapi_connections(tenant)?.len() as u64).max(1),
    })
}

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenewalReport {
    /// Tenants whose tier of record changed.
    pub tier_changes: usize,
    /// Notifications created.
    pub notifications: usize,
    /// Tenants restricted by a missed requirement now.
    pub restricted: usize,
}

/// One pass over every tenant at `now_ms` (see the module docs).
///
/// # Errors
/// [`StoreError`].
pub fn sweep(store: &Store, now_ms: u64) -> Result<RenewalReport, StoreError> {
    let mut report = RenewalReport::default();
    for tenant in store.tenants()? {
        tenant_pass(store, &tenant.id, now_ms, &mut report)?;
    }
    Ok(report)
}

fn notify(
    store: &Store,
    tenant: &str,
    new: NewNotification<'_>,
    now: u64,
    report: &mut RenewalReport,
) -> Result<bool, StoreError> {
    let Some(n) = store.create_notification(tenant, new, now)? else {
        return Ok(false);
    };
    report.notifications += 1;
    info!(tenant = %tenant, notification = %n.id, kind = n.kind.as_str(), "notification created");
    Ok(true)
}

fn tenant_pass(
    store: &Store,
    t: &str,
    now: u64,
    report: &mut RenewalReport,
) -> Result<(), StoreError> {
    let measured = usage(store, t, now)?.tier();
    let Some(mut rec) = store.tenant(t)? else {
        return Ok(());
    };
    let mut change = None;
    if rec.tier.tier != measured {
        match store.update_tenant(t, |r| change = r.tier.observe(measured, now))? {
            Some(r) => rec = r,
            None => return Ok(()),
        }
    }
    if let Some(old) = change {
        report.tier_changes += 1;
        let outcome = format!("ok from={} to={}", old.as_str(), measured.as_str());
        store.audit(
            Some(t),
            "coordinator",
            "tier.changed",
            Some(t),
            &outcome,
            now,
        );
        info!(tenant = %t, from = old.as_str(), to = measured.as_str(), "tier changed");
        if measured > old {
            let due = tier_requirements(measured)
                .iter()
                .filter_map(|id| rec.tier.deadlines.get(id).copied())
                .min();
            let key = format!("tier_upgraded/{}/{now}", measured.as_str());
            let new = NewNotification {
                kind: NotificationKind::TierUpgraded,
                subject: Some(measured.as_str()),
                due_at_ms: due,
                dedupe_key: &key,
            };
            notify(store, t, new, now, report)?;
        }
    }
    let mut restricted = false;
    for r in evaluate(rec.attestation.as_ref(), &rec.tier, now) {
        let (kind, due) = match r.state {
            RequirementState::RenewalDue { due_at_ms } => (NotificationKind::RenewalDue, due_at_ms),
            RequirementState::Open {
                due_at_ms: Some(due),
            } if now.saturating_add(DEADLINE_REMINDER_MS) >= due => {
                (NotificationKind::RequirementDue, due)
            }
            RequirementState::Overdue { due_at_ms }
            | RequirementState::Expired {
                expired_at_ms: due_at_ms,
            } => {
                restricted = true;
                (NotificationKind::ComplianceRestricted, due_at_ms)
            }
            _ => continue,
        };
        let key = format!("{}/{}/{due}", kind.as_str(), r.id.as_str());
        let new = NewNotification {
            kind,
            subject: Some(r.id.as_str()),
            due_at_ms: Some(due),
            dedupe_key: &key,
        };
        if notify(store, t, new, now, report)? && kind == NotificationKind::ComplianceRestricted {
            let outcome = format!(
                "ok requirement={} state={} due_at={due}",
                r.id.as_str(),
                r.state.as_str()
            );
            store.audit(
                Some(t),
                "coordinator",
                "compliance.restricted",
                Some(t),
                &outcome,
                now,
            );
            warn!(tenant = %t, requirement = r.id.as_str(), "tenant restricted: requirement missed");
        }
    }
    report.restricted += usize::from(restricted);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::compliance::requirements::{NOTICE_MS, TIER_DEADLINE_MS};
    use crate::core::compliance::{
        label_gate, Attestation, GateRefusal, LabelMode, Questionnaire, SubscriptionState,
        ATTESTATION_VALIDITY_MS,
    };
    use crate::core::crypto::MasterKey;
    use crate::store::{AgentRecord, NotificationRecord, TenantRecord};

    const T0: u64 = 1_700_000_000_000;

    fn store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", T0).expect("tenant").id;
        (dir, store, t)
    }

    fn attest(store: &Store, t: &str, at: u64, tweak: impl Fn(&mut Questionnaire)) {
        let mut answers = crate::core::compliance::complete_answers();
        tweak(&mut answers);
        store
            .update_tenant(t, |r| {
                r.attestation = Some(Attestation {
                    answers: answers.clone(),
                    attested_at_ms: at,
                    attested_by: "usr-1".into(),
                });
            })
            .expect("attest");
    }

    fn gate(store: &Store, t: &str, now: u64) -> Result<LabelMode, GateRefusal> {
        let r: TenantRecord = store.tenant(t).expect("read").expect("tenant");
        label_gate(
            None,
            SubscriptionState::Active,
            r.attestation.as_ref(),
            &r.tier,
            now,
        )
    }

    fn kinds(store: &Store, t: &str) -> Vec<(&'static str, Option<String>)> {
        let mut n: Vec<NotificationRecord> = store.notifications(t).expect("list");
        n.reverse();
        n.into_iter()
            .map(|n| (n.kind.as_str(), n.subject))
            .collect()
    }

    fn actions(store: &Store, t: &str) -> Vec<String> {
        store
            .audit_entries(Some(t))
            .expect("audit")
            .into_iter()
            .map(|e| e.entry.action)
            .collect()
    }

    #[test]
    fn renewal_notice_thirty_days_before_then_restriction_until_renewed() {
        let (_d, store, t) = store();
        attest(&store, &t, T0, |_| {});
        let expiry = T0 + ATTESTATION_VALIDITY_MS;
        sweep(&store, expiry - NOTICE_MS - 1).expect("sweep");
        assert!(kinds(&store, &t).is_empty(), "no notice before 30 days");
        for _ in 0..2 {
            sweep(&store, expiry - NOTICE_MS).expect("sweep");
        }
        let notice = ("renewal_due", Some("security_attestation".to_owned()));
        assert_eq!(
            kinds(&store, &t),
            std::slice::from_ref(&notice),
            "one notice"
        );
        assert_eq!(
            store.notifications(&t).expect("list")[0].due_at_ms,
            Some(expiry)
        );
        assert_eq!(gate(&store, &t, expiry - 1), Ok(LabelMode::Full));

        let report = sweep(&store, expiry).expect("sweep");
        assert_eq!(report.restricted, 1);
        sweep(&store, expiry + 1).expect("sweep again");
        assert_eq!(
            kinds(&store, &t),
            [
                notice,
                (
                    "compliance_restricted",
                    Some("security_attestation".to_owned())
                )
            ]
        );
        assert_eq!(
            actions(&store, &t),
            ["compliance.restricted"],
            "audited once"
        );
        match gate(&store, &t, expiry) {
            Err(GateRefusal::Restricted(reason)) => {
                assert!(reason.contains("expired on"), "{reason}")
            }
            other => panic!("labels must be refused: {other:?}"),
        }
        // Renewed: labels flow again at once, without waiting for a sweep.
        attest(&store, &t, expiry + 5, |_| {});
        assert_eq!(gate(&store, &t, expiry + 6), Ok(LabelMode::Full));
    }

    fn station(store: &Store, t: &str, n: usize) {
        store
            .put_agent(&AgentRecord {
                device_id: format!("dev-{n}"),
                tenant_id: t.into(),
                site_id: "site-1".into(),
                serial: n as u64,
                certificate: vec![],
                ed25519_public: [0; 32],
                x25519_public: [0; 32],
                hostname: "h".into(),
                enrolled_at_ms: T0,
                revoked: false,
                version: None,
                last_heartbeat_at_ms: None,
                clock_offset_ms: None,
                relay: None,
                findings: vec![],
                heartbeat_seq: 0,
            })
            .expect("agent");
    }

    #[test]
    fn a_tier_upgrade_notifies_and_restricts_after_its_deadline() {
        let (_d, store, t) = store();
        attest(&store, &t, T0, |_| {});
        sweep(&store, T0).expect("sweep");
        assert!(kinds(&store, &t).is_empty(), "standard: nothing to do");
        for n in 0..6 {
            station(&store, &t, n);
        }
        let up = T0 + 1000;
        let report = sweep(&store, up).expect("sweep");
        assert_eq!(report.tier_changes, 1);
        sweep(&store, up + 1).expect("sweep again");
        assert_eq!(
            kinds(&store, &t),
            [("tier_upgraded", Some("enhanced".to_owned()))]
        );
        let n = &store.notifications(&t).expect("list")[0];
        assert_eq!(n.due_at_ms, Some(up + TIER_DEADLINE_MS));
        assert_eq!(actions(&store, &t), ["tier.changed"]);

        let due = up + TIER_DEADLINE_MS;
        sweep(&store, due - DEADLINE_REMINDER_MS - 1).expect("sweep");
        assert_eq!(kinds(&store, &t).len(), 1, "no reminder yet");
        sweep(&store, due - DEADLINE_REMINDER_MS).expect("sweep");
        assert_eq!(
            kinds(&store, &t)[1..],
            [
                ("requirement_due", Some("security_contact".to_owned())),
                ("requirement_due", Some("annual_questionnaire".to_owned())),
            ],
            "a reminder a week before the deadline"
        );
        assert_eq!(gate(&store, &t, due - 1), Ok(LabelMode::Full));
        sweep(&store, due).expect("sweep");
        assert!(matches!(
            gate(&store, &t, due),
            Err(GateRefusal::Restricted(r)) if r.contains("security_contact")
        ));
        assert_eq!(
            kinds(&store, &t).len(),
            5,
            "one restriction per requirement"
        );
        attest(&store, &t, due + 1, |q| {
            q.security_contact = Some("sec@acme.example".into());
            q.annual_questionnaire = true;
        });
        assert_eq!(gate(&store, &t, due + 2), Ok(LabelMode::Full));
        // Usage falls: the tier of record follows, without a notice.
        for n in 0..6 {
            store.revoke_agent(&t, &format!("dev-{n}")).expect("revoke");
        }
        sweep(&store, due + 3).expect("sweep");
        let r = store.tenant(&t).expect("read").expect("tenant");
        assert_eq!(r.tier.tier, Tier::Standard);
        assert_eq!(kinds(&store, &t).len(), 5);
    }
}
