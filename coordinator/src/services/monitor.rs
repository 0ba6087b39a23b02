//! Monitoring: the alert rules, evaluated by a background sweep and at the events they watch.
//!
//! | rule | evaluated | restricts labels |
//! |---|---|---|
//! | `agent_offline`: [`OFFLINE_MISSED_HEARTBEATS`] heartbeats missed | sweep | no, resolves itself |
//! | `agent_outdated`: version below the tenant's effective minimum ([`VersionPolicy::requirement`]) | sweep | no, resolves itself |
//! | `failed_logins`: [`FAILED_LOGIN_BURST`] failures in the tenant within 15 minutes | each failed login | no |
//! | `label_volume`: an hour far above the tenant's busiest hour of the last 14 days | each label request | yes |
//! | `unusual_hours`: a label at an hour of day the tenant (almost) never prints at | each label request | no |
//! | `canary`: a label request names one of the tenant's canary orders | each label request (API) | yes |
//!
//! The rules are pure functions of their inputs and an explicit `now` ([`agent_offline`],
//! [`crate::core::agents::outdated`], [`volume_spike`], [`unusual_hour`]); [`sweep`], [`label_requested`] and
//! [`login_failed`] apply them to the store and raise alerts through [`raise`], which audits
//! every new alert. A restricting alert refuses the tenant's labels until an owner or a
//! platform admin clears it (`api::alerts`). Alerts hold ids, rule names and counts: no PII.
//!
//! [`renewals`] is the compliance side of the same sweep: tiers of record, renewal notices,
//! and restrictions of tenants that missed a requirement.
//!
//! The `agent_offline` rule's transitions are also webhook events: `agent.offline` when its
//! alert opens, `agent.online` when it resolves (at most one of each per sweep and agent).
//!
//! What it does not do: deliver notifications ([`crate::services::notifications`] does), or watch
//! heartbeats as they arrive (the mesh does not report them; the sweep reads the store).

pub mod renewals;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::core::agents::{outdated, VersionPolicy};
use crate::services::events::Event;
use crate::store::{
    AgentRecord, AlertRecord, AlertRule, AlertState, NotificationKind, Store, StoreError,
};

/// Heartbeats an agent may miss before it is reported offline.
pub const OFFLINE_MISSED_HEARTBEATS: u64 = 3;
/// Failed logins in a tenant within [`FAILED_LOGIN_WINDOW_MS`] that raise an alert.
pub const FAILED_LOGIN_BURST: usize = 10;
/// The window of [`FAILED_LOGIN_BURST`], ms (15 minutes).
pub const FAILED_LOGIN_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Hours of history that make a tenant's baseline (14 days).
pub const BASELINE_HOURS: u64 = 14 * 24;
/// History needed before the volume and hour rules judge a tenant (3 days).
pub const LEARNING_HOURS: u64 = 3 * 24;
/// An hour with more labels than this many times the busiest hour of the baseline is a spike.
pub const VOLUME_FACTOR: u64 = 5;
/// ... and never below this many labels in the hour.
pub const VOLUME_MIN_LABELS: u64 = 50;
/// Labels in the baseline before the hour rule judges a tenant.
pub const HOURS_MIN_LABELS: u64 = 100;
/// An hour of day with less than this share of the baseline's labels (percent) is unusual.
pub const UNUSUAL_HOUR_PERCENT: u64 = 1;

const HOUR_MS: u64 = 3600 * 1000;

/// Whether `agent` has missed [`OFFLINE_MISSED_HEARTBEATS`] heartbeats at `now_ms` (an agent
/// that never sent one counts from its enrollment). Revoked agents are never offline.
pub fn agent_offline(agent: &AgentRecord, heartbeat_interval_ms: u64, now_ms: u64) -> bool {
    let last = agent.last_heartbeat_at_ms.unwrap_or(agent.enrolled_at_ms);
    !agent.revoked
        && now_ms.saturating_sub(last) > OFFLINE_MISSED_HEARTBEATS * heartbeat_interval_ms
}

fn baseline(history: &[(u64, u64)], current_hour: u64) -> Option<&[(u64, u64)]> {
    let first = history.first()?.0;
    (current_hour.saturating_sub(first) >= LEARNING_HOURS).then_some(history)
}

