//! Job and fleet events for the tenants' webhooks (`label.printed`, `label.failed`,
//! `label.in_doubt`, `label.resolved`, `agent.offline`, `agent.online`, `printer.refused`).
//!
//! The mesh event loop hands each event to an [`EventWriter`] and goes on: a task turns it
//! into a notification ([`crate::services::notifications::notify_with`]), which the
//! notification pipeline delivers signed and retried like every other. The loop does not
//! wait on the store for it (see [`StoreWriter`]). Events carry ids, states and times only
//! ([`EventData`]).

use crate::services::notifications::notify_with;
use crate::services::store_writer::{StoreRecord, StoreWriter};
use crate::store::{EventData, JobRecord, NotificationKind, Store};

/// One event: its tenant, kind, subject (job, agent or printer id) and ids.
#[derive(Debug, Clone)]
pub struct Event {
    /// Tenant.
    pub tenant_id: String,
    /// Kind.
    pub kind: NotificationKind,
    /// The job, agent or printer id.
    pub subject: String,
    /// Its ids.
    pub data: EventData,
}

impl Event {
    /// An event about `job` in its current state.
    pub fn of_job(kind: NotificationKind, job: &JobRecord, at_ms: u64) -> Event {
        Event {
            tenant_id: job.tenant_id.clone(),
            kind,
            subject: job.id.clone(),
            data: EventData {
                job_id: Some(job.id.clone()),
                status: Some(job.status.as_str().to_owned()),
                agent_id: job.agent.clone(),
                printer_id: job.printer.clone(),
                client_reference: job.client_reference.clone(),
                reprint: job.reprint,
                at_ms,
                ..EventData::default()
            },
        }
    }

    /// An event about an agent (`agent_id`) or one of its printers (`printer_id`).
    pub fn of_fleet(
        kind: NotificationKind,
        tenant_id: &str,
        agent_id: &str,
        printer_id: Option<&str>,
        at_ms: u64,
    ) -> Event {
        Event {
            tenant_id: tenant_id.to_owned(),
            kind,
            subject: printer_id.unwrap_or(agent_id).to_owned(),
            data: EventData {
                agent_id: Some(agent_id.to_owned()),
                printer_id: printer_id.map(str::to_owned),
                at_ms,
                ..EventData::default()
            },
        }
    }

    /// Creates its notification (on the caller's thread).
    pub fn write(self, store: &Store) {
        notify_with(store, &self.tenant_id, self.kind, &self.subject, self.data);
    }
}

/// The handle the mesh loop emits through (a [`StoreWriter`]: see there for order,
/// back-pressure and shutdown).
pub type EventWriter = StoreWriter<Event>;

impl StoreRecord for Event {
    fn write_to(self, store: &Store) {
        self.write(store);
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::core::crypto::MasterKey;
    use crate::services::notifications::payload;

    fn job() -> JobRecord {
        JobRecord {
            id: "job-1".into(),
            tenant_id: "tnt-1".into(),
            pool: Some("outbound".into()),
            requested_printer: None,
            printer: Some("dev-1.zebra".into()),
            agent: Some("dev-1".into()),
            status: crate::store::JobStatus::Printed,
            format: sealprint_protocol::LabelFormat::Zpl,
            label_len: 10,
            label_sha256: "ab".repeat(32),
            attempts: 1,
            excluded_printers: Vec::new(),
            attempt_deadline_ms: None,
            expires_at_ms: 0,
            created_at_ms: 1,
            updated_at_ms: 2,
            error: Some("a reason".into()),
            redacted: false,
            client_reference: Some("ORDER-1".into()),
            reprint: true,
        }
    }

    #[tokio::test]
    async fn an_event_becomes_a_notification_with_ids_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let tracker = TaskTracker::new();
        let writer = EventWriter::spawn(store.clone(), &tracker);
        writer.send(Event::of_job(NotificationKind::LabelPrinted, &job(), 2));
        writer.send(Event::of_fleet(
            NotificationKind::PrinterRefused,
            "tnt-1",
            "dev-1",
            Some("dev-1.zebra"),
            3,
        ));
        drop(writer);
        tracker.close();
        tracker.wait().await;
        let mut all = store.notifications("tnt-1").expect("notifications");
        all.reverse();
        let bodies: Vec<serde_json::Value> = all
            .iter()
            .map(|n| serde_json::from_slice(&payload(n)).expect("json"))
            .collect();
        assert_eq!(bodies[0]["type"], "label.printed");
        assert_eq!(bodies[0]["subject"], "job-1");
        assert_eq!(
            bodies[0]["data"],
            serde_json::json!({"job_id": "job-1", "status": "printed", "agent_id": "dev-1",
                "printer_id": "dev-1.zebra", "client_reference": "ORDER-1", "reprint": true,
                "at": 2})
        );
        assert_eq!(bodies[1]["type"], "printer.refused");
        assert_eq!(bodies[1]["subject"], "dev-1.zebra");
        assert_eq!(
            bodies[1]["data"],
            serde_json::json!({"agent_id": "dev-1", "printer_id": "dev-1.zebra",
                "reprint": false, "at": 3})
        );
        // No error text (it may be anything a printer said), no label hash.
        for b in &bodies {
            let text = b.to_string();
            assert!(
                !text.contains("a reason") && !text.contains("abab"),
                "{text}"
            );
        }
    }
}
