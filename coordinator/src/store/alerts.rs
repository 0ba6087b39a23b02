//! Monitoring records: alerts, a tenant's canary orders, and the counters the alert rules
//! read (failed logins, labels per hour).
//!
//! - [`AlertRecord`]s live in the `alerts` tree under `"<tenant>/<alert id>"`. An alert is
//!   raised once per rule and subject while it is open ([`Store::raise_alert`] bumps the open
//!   one instead of adding another); a restricting alert keeps the tenant's labels refused
//!   until it is cleared.
//! - Canary order ids: one JSON list per tenant in `canaries`.
//! - Counters in `monitor_counters`: recent failed-login times per tenant, and labels per
//!   hour per tenant (`"<tenant>/h" + hour`), which make the tenant's baseline.
//!
//! Ids, rule names and counts only: no PII. The rules themselves are in `services::monitor`.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{decode, encode, get, prefix, scan, scoped, update, Store, StoreError};
use crate::core::crypto::random_id;

const ALERTS: &str = "alerts";
const CANARIES: &str = "canaries";
const COUNTERS: &str = "monitor_counters";

/// Raising an alert is a read (is one open?) then a write: serialised so two concurrent
/// events never open two alerts for the same thing.
static RAISE: Mutex<()> = Mutex::new(());

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// An agent missed three heartbeats.
    AgentOffline,
    /// An agent runs a version below the minimum.
    AgentOutdated,
    /// A burst of failed logins in the tenant.
    FailedLogins,
    /// Label volume far above the tenant's baseline.
    LabelVolume,
    /// Labels at an hour the tenant does not usually print at.
    UnusualHours,
    /// A label request named a canary order.
    Canary,
}

impl AlertRule {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::AgentOffline => "agent_offline",
            AlertRule::AgentOutdated => "agent_outdated",
            AlertRule::FailedLogins => "failed_logins",
            AlertRule::LabelVolume => "label_volume",
            AlertRule::UnusualHours => "unusual_hours",
            AlertRule::Canary => "canary",
        }
    }

    /// Whether an open alert of this rule refuses the tenant's labels.
    pub fn restricts(self) -> bool {
        matches!(self, AlertRule::LabelVolume | AlertRule::Canary)
    }

    /// Whether the alert closes by itself once its condition is gone (agents back online or
    /// updated); the others stay open until someone clears them.
    pub fn resolves_itself(self) -> bool {
        matches!(self, AlertRule::AgentOffline | AlertRule::AgentOutdated)
    }
}

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Firing (and restricting, for a restricting rule).
    Open,
    /// Its condition went away by itself.
    Resolved,
    /// Cleared by an owner or a platform admin.
    Cleared,
}

impl AlertState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Resolved => "resolved",
            AlertState::Cleared => "cleared",
        }
    }
}

/// An alert of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// `alr-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Rule that fired.
    pub rule: AlertRule,
    /// What it is about: a device id, a user id, an hour; never PII.
    pub subject: Option<String>,
    /// For a person; no PII.
    pub message: String,
    /// Whether it refuses the tenant's labels while open.
    pub restricts: bool,
    /// State.
    pub state: AlertState,
    /// First fired, unix ms.
    pub opened_at_ms: u64,
    /// Last fired, unix ms.
    pub last_seen_at_ms: u64,
    /// How many times it fired while open.
    pub count: u64,
    /// When it was resolved or cleared, unix ms.
    pub closed_at_ms: Option<u64>,
    /// Who cleared it (user id), or `coordinator` when it resolved itself.
    pub closed_by: Option<String>,
}

fn hour_key(tenant_id: &str, hour: u64) -> Vec<u8> {
    let mut k = prefix(tenant_id);
    k.push(b'h');
    k.extend_from_slice(&hour.to_be_bytes());
    k
}

fn failures_key(tenant_id: &str) -> Vec<u8> {
    let mut k = prefix(tenant_id);
    k.extend_from_slice(b"failed_logins");
    k
}