/// Whether `current` labels in `current_hour` are far above the tenant's baseline (`history`:
/// `(hour, count)` of earlier hours, oldest first): more than [`VOLUME_FACTOR`] times its
/// busiest hour and at least [`VOLUME_MIN_LABELS`]. Returns the busiest hour's count when it
/// is a spike. A tenant with less than [`LEARNING_HOURS`] of history is not judged.
pub fn volume_spike(history: &[(u64, u64)], current_hour: u64, current: u64) -> Option<u64> {
    let base = baseline(history, current_hour)?;
    let peak = base
        .iter()
        .filter(|(h, _)| *h < current_hour)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    (current > VOLUME_MIN_LABELS.max(peak.saturating_mul(VOLUME_FACTOR))).then_some(peak)
}

/// Whether `current_hour`'s hour of day (UTC) is unusual for the tenant: less than
/// [`UNUSUAL_HOUR_PERCENT`] of its baseline's labels were at that hour of day. Not judged with
/// less than [`LEARNING_HOURS`] of history or [`HOURS_MIN_LABELS`] labels.
pub fn unusual_hour(history: &[(u64, u64)], current_hour: u64) -> bool {
    let Some(base) = baseline(history, current_hour) else {
        return false;
    };
    let total: u64 = base.iter().map(|(_, n)| n).sum();
    let at_hour: u64 = base
        .iter()
        .filter(|(h, _)| h % 24 == current_hour % 24)
        .map(|(_, n)| n)
        .sum();
    total >= HOURS_MIN_LABELS && at_hour * 100 < total * UNUSUAL_HOUR_PERCENT
}

/// Raises an alert (see [`Store::raise_alert`]); a new one is audited (`alert.opened`, and
/// says whether it restricts the tenant), logged and notified (`alert_opened`).
///
/// # Errors
/// [`StoreError`].
pub fn raise(
    store: &Store,
    tenant: &str,
    rule: AlertRule,
    subject: Option<&str>,
    message: &str,
    now: u64,
) -> Result<AlertRecord, StoreError> {
    let (alert, new) = store.raise_alert(tenant, rule, subject, message, now)?;
    if new {
        let outcome = format!(
            "ok rule={} subject={} restricts={}",
            rule.as_str(),
            subject.unwrap_or("-"),
            alert.restricts
        );
        store.audit(
            Some(tenant),
            "coordinator",
            "alert.opened",
            Some(&alert.id),
            &outcome,
            now,
        );
        warn!(tenant = %tenant, alert = %alert.id, rule = rule.as_str(), subject = subject.unwrap_or("-"), restricts = alert.restricts, "alert opened");
        crate::services::notifications::notify_event(
            store,
            tenant,
            NotificationKind::AlertOpened,
            Some(&alert.id),
            now,
        );
    }
    Ok(alert)
}

/// Resolves the open alerts of `rule` about `subject` (their condition is gone).
fn resolve(
    store: &Store,
    open: &[AlertRecord],
    rule: AlertRule,
    subject: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let mut closed = false;
    for a in open
        .iter()
        .filter(|a| a.rule == rule && a.subject.as_deref() == Some(subject))
    {
        if let Some((_, true)) = store.close_alert(
            &a.tenant_id,
            &a.id,
            AlertState::Resolved,
            "coordinator",
            now,
        )? {
            store.audit(
                Some(&a.tenant_id),
                "coordinator",
                "alert.resolved",
                Some(&a.id),
                "ok",
                now,
            );
            info!(tenant = %a.tenant_id, alert = %a.id, rule = rule.as_str(), "alert resolved");
            closed = true;
        }
    }
    Ok(closed)
}

