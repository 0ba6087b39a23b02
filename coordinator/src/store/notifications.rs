//! Notifications of tenants and their outgoing webhook.
//!
//! - A [`NotificationRecord`] lives in `notifications` under `"<tenant>/<id>"`. It is created
//!   at most once per dedupe key (`notification_keys`, `"<tenant>/<key>"` → id), so a sweep
//!   that runs again never notifies twice about the same thing. It holds ids, kinds and dates
//!   only: no PII.
//! - While a delivery is owed, `notification_outbox` holds `"<tenant>/<id>"`; the deliverer
//!   reads only that tree.
//! - A tenant's webhook: its public part ([`WebhookRecord`]) in `webhooks` under the tenant id,
//!   its signing secret in `webhook_secrets`, encrypted under the tenant's data key and bound
//!   to the tenant (deleting the tenant key shreds it, like the SP-API secrets).

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use zeroize::Zeroizing;

use super::{decode, encode, get, prefix, scan, scoped, tx_err, update, Store, StoreError};
use crate::core::crypto::random_id;

const NOTIFICATIONS: &str = "notifications";
const KEYS: &str = "notification_keys";
const OUTBOX: &str = "notification_outbox";
const WEBHOOKS: &str = "webhooks";
const WEBHOOK_SECRETS: &str = "webhook_secrets";

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The tenant's tier rose; its new requirements are due at `due_at`.
    TierUpgraded,
    /// A requirement expires at `due_at`: renew it.
    RenewalDue,
    /// A tier requirement is still missing and due at `due_at`: a reminder.
    RequirementDue,
    /// A requirement expired or is overdue: labels are refused until it is provided.
    ComplianceRestricted,
    /// An alert opened (`subject`: its id; see `GET …/alerts`).
    AlertOpened,
    /// A platform admin suspended the tenant.
    TenantSuspended,
    /// A platform admin resumed the tenant.
    TenantResumed,
    /// Asked for with `POST …/webhook/test`, to check the receiver.
    WebhookTest,
    /// A label job printed (`subject`: the job id).
    LabelPrinted,
    /// A label job failed for good.
    LabelFailed,
    /// A label job's outcome is unknown: an operator resolves it.
    LabelInDoubt,
    /// An operator resolved a job in doubt (`data.outcome`: `printed` or `not_printed`).
    LabelResolved,
    /// An agent missed its heartbeats (`subject`: the device id).
    AgentOffline,
    /// An agent that was offline is heard again.
    AgentOnline,
    /// An agent reported that a printer failed its verification (`subject`: the printer id).
    PrinterRefused,
}

impl NotificationKind {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::TierUpgraded => "tier_upgraded",
            NotificationKind::RenewalDue => "renewal_due",
            NotificationKind::RequirementDue => "requirement_due",
            NotificationKind::ComplianceRestricted => "compliance_restricted",
            NotificationKind::AlertOpened => "alert_opened",
            NotificationKind::TenantSuspended => "tenant_suspended",
            NotificationKind::TenantResumed => "tenant_resumed",
            NotificationKind::WebhookTest => "webhook_test",
            NotificationKind::LabelPrinted => "label.printed",
            NotificationKind::LabelFailed => "label.failed",
            NotificationKind::LabelInDoubt => "label.in_doubt",
            NotificationKind::LabelResolved => "label.resolved",
            NotificationKind::AgentOffline => "agent.offline",
            NotificationKind::AgentOnline => "agent.online",
            NotificationKind::PrinterRefused => "printer.refused",
        }
    }
}

/// Where a notification's webhook delivery is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// The tenant had no webhook when it was created.
    #[default]
    NoWebhook,
    /// Owed: the next attempt is at `next_attempt_at_ms`.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed (or the webhook was removed); no more attempts.
    Failed,
}

impl DeliveryState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::NoWebhook => "no_webhook",
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

