//! Retention: buyer PII is deleted at most [`MAX_PII_RETENTION_DAYS`] days after delivery,
//! audit entries are kept at least [`MIN_AUDIT_RETENTION_DAYS`] days, and the audit chain's
//! head is signed periodically.
//!
//! [`sweep`] is one pass at an explicit `now`: it purges label bytes and the shipment and
//! tracking ids of label fetches older than the PII retention (see
//! [`Store::purge_pii`]), audits each purged job by id (`pii.purged`), prunes audit
//! entries older than the audit retention behind a signed checkpoint (`audit.pruned`), and
//! deletes notifications older than [`NOTIFICATION_RETENTION_DAYS`] whose webhook delivery
//! is settled (they hold ids only, but would otherwise grow with every job for ever).
//! [`run`] repeats it, and signs checkpoints, until shutdown.
//!
//! "Delivery" is counted from the label's creation: it is never later than the print or the
//! carrier's delivery, so the deadline holds whatever happens to the parcel (the coordinator
//! does not learn delivery dates).
//!
//! What it does not do: crypto-shred tenants on request (the API's deletion route does, with
//! [`Store::shred_tenant`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::services::ca::Identity;
use crate::store::{Store, StoreError};

/// Longest PII retention the configuration accepts, days.
pub const MAX_PII_RETENTION_DAYS: u64 = 30;
/// Shortest audit retention the configuration accepts, days.
pub const MIN_AUDIT_RETENTION_DAYS: u64 = 90;
/// How long a notification (the `GET …/notifications` feed, webhook events) is kept, days;
/// one still owed to a webhook is kept until its delivery is settled.
pub const NOTIFICATION_RETENTION_DAYS: u64 = 30;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// How long things are kept and how often the sweeps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// PII is purged this long after the label's creation (at most 30 days).
    pub pii: Duration,
    /// Audit entries are kept at least this long (at least 90 days).
    pub audit: Duration,
    /// Period of [`sweep`].
    pub every: Duration,
    /// Period of audit checkpoints.
    pub checkpoint_every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            pii: Duration::from_secs(MAX_PII_RETENTION_DAYS * 24 * 3600),
            audit: Duration::from_secs(365 * 24 * 3600),
            every: Duration::from_secs(3600),
            checkpoint_every: Duration::from_secs(3600),
        }
    }
}

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs whose PII was purged.
    pub jobs: usize,
    /// Audit entries pruned.
    pub audit_entries: u64,
    /// Notifications deleted.
    pub notifications: u64,
}

/// One retention pass at `now_ms`. The periods are clamped to the limits (never more than 30
/// days of PII, never less than 90 days of audit) whatever the caller passes.
///
/// # Errors
/// [`StoreError`].
pub fn sweep(store: &Store, cfg: &RetentionConfig, now_ms: u64) -> Result<SweepReport, StoreError> {
    let pii_ms = (cfg.pii.as_millis() as u64).min(MAX_PII_RETENTION_DAYS * DAY_MS);
    let audit_ms = (cfg.audit.as_millis() as u64).max(MIN_AUDIT_RETENTION_DAYS * DAY_MS);
    let purged = store.purge_pii(now_ms.saturating_sub(pii_ms))?;
    let mut by_job: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for (tenant, job, what) in purged {
        by_job.entry((tenant, job)).or_default().push(what);
    }
    for ((tenant, job), what) in &by_job {
        let outcome = format!("ok {}", what.join(","));
        store.audit(
            Some(tenant),
            "coordinator",
            "pii.purged",
            Some(job),
            &outcome,
            now_ms,
        );
    }
    // Idempotency keys expire after 24 h (a claim past that counts as new); drop them.
    store.purge_idempotency(None, now_ms)?;
    let notifications =
        store.prune_notifications(now_ms.saturating_sub(NOTIFICATION_RETENTION_DAYS * DAY_MS))?;
    let pruned = store.prune_audit(now_ms.saturating_sub(audit_ms))?;
    if pruned > 0 {
        store.audit(
            None,
            "coordinator",
            "audit.pruned",
            None,
            &format!("ok entries={pruned}"),
            now_ms,
        );
    }
    Ok(SweepReport {
        jobs: by_job.len(),
        audit_entries: pruned,
        notifications,
    })
}