/// One pass of the rules that watch state rather than events, at `now`: agents offline and
/// below their tenant's minimum version (`versions` raised by the tenant's own), for every
/// tenant; alerts whose condition went away resolve.
/// Also forgets hourly label counts older than the baseline. Returns the open alerts.
///
/// # Errors
/// [`StoreError`].
pub fn sweep(
    store: &Store,
    heartbeat_interval: Duration,
    versions: &VersionPolicy,
    now: u64,
) -> Result<usize, StoreError> {
    let interval_ms = heartbeat_interval.as_millis() as u64;
    let mut open_count = 0;
    for tenant in store.tenants()? {
        let t = tenant.id.as_str();
        let min = versions
            .requirement(store.tenant_min_agent_version(t)?, now / 1000)
            .min;
        let open: Vec<AlertRecord> = store
            .alerts(t)?
            .into_iter()
            .filter(|a| a.state == AlertState::Open)
            .collect();
        for agent in store.agents(t)? {
            let dev = agent.device_id.as_str();
            if agent_offline(&agent, interval_ms, now) {
                let msg =
                    format!("the Print Station missed {OFFLINE_MISSED_HEARTBEATS} heartbeats");
                let was_open = open.iter().any(|a| {
                    a.rule == AlertRule::AgentOffline && a.subject.as_deref() == Some(dev)
                });
                raise(store, t, AlertRule::AgentOffline, Some(dev), &msg, now)?;
                if !was_open {
                    Event::of_fleet(NotificationKind::AgentOffline, t, dev, None, now).write(store);
                }
            } else if resolve(store, &open, AlertRule::AgentOffline, dev, now)? {
                Event::of_fleet(NotificationKind::AgentOnline, t, dev, None, now).write(store);
            }
            match agent.version.as_deref() {
                v if !agent.revoked && outdated(v, &min) => {
                    let msg = format!("the Print Station runs a version below {min}: update it");
                    raise(store, t, AlertRule::AgentOutdated, Some(dev), &msg, now)?;
                }
                _ => {
                    resolve(store, &open, AlertRule::AgentOutdated, dev, now)?;
                }
            }
        }
        store.prune_label_hours(t, (now / HOUR_MS).saturating_sub(BASELINE_HOURS + 1))?;
        open_count += store
            .alerts(t)?
            .iter()
            .filter(|a| a.state == AlertState::Open)
            .count();
    }
    Ok(open_count)
}

/// Counts a label request of `tenant` at `now` and applies the volume and hour rules.
/// Returns the restricting alert when the request makes a volume spike (the caller refuses
/// it).
///
/// # Errors
/// [`StoreError`].
pub fn label_requested(
    store: &Store,
    tenant: &str,
    now: u64,
) -> Result<Option<AlertRecord>, StoreError> {
    let hour = now / HOUR_MS;
    let current = store.count_label_hour(tenant, hour)?;
    let history: Vec<(u64, u64)> = store
        .label_hours(tenant, hour.saturating_sub(BASELINE_HOURS))?
        .into_iter()
        .filter(|(h, _)| *h < hour)
        .collect();
    if unusual_hour(&history, hour) {
        let msg = format!(
            "labels at {:02}:00 UTC, an hour the tenant almost never prints at",
            hour % 24
        );
        raise(
            store,
            tenant,
            AlertRule::UnusualHours,
            Some(&hour.to_string()),
            &msg,
            now,
        )?;
    }
    if let Some(peak) = volume_spike(&history, hour, current) {
        let msg = format!(
            "{current} label requests this hour, over {VOLUME_FACTOR} times the busiest hour of \
             the last 14 days ({peak})"
        );
        return Ok(Some(raise(
            store,
            tenant,
            AlertRule::LabelVolume,
            None,
            &msg,
            now,
        )?));
    }
    Ok(None)
}

/// Counts a failed login of a user of `tenant` at `now` and raises a `failed_logins` alert
/// on a burst.
///
/// # Errors
/// [`StoreError`].
pub fn login_failed(store: &Store, tenant: &str, now: u64) -> Result<(), StoreError> {
    let n = store.record_login_failure(tenant, now, FAILED_LOGIN_WINDOW_MS)?;
    if n >= FAILED_LOGIN_BURST {
        let msg = format!("{n} failed logins in the tenant within 15 minutes");
        raise(store, tenant, AlertRule::FailedLogins, None, &msg, now)?;
    }
    Ok(())
}