impl NotificationKind {
    /// A compliance notice: its dedupe key names a due date, which a later sweep sees again,
    /// so the key outlives the notice (else the tenant would be told again).
    pub fn is_compliance_notice(self) -> bool {
        matches!(
            self,
            NotificationKind::RenewalDue
                | NotificationKind::RequirementDue
                | NotificationKind::ComplianceRestricted
        )
    }
}

/// The webhook delivery of a notification, as its attempts left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// State.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the last attempt was made, unix ms.
    pub last_attempt_at_ms: Option<u64>,
    /// Why the last attempt failed (a status or a transport error; never a body).
    pub last_error: Option<String>,
    /// When the next attempt is due, unix ms (pending only).
    pub next_attempt_at_ms: Option<u64>,
    /// When it was delivered, unix ms.
    pub delivered_at_ms: Option<u64>,
}

/// A notification of a tenant. Ids, kinds and dates only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// `ntf-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Kind.
    pub kind: NotificationKind,
    /// What it is about: a requirement id or a tier name.
    pub subject: Option<String>,
    /// The date that matters (deadline, expiry), unix ms.
    pub due_at_ms: Option<u64>,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Creation order (orders notifications of the same millisecond).
    #[serde(default)]
    pub seq: u64,
    /// Its webhook delivery.
    pub delivery: Delivery,
    /// The ids of a job or fleet event (`label.*`, `agent.*`, `printer.*`); `None` for the
    /// compliance notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<EventData>,
}

/// What a job or fleet event says: ids, states and times only, never label bytes, names or
/// addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    /// The job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The job's status after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The agent (device id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The printer id (`<device id>.<printer name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer_id: Option<String>,
    /// The caller's own reference of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
    /// Whether the job is a reprint.
    #[serde(default)]
    pub reprint: bool,
    /// `label.resolved`: the outcome the operator gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `label.resolved`: the user who resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// When it happened, unix ms.
    pub at_ms: u64,
}

/// What a new notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNotification<'a> {
    /// Kind.
    pub kind: NotificationKind,
    /// Requirement id or tier name.
    pub subject: Option<&'a str>,
    /// The date that matters, unix ms.
    pub due_at_ms: Option<u64>,
    /// At most one notification per tenant and key is ever created.
    pub dedupe_key: &'a str,
}

/// A tenant's webhook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Tenant.
    pub tenant_id: String,
    /// The https URL deliveries are POSTed to.
    pub url: String,
    /// When it was set, unix ms.
    pub created_at_ms: u64,
    /// Who set it (user or key id).
    pub created_by: String,
}

fn secret_aad(tenant_id: &str) -> Vec<u8> {
    format!("sealprint/webhook-secret/v1\0{tenant_id}").into_bytes()
}