impl Store {
    fn monitor_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Raises an alert of `rule` about `subject`: bumps the open one of the same rule and
    /// subject, or opens a new one. Returns the alert and whether it is new.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn raise_alert(
        &self,
        tenant_id: &str,
        rule: AlertRule,
        subject: Option<&str>,
        message: &str,
        now_ms: u64,
    ) -> Result<(AlertRecord, bool), StoreError> {
        let tree = self.monitor_tree(ALERTS)?;
        let _guard = RAISE.lock().unwrap_or_else(|p| p.into_inner());
        let open = self.alerts(tenant_id)?.into_iter().find(|a| {
            a.state == AlertState::Open && a.rule == rule && a.subject.as_deref() == subject
        });
        if let Some(a) = open {
            let updated = update(
                &tree,
                &scoped(tenant_id, &a.id),
                "alert",
                |a: &mut AlertRecord| {
                    a.last_seen_at_ms = now_ms;
                    a.count += 1;
                },
            )?
            .ok_or(StoreError::NotFound)?;
            return Ok((updated, false));
        }
        let rec = AlertRecord {
            id: random_id("alr"),
            tenant_id: tenant_id.to_owned(),
            rule,
            subject: subject.map(str::to_owned),
            message: message.to_owned(),
            restricts: rule.restricts(),
            state: AlertState::Open,
            opened_at_ms: now_ms,
            last_seen_at_ms: now_ms,
            count: 1,
            closed_at_ms: None,
            closed_by: None,
        };
        tree.insert(scoped(tenant_id, &rec.id), encode(&rec))?;
        Ok((rec, true))
    }

    /// The alerts of a tenant, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn alerts(&self, tenant_id: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let mut all: Vec<AlertRecord> =
            scan(&self.monitor_tree(ALERTS)?, &prefix(tenant_id), "alert")?;
        all.sort_by_key(|a| a.opened_at_ms);
        Ok(all)
    }

    /// An alert of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn alert(&self, tenant_id: &str, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        get(&self.monitor_tree(ALERTS)?, &scoped(tenant_id, id), "alert")
    }

    /// Closes an open alert as `state` (resolved or cleared) by `by`. Returns the alert as it
    /// is now, and whether this call closed it; `None` when there is no such alert.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn close_alert(
        &self,
        tenant_id: &str,
        id: &str,
        state: AlertState,
        by: &str,
        now_ms: u64,
    ) -> Result<Option<(AlertRecord, bool)>, StoreError> {
        let mut closed = false;
        let rec = update(
            &self.monitor_tree(ALERTS)?,
            &scoped(tenant_id, id),
            "alert",
            |a: &mut AlertRecord| {
                closed = a.state == AlertState::Open;
                if closed {
                    a.state = state;
                    a.closed_at_ms = Some(now_ms);
                    a.closed_by = Some(by.to_owned());
                }
            },
        )?;
        Ok(rec.map(|r| (r, closed)))
    }

    /// The open alert that restricts the tenant (the oldest), if any.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn restriction(&self, tenant_id: &str) -> Result<Option<AlertRecord>, StoreError> {
        Ok(self
            .alerts(tenant_id)?
            .into_iter()
            .find(|a| a.state == AlertState::Open && a.restricts))
    }

    /// Replaces a tenant's canary order ids.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn set_canaries(&self, tenant_id: &str, order_ids: &[String]) -> Result<(), StoreError> {
        self.monitor_tree(CANARIES)?
            .insert(tenant_id.as_bytes(), encode(&order_ids))?;
        Ok(())
    }

    /// A tenant's canary order ids.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn canaries(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(get(
            &self.monitor_tree(CANARIES)?,
            tenant_id.as_bytes(),
            "canaries",
        )?
        .unwrap_or_default())
    }

    /// Records a failed login in `tenant_id` at `now_ms` and returns how many happened within
    /// `window_ms` up to now (this one included).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn record_login_failure(
        &self,
        tenant_id: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<usize, StoreError> {
        let tree = self.monitor_tree(COUNTERS)?;
        let key = failures_key(tenant_id);
        loop {
            let old = tree.get(&key)?;
            let mut times: Vec<u64> = match &old {
                Some(v) => decode(v, "failed logins")?,
                None => Vec::new(),
            };
            times.retain(|&t| t <= now_ms && now_ms - t < window_ms);
            // Bounded: only the count within the window matters.
            if times.len() >= 1000 {
                times.remove(0);
            }
            times.push(now_ms);
            let n = times.len();
            if tree
                .compare_and_swap(&key, old, Some(encode(&times)))?
                .is_ok()
            {
                return Ok(n);
            }
        }
    }

    /// Counts one label request of `tenant_id` in `hour` (unix ms / 3600000); returns the
    /// hour's count.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn count_label_hour(&self, tenant_id: &str, hour: u64) -> Result<u64, StoreError> {
        let read = |v: Option<&[u8]>| {
            v.and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        };
        let new = self
            .monitor_tree(COUNTERS)?
            .update_and_fetch(hour_key(tenant_id, hour), |old| {
                Some((read(old) + 1).to_be_bytes().to_vec())
            })?;
        Ok(read(new.as_deref()))
    }

    /// A tenant's label counts per hour from `from_hour` on, as `(hour, count)`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn label_hours(
        &self,
        tenant_id: &str,
        from_hour: u64,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let tree = self.monitor_tree(COUNTERS)?;
        let mut out = Vec::new();
        for kv in tree.range(hour_key(tenant_id, from_hour)..hour_key(tenant_id, u64::MAX)) {
            let (k, v) = kv?;
            let hour = k
                .get(k.len().saturating_sub(8)..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or(StoreError::Corrupt("label counter"))?;
            let count = <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("label counter"))?;
            out.push((hour, count));
        }
        Ok(out)
    }

    /// Forgets a tenant's hourly label counts before `before_hour`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn prune_label_hours(&self, tenant_id: &str, before_hour: u64) -> Result<(), StoreError> {
        let tree = self.monitor_tree(COUNTERS)?;
        for kv in tree.range(hour_key(tenant_id, 0)..hour_key(tenant_id, before_hour)) {
            let (k, _) = kv?;
            tree.remove(k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::core::crypto::MasterKey;
    use crate::store::{AlertRule, AlertState, Store};

    #[test]
    fn alerts_are_deduplicated_and_closed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let (a, new) = store
            .raise_alert("tnt-1", AlertRule::Canary, Some("usr-1"), "m", 1)
            .expect("raise");
        assert!(new && a.restricts);
        let (b, new) = store
            .raise_alert("tnt-1", AlertRule::Canary, Some("usr-1"), "m", 2)
            .expect("raise");
        assert!(!new);
        assert_eq!((b.id.as_str(), b.count), (a.id.as_str(), 2));
        assert_eq!(
            store.restriction("tnt-1").expect("r").map(|r| r.id),
            Some(a.id.clone())
        );
        assert!(store.restriction("tnt-2").expect("r").is_none());
        let (c, closed) = store
            .close_alert("tnt-1", &a.id, AlertState::Cleared, "usr-0", 3)
            .expect("close")
            .expect("exists");
        assert!(closed && c.state == AlertState::Cleared);
        let (_, closed) = store
            .close_alert("tnt-1", &a.id, AlertState::Cleared, "usr-0", 4)
            .expect("close")
            .expect("exists");
        assert!(!closed, "closing twice is a no-op");
        assert!(store.restriction("tnt-1").expect("r").is_none());
    }

    #[test]
    fn counters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        assert_eq!(store.record_login_failure("t", 1000, 500).expect("n"), 1);
        assert_eq!(store.record_login_failure("t", 1200, 500).expect("n"), 2);
        assert_eq!(store.record_login_failure("t", 1600, 500).expect("n"), 2);
        assert_eq!(store.record_login_failure("u", 1600, 500).expect("n"), 1);
        for h in [5, 5, 7] {
            store.count_label_hour("t", h).expect("count");
        }
        store.count_label_hour("tt", 6).expect("count");
        assert_eq!(store.label_hours("t", 0).expect("h"), [(5, 2), (7, 1)]);
        assert_eq!(store.label_hours("t", 6).expect("h"), [(7, 1)]);
        store.prune_label_hours("t", 6).expect("prune");
        assert_eq!(store.label_hours("t", 0).expect("h"), [(7, 1)]);
    }
}