/// Runs [`sweep`] every `cfg.every` (the first at once) and signs an audit checkpoint every
/// `cfg.checkpoint_every` with the CA key, until `shutdown`. Cancel-safe: it returns when
/// `shutdown` fires; a pass already running on the blocking pool finishes first.
pub async fn run(
    store: Store,
    identity: Arc<Identity>,
    cfg: RetentionConfig,
    shutdown: CancellationToken,
) {
    let mut sweeps = tokio::time::interval(cfg.every);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpoints = tokio::time::interval(cfg.checkpoint_every);
    checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let s = store.clone();
        let pass = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sweeps.tick() => tokio::task::spawn_blocking(move || {
                sweep(&s, &cfg, crate::core::clock::now_ms()).map(|r| {
                    if r.jobs > 0 || r.audit_entries > 0 || r.notifications > 0 {
                        info!(
                            jobs = r.jobs,
                            audit_entries = r.audit_entries,
                            notifications = r.notifications,
                            "retention purged"
                        );
                    }
                })
            }),
            _ = checkpoints.tick() => {
                let id = identity.clone();
                tokio::task::spawn_blocking(move || {
                    s.checkpoint_audit(id.ca_signing_key(), crate::core::clock::now_ms()).map(|cp| {
                        if let Some(cp) = cp {
                            info!(seq = cp.seq, "audit checkpoint signed");
                        }
                    })
                })
            }
        };
        match pass.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "retention pass failed"),
            Err(e) => warn!(error = %e, "retention pass panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use sealprint_protocol::LabelFormat;

    use super::*;
    use crate::core::crypto::MasterKey;
    use crate::store::{JobRecord, JobStatus};

    fn job(tenant: &str, id: &str, at: u64) -> JobRecord {
        JobRecord {
            id: id.into(),
            tenant_id: tenant.into(),
            pool: None,
            requested_printer: None,
            printer: None,
            agent: None,
            status: JobStatus::Printed,
            format: LabelFormat::Zpl,
            label_len: 3,
            label_sha256: "00".into(),
            attempts: 1,
            excluded_printers: vec![],
            attempt_deadline_ms: None,
            expires_at_ms: at,
            created_at_ms: at,
            updated_at_ms: at,
            error: None,
            redacted: false,
            client_reference: None,
            reprint: false,
        }
    }

    #[test]
    fn labels_are_purged_within_the_retention_and_never_later_than_30_days() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 0).expect("tenant").id;
        let day = DAY_MS;
        store
            .create_job(&job(&t, "job-a", day), b"^XAa")
            .expect("job");
        store
            .create_job(&job(&t, "job-b", 5 * day), b"^XAb")
            .expect("job");

        // A configured 60 days is clamped to 30: job-a (day 1) is gone on day 31.
        let long = RetentionConfig {
            pii: Duration::from_secs(60 * 24 * 3600),
            ..RetentionConfig::default()
        };
        assert_eq!(sweep(&store, &long, 31 * day - 1).expect("sweep").jobs, 0);
        assert!(store.label(&t, "job-a").is_ok());
        assert_eq!(sweep(&store, &long, 31 * day).expect("sweep").jobs, 1);
        assert!(store.label(&t, "job-a").is_err());
        assert!(store.label(&t, "job-b").is_ok());

        // Shorter is allowed: 7 days removes job-b on day 12.
        let short = RetentionConfig {
            pii: Duration::from_secs(7 * 24 * 3600),
            ..RetentionConfig::default()
        };
        assert_eq!(sweep(&store, &short, 12 * day).expect("sweep").jobs, 1);
        assert!(store.label(&t, "job-b").is_err());
        let purged: Vec<(Option<String>, String)> = store
            .audit_entries(Some(&t))
            .expect("audit")
            .into_iter()
            .filter(|e| e.entry.action == "pii.purged")
            .map(|e| (e.entry.object, e.entry.outcome))
            .collect();
        assert_eq!(
            purged,
            [
                (Some("job-a".into()), "ok label".into()),
                (Some("job-b".into()), "ok label".into())
            ]
        );
    }

    #[test]
    fn notifications_go_after_thirty_days_unless_owed_and_compliance_keys_stay() {
        use crate::store::{NewNotification, NotificationKind as K, WebhookRecord};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let cfg = RetentionConfig::default();
        let t0 = 1_000 * DAY_MS;
        let quiet = store.create_tenant("quiet", t0).expect("tenant").id;
        let hooked = store.create_tenant("hooked", t0).expect("tenant").id;
        let hook = WebhookRecord {
            tenant_id: hooked.clone(),
            url: "https://hooks.example/x".into(),
            created_at_ms: t0,
            created_by: "u".into(),
        };
        store.set_webhook(&hook, b"secret").expect("webhook");
        let new = |kind, key| NewNotification {
            kind,
            subject: Some("s"),
            due_at_ms: None,
            dedupe_key: key,
        };
        let create = |t: &str, kind, key, at| {
            store
                .create_notification(t, new(kind, key), at)
                .expect("create")
                .is_some()
        };
        assert!(create(&quiet, K::LabelPrinted, "label.printed/j1/1", t0));
        assert!(create(
            &quiet,
            K::ComplianceRestricted,
            "restricted/r1/9",
            t0
        ));
        assert!(create(&hooked, K::AgentOffline, "agent.offline/a1/1", t0));
        let recent = t0 + 20 * DAY_MS;
        assert!(create(&quiet, K::LabelFailed, "label.failed/j2/2", recent));
        // A day short of the retention: nothing goes.
        let report = sweep(&store, &cfg, t0 + 29 * DAY_MS).expect("sweep");
        assert_eq!(report.notifications, 0);
        let report = sweep(&store, &cfg, t0 + 31 * DAY_MS).expect("sweep");
        assert_eq!(
            report.notifications, 2,
            "the two old ones of the quiet tenant"
        );
        let kinds: Vec<K> = store
            .notifications(&quiet)
            .expect("list")
            .iter()
            .map(|n| n.kind)
            .collect();
        assert_eq!(kinds, vec![K::LabelFailed], "the recent one stays");
        // Still owed to the webhook: kept until its delivery is settled.
        assert_eq!(store.notifications(&hooked).expect("list").len(), 1);
        // The event's key went (its time never comes again): the same key may be used anew;
        // the compliance notice's key stays, so the next sweep does not tell the tenant again.
        assert!(create(&quiet, K::LabelPrinted, "label.printed/j1/1", t0));
        assert!(!create(
            &quiet,
            K::ComplianceRestricted,
            "restricted/r1/9",
            t0
        ));
    }

    #[test]
    fn audit_is_kept_at_least_ninety_days() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let id = Identity::create(&store).expect("identity");
        store.audit(None, "coordinator", "x", None, "ok", DAY_MS);
        store.audit(None, "coordinator", "x", None, "ok", DAY_MS);
        store
            .checkpoint_audit(id.ca_signing_key(), DAY_MS)
            .expect("cp");
        store.audit(None, "coordinator", "y", None, "ok", 2 * DAY_MS);
        // A configured 10 days is raised to 90.
        let cfg = RetentionConfig {
            audit: Duration::from_secs(10 * 24 * 3600),
            ..RetentionConfig::default()
        };
        let pruned = |now| sweep(&store, &cfg, now).expect("sweep").audit_entries;
        assert_eq!(pruned(50 * DAY_MS), 0);
        assert_eq!(pruned(91 * DAY_MS), 0);
        assert_eq!(
            pruned(92 * DAY_MS),
            1,
            "up to the checkpointed entry, which stays"
        );
        assert_eq!(store.verify_audit_log(92 * DAY_MS).expect("intact"), 3);
    }
}