impl Store {
    fn notification_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Creates a notification unless one with the same dedupe key exists (then `None`).
    /// When the tenant has a webhook, its delivery is owed from `now_ms`.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn create_notification(
        &self,
        tenant_id: &str,
        new: NewNotification<'_>,
        now_ms: u64,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        self.create_notification_with(tenant_id, new, None, now_ms)
    }

    /// [`Store::create_notification`] of an event that carries `data`.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn create_notification_with(
        &self,
        tenant_id: &str,
        new: NewNotification<'_>,
        data: Option<EventData>,
        now_ms: u64,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let webhook = self.webhook(tenant_id)?.is_some();
        let rec = NotificationRecord {
            id: random_id("ntf"),
            tenant_id: tenant_id.to_owned(),
            kind: new.kind,
            subject: new.subject.map(str::to_owned),
            due_at_ms: new.due_at_ms,
            created_at_ms: now_ms,
            seq: self.inner.db.generate_id()?,
            delivery: Delivery {
                state: if webhook {
                    DeliveryState::Pending
                } else {
                    DeliveryState::NoWebhook
                },
                next_attempt_at_ms: webhook.then_some(now_ms),
                ..Delivery::default()
            },
            data,
        };
        let k = scoped(tenant_id, &rec.id);
        let key = scoped(tenant_id, new.dedupe_key);
        let value = encode(&rec);
        let (notes, keys, outbox) = (
            self.notification_tree(NOTIFICATIONS)?,
            self.notification_tree(KEYS)?,
            self.notification_tree(OUTBOX)?,
        );
        let created = (&notes, &keys, &outbox)
            .transaction(|(n, d, o)| {
                if d.get(&key)?.is_some() {
                    return Ok(false);
                }
                d.insert(key.as_slice(), rec.id.as_bytes())?;
                n.insert(k.as_slice(), value.clone())?;
                if webhook {
                    o.insert(k.as_slice(), &[][..])?;
                }
                Ok(true)
            })
            .map_err(tx_err)?;
        Ok(created.then_some(rec))
    }

    /// The notifications of a tenant, newest first.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn notifications(&self, tenant_id: &str) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut all: Vec<NotificationRecord> = scan(
            &self.notification_tree(NOTIFICATIONS)?,
            &prefix(tenant_id),
            "notification",
        )?;
        all.sort_by_key(|n| std::cmp::Reverse((n.created_at_ms, n.seq)));
        Ok(all)
    }

    /// The notifications whose delivery is owed, across tenants (any due time).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn owed_notifications(&self) -> Result<Vec<NotificationRecord>, StoreError> {
        let notes = self.notification_tree(NOTIFICATIONS)?;
        let mut out = Vec::new();
        for kv in self.notification_tree(OUTBOX)?.iter() {
            let (k, _) = kv?;
            if let Some(n) = get::<NotificationRecord>(&notes, &k, "notification")? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Deletes the notifications created before `before_ms` whose delivery is no longer owed,
    /// with their dedupe keys, except the keys of compliance notices (see
    /// [`NotificationKind::is_compliance_notice`]). Every other key holds the time of its event,
    /// which never comes round again. Returns how many notifications were deleted.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn prune_notifications(&self, before_ms: u64) -> Result<u64, StoreError> {
        let (notes, keys, outbox) = (
            self.notification_tree(NOTIFICATIONS)?,
            self.notification_tree(KEYS)?,
            self.notification_tree(OUTBOX)?,
        );
        let mut deleted = 0;
        // "<tenant>/<id>" of the deleted notifications whose dedupe key goes too.
        let mut keys_to_drop = std::collections::HashSet::new();
        for kv in notes.iter() {
            let (k, v) = kv?;
            let n: NotificationRecord = decode(&v, "notification")?;
            if n.created_at_ms >= before_ms || outbox.contains_key(&k)? {
                continue;
            }
            if notes.compare_and_swap(&k, Some(v), None::<&[u8]>)?.is_ok() {
                deleted += 1;
                if !n.kind.is_compliance_notice() {
                    keys_to_drop.insert(k.to_vec());
                }
            }
        }
        if !keys_to_drop.is_empty() {
            for kv in keys.iter() {
                let (k, id) = kv?;
                let tenant = k.split(|b| *b == b'/').next().unwrap_or_default();
                let mut note = tenant.to_vec();
                note.push(b'/');
                note.extend_from_slice(&id);
                if keys_to_drop.contains(&note) {
                    keys.remove(&k)?;
                }
            }
        }
        Ok(deleted)
    }

    /// Records a delivery attempt's outcome: the new delivery state replaces the old one, and
    /// the notification leaves the outbox unless still pending.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn record_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        delivery: Delivery,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let k = scoped(tenant_id, id);
        let pending = delivery.state == DeliveryState::Pending;
        let rec = update(
            &self.notification_tree(NOTIFICATIONS)?,
            &k,
            "notification",
            |n: &mut NotificationRecord| n.delivery = delivery.clone(),
        )?;
        if !pending || rec.is_none() {
            self.notification_tree(OUTBOX)?.remove(&k)?;
        }
        Ok(rec)
    }

    /// Sets (replaces) a tenant's webhook and its signing secret, encrypted under the
    /// tenant's key, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a tenant key, [`StoreError::Db`].
    pub fn set_webhook(&self, rec: &WebhookRecord, secret: &[u8]) -> Result<(), StoreError> {
        let key = self.data_key(&rec.tenant_id)?;
        let sealed = key.seal(&secret_aad(&rec.tenant_id), secret);
        let value = encode(rec);
        let t = rec.tenant_id.as_bytes();
        let (hooks, secrets) = (
            self.notification_tree(WEBHOOKS)?,
            self.notification_tree(WEBHOOK_SECRETS)?,
        );
        (&hooks, &secrets)
            .transaction(|(h, s)| {
                h.insert(t, value.clone())?;
                s.insert(t, sealed.clone())?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// A tenant's webhook, without its secret.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn webhook(&self, tenant_id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        get(
            &self.notification_tree(WEBHOOKS)?,
            tenant_id.as_bytes(),
            "webhook",
        )
    }

    /// A tenant's webhook signing secret, decrypted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Crypto`] (tenant key shredded or data tampered
    /// with), [`StoreError::Db`].
    pub fn webhook_secret(&self, tenant_id: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let sealed = self
            .notification_tree(WEBHOOK_SECRETS)?
            .get(tenant_id.as_bytes())?
            .ok_or(StoreError::NotFound)?;
        let key = self.data_key(tenant_id)?;
        Ok(key.open(&secret_aad(tenant_id), &sealed)?)
    }

    /// Removes a tenant's webhook and secret; returns whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn delete_webhook(&self, tenant_id: &str) -> Result<bool, StoreError> {
        let t = tenant_id.as_bytes();
        let (hooks, secrets) = (
            self.notification_tree(WEBHOOKS)?,
            self.notification_tree(WEBHOOK_SECRETS)?,
        );
        let had = (&hooks, &secrets)
            .transaction(|(h, s)| {
                s.remove(t)?;
                Ok::<bool, ConflictableTransactionError<StoreError>>(h.remove(t)?.is_some())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::MasterKey;

    fn new(key: &str) -> NewNotification<'_> {
        NewNotification {
            kind: NotificationKind::RenewalDue,
            subject: Some("security_attestation"),
            due_at_ms: Some(99),
            dedupe_key: key,
        }
    }

    #[test]
    fn notifications_are_created_once_and_owed_only_with_a_webhook() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 1).expect("tenant").id;
        let n = store
            .create_notification(&t, new("a"), 5)
            .expect("create")
            .expect("new");
        assert_eq!(n.delivery.state, DeliveryState::NoWebhook);
        assert_eq!(
            store.create_notification(&t, new("a"), 6).expect("again"),
            None
        );
        assert!(store.owed_notifications().expect("owed").is_empty());

        let hook = WebhookRecord {
            tenant_id: t.clone(),
            url: "https://hooks.example/x".into(),
            created_at_ms: 7,
            created_by: "usr-1".into(),
        };
        store.set_webhook(&hook, b"MARKER-SECRET").expect("set");
        assert_eq!(
            store.webhook_secret(&t).expect("secret").as_slice(),
            b"MARKER-SECRET"
        );
        for kv in store
            .notification_tree(WEBHOOK_SECRETS)
            .expect("tree")
            .iter()
        {
            let (_, v) = kv.expect("kv");
            assert!(!v.windows(6).any(|w| w == b"MARKER"), "stored encrypted");
        }
        let n = store
            .create_notification(&t, new("b"), 8)
            .expect("create")
            .expect("new");
        assert_eq!(n.delivery.state, DeliveryState::Pending);
        assert_eq!(
            store.owed_notifications().expect("owed"),
            std::slice::from_ref(&n)
        );
        let delivered = Delivery {
            state: DeliveryState::Delivered,
            attempts: 1,
            ..Delivery::default()
        };
        store
            .record_delivery(&t, &n.id, delivered.clone())
            .expect("record");
        assert!(store.owed_notifications().expect("owed").is_empty());
        let list = store.notifications(&t).expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].delivery, delivered, "newest first");
        assert!(store.delete_webhook(&t).expect("delete"));
        assert!(store.webhook(&t).expect("read").is_none());
        assert!(matches!(
            store.webhook_secret(&t),
            Err(StoreError::NotFound)
        ));
    }
}