/// Runs [`sweep`] and [`renewals::sweep`] every `every` until `shutdown` (the first pass after one period, so agents
/// have reconnected after a restart). Cancel-safe: it returns when `shutdown` fires; a pass
/// already running on the blocking pool finishes first.
pub async fn run(
    store: Store,
    heartbeat_interval: Duration,
    versions: VersionPolicy,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let s = store.clone();
        let pass = tokio::task::spawn_blocking(move || {
            let now = crate::core::clock::now_ms();
            let open = sweep(&s, heartbeat_interval, &versions, now)?;
            Ok::<_, StoreError>((open, renewals::sweep(&s, now)?))
        });
        match pass.await {
            Ok(Ok((open, r))) => info!(
                open_alerts = open,
                tier_changes = r.tier_changes,
                notifications = r.notifications,
                restricted_tenants = r.restricted,
                "monitor pass done"
            ),
            Ok(Err(e)) => warn!(error = %e, "monitor pass failed"),
            Err(e) => warn!(error = %e, "monitor pass panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::MasterKey;

    const DAY_H: u64 = 24;

    fn agent(last: Option<u64>, version: Option<&str>) -> AgentRecord {
        AgentRecord {
            device_id: "dev-1".into(),
            tenant_id: String::new(),
            site_id: "site-1".into(),
            serial: 1,
            certificate: vec![],
            ed25519_public: [0; 32],
            x25519_public: [0; 32],
            hostname: "h".into(),
            enrolled_at_ms: 1_000,
            revoked: false,
            version: version.map(str::to_owned),
            last_heartbeat_at_ms: last,
            clock_offset_ms: None,
            relay: None,
            findings: vec![],
            heartbeat_seq: 0,
        }
    }

    fn open(store: &Store, t: &str, rule: AlertRule) -> Vec<AlertRecord> {
        store
            .alerts(t)
            .expect("alerts")
            .into_iter()
            .filter(|a| a.rule == rule && a.state == AlertState::Open)
            .collect()
    }

    fn store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 0).expect("tenant").id;
        (dir, store, t)
    }

    #[test]
    fn offline_after_three_missed_heartbeats() {
        let a = agent(Some(100_000), None);
        assert!(!agent_offline(&a, 10_000, 130_000));
        assert!(agent_offline(&a, 10_000, 130_001));
        assert!(
            agent_offline(&agent(None, None), 10_000, 31_001),
            "never sent one"
        );
        let revoked = AgentRecord { revoked: true, ..a };
        assert!(!agent_offline(&revoked, 10_000, 1_000_000));
    }

    #[test]
    fn sweep_raises_and_resolves_agent_alerts() {
        let (_d, store, t) = store();
        let mut a = agent(Some(100_000), Some("0.0.1"));
        a.tenant_id = t.clone();
        store.put_agent(&a).expect("agent");
        let hb = Duration::from_secs(10);
        sweep(&store, hb, &VersionPolicy::default(), 120_000).expect("sweep");
        assert!(open(&store, &t, AlertRule::AgentOffline).is_empty());
        assert_eq!(open(&store, &t, AlertRule::AgentOutdated).len(), 1);
        sweep(&store, hb, &VersionPolicy::default(), 140_000).expect("sweep");
        sweep(&store, hb, &VersionPolicy::default(), 150_000).expect("sweep again");
        let off = open(&store, &t, AlertRule::AgentOffline);
        assert_eq!(off.len(), 1, "raised once");
        assert_eq!(off[0].subject.as_deref(), Some("dev-1"));
        assert!(!off[0].restricts);
        // Back online with a current version: both resolve by themselves.
        a.last_heartbeat_at_ms = Some(155_000);
        a.version = Some(crate::core::agents::MIN_AGENT_VERSION.to_string());
        store.put_agent(&a).expect("agent");
        sweep(&store, hb, &VersionPolicy::default(), 160_000).expect("sweep");
        assert!(open(&store, &t, AlertRule::AgentOffline).is_empty());
        assert!(open(&store, &t, AlertRule::AgentOutdated).is_empty());
        let actions: Vec<String> = store
            .audit_entries(Some(&t))
            .expect("audit")
            .into_iter()
            .map(|e| e.entry.action)
            .collect();
        assert_eq!(
            actions,
            [
                "alert.opened",
                "alert.opened",
                "alert.resolved",
                "alert.resolved"
            ]
        );
        // The offline alert's two transitions are webhook events, once each.
        let events: Vec<(String, Option<String>, Option<String>)> = store
            .notifications(&t)
            .expect("notifications")
            .into_iter()
            .rev()
            .filter(|n| n.kind.as_str().starts_with("agent."))
            .map(|n| {
                let agent = n.data.and_then(|d| d.agent_id);
                (n.kind.as_str().to_owned(), n.subject, agent)
            })
            .collect();
        let dev = Some("dev-1".to_owned());
        assert_eq!(
            events,
            [
                ("agent.offline".to_owned(), dev.clone(), dev.clone()),
                ("agent.online".to_owned(), dev.clone(), dev),
            ]
        );
    }

    #[test]
    fn failed_login_burst() {
        let (_d, store, t) = store();
        let min = 60_000;
        for i in 0..FAILED_LOGIN_BURST as u64 - 1 {
            login_failed(&store, &t, i * min).expect("failed");
        }
        assert!(open(&store, &t, AlertRule::FailedLogins).is_empty());
        // Failures spread beyond the window never add up to a burst.
        login_failed(&store, &t, 30 * min).expect("failed");
        assert!(open(&store, &t, AlertRule::FailedLogins).is_empty());
        for i in 0..FAILED_LOGIN_BURST as u64 {
            login_failed(&store, &t, 40 * min + i).expect("failed");
        }
        let alerts = open(&store, &t, AlertRule::FailedLogins);
        assert_eq!(alerts.len(), 1);
        let notes = store.notifications(&t).expect("notifications");
        assert_eq!(notes.len(), 1, "notified once");
        assert_eq!(notes[0].kind, NotificationKind::AlertOpened);
        assert_eq!(notes[0].subject.as_deref(), Some(alerts[0].id.as_str()));
    }

    /// A tenant printing 20 labels an hour from 09:00 to 16:59 UTC, for `days` days.
    fn office_hours(store: &Store, t: &str, days: u64) -> u64 {
        let start = 100 * DAY_H;
        for d in 0..days {
            for h in 9..17 {
                for _ in 0..20 {
                    store
                        .count_label_hour(t, start + d * DAY_H + h)
                        .expect("count");
                }
            }
        }
        start + days * DAY_H
    }

    #[test]
    fn volume_far_above_the_baseline_restricts() {
        let (_d, store, t) = store();
        let today = office_hours(&store, &t, 7);
        let ten = (today + 10) * HOUR_MS;
        for i in 0..VOLUME_FACTOR * 20 {
            assert_eq!(
                label_requested(&store, &t, ten + i).expect("ok"),
                None,
                "{i}"
            );
        }
        let alert = label_requested(&store, &t, ten + 500)
            .expect("ok")
            .expect("spike");
        assert!(alert.restricts && alert.rule == AlertRule::LabelVolume);
        assert_eq!(
            store.restriction(&t).expect("r").map(|a| a.id),
            Some(alert.id)
        );
        // A new tenant (no baseline yet) is not judged.
        let fresh = store.create_tenant("new", 0).expect("tenant").id;
        for i in 0..500 {
            assert_eq!(label_requested(&store, &fresh, ten + i).expect("ok"), None);
        }
    }

    #[test]
    fn labels_at_unusual_hours() {
        let (_d, store, t) = store();
        let today = office_hours(&store, &t, 7);
        label_requested(&store, &t, (today + 11) * HOUR_MS).expect("ok");
        assert!(open(&store, &t, AlertRule::UnusualHours).is_empty());
        label_requested(&store, &t, (today + 3) * HOUR_MS).expect("ok");
        label_requested(&store, &t, (today + 3) * HOUR_MS + 5).expect("ok");
        let alerts = open(&store, &t, AlertRule::UnusualHours);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 2);
        assert!(!alerts[0].restricts);
        assert!(store.restriction(&t).expect("r").is_none());
    }

    #[test]
    fn the_outdated_rule_uses_the_tenant_minimum() {
        let (_d, store, t) = store();
        let mut a = agent(Some(100_000), Some("0.1.0"));
        a.tenant_id = t.clone();
        store.put_agent(&a).expect("agent");
        let (hb, policy) = (Duration::from_secs(10), VersionPolicy::default());
        sweep(&store, hb, &policy, 100_000).expect("sweep");
        assert!(open(&store, &t, AlertRule::AgentOutdated).is_empty());
        let high = sealprint_protocol::Version::new(99, 0, 0);
        store
            .set_tenant_min_agent_version(&t, Some(high))
            .expect("policy");
        sweep(&store, hb, &policy, 101_000).expect("sweep");
        let raised = open(&store, &t, AlertRule::AgentOutdated);
        assert_eq!(raised.len(), 1);
        assert!(
            raised[0].message.contains("99.0.0"),
            "{}",
            raised[0].message
        );
        store
            .set_tenant_min_agent_version(&t, None)
            .expect("policy");
        sweep(&store, hb, &policy, 102_000).expect("sweep");
        assert!(open(&store, &t, AlertRule::AgentOutdated).is_empty());
    }
}
