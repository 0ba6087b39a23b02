//! Job and fleet events for the tenants' webhooks (`label.printed`, `label.failed`,
//! `label.in_doubt`, `label.resolved`, `agent.offline`, `agent.online`, `printer.refused`).
//!
//! The mesh event loop hands each event to an [`EventWriter`] and goes on: a task turns it
//! into a notification ([`crate::services::notifications::notify_with`]), which the
//! notification pipeline delivers signed and retried like every other. The loop never
//! waits on the store for it: when the queue is full the event is written from the blocking
//! pool instead of being dropped. Events carry ids, states and times only ([`EventData`]).

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::services::notifications::notify_with;
use crate::store::{EventData, JobRecord, NotificationKind, Store};

/// Events queued for the writer.
const QUEUE: usize = 4096;

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

/// The handle the mesh loop emits through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Event>,
    store: Store,
}

impl EventWriter {
    /// Spawns the writer task on `tracker`; it ends once every handle is dropped and the
    /// queue is drained.
    pub fn spawn(store: Store, tracker: &TaskTracker) -> EventWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tracker.spawn(run(rx, store.clone()));
        EventWriter { tx, store }
    }

    /// Queues `event`; never waits on the store.
    pub fn emit(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => {
                let store = self.store.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn_blocking(move || e.write(&store));
                    }
                    Err(_) => e.write(&store),
                }
            }
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Event>, store: Store) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let s = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            for e in batch {
                e.write(&s);
            }
        })
        .await;
        if let Err(e) = written {
            warn!(error = %e, "event batch lost");
        }
    }
}
