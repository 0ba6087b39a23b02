//! Tests of the event loop itself (not only its pure judgements): a loop built over a real
//! store and an unconnected swarm, driven by the calls the swarm events would make.

use sealprint_protocol::{Heartbeat, JobOutcome, LabelFormat, PrintReceipt, ReceiptState};

use super::*;
use crate::core::crypto::MasterKey;
use crate::store::JobStatus;

const DEVICE: &str = "dev-1";

/// An event loop over a fresh store in `dir`, with no listener and no peer.
fn event_loop(dir: &std::path::Path, tracker: &TaskTracker) -> EventLoop {
    let store = Store::open(dir, MasterKey::generate()).expect("store");
    let identity = Arc::new(Identity::create(&store).expect("identity"));
    let swarm = build_swarm(identity.libp2p_keypair(), &SwarmOptions::default()).expect("swarm");
    let defaults = DispatchConfig::default();
    let config = MeshConfig {
        listen: Vec::new(),
        advertise: Vec::new(),
        heartbeat_interval: Duration::from_millis(defaults.heartbeat_interval_ms),
        cert_validity: Duration::from_secs(3600),
        delivery: crate::services::delivery_config::DeliveryConfig {
            attempt_window: Duration::from_millis(defaults.attempt_window_ms),
            allowed_skew: Duration::from_millis(defaults.allowed_skew_ms),
            max_queued_jobs: 100,
        },
        hello_deadline: Duration::from_secs(10),
        failures: FailureLog::new(Duration::from_secs(60)),
        versions: VersionPolicy::default(),
        releases: crate::services::releases::Releases::new(None, dir),
    };
    EventLoop::new(swarm, config, store, identity, tracker).0
}

/// A fresh loop, its writers' tracker, and the directory of its store.
fn fixture() -> (tempfile::TempDir, TaskTracker, EventLoop) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = TaskTracker::new();
    let ev = event_loop(dir.path(), &tracker);
    (dir, tracker, ev)
}

fn not_printed(job_id: &str, reason: &str) -> JobOutcome {
    JobOutcome::NotPrinted {
        job_id: job_id.into(),
        reason: reason.into(),
    }
}

/// A job of a new tenant in `status`, sent to [`DEVICE`] once, stored with its label.
fn stored_job(ev: &mut EventLoop, status: JobStatus) -> JobRecord {
    let tenant = ev.store.create_tenant("t", now_ms()).expect("tenant");
    let job = JobRecord {
        id: "job-1".into(),
        tenant_id: tenant.id.clone(),
        pool: Some("default".into()),
        requested_printer: None,
        printer: Some(format!("{DEVICE}.zebra")),
        agent: Some(DEVICE.into()),
        status,
        format: LabelFormat::Zpl,
        label_len: 3,
        label_sha256: "00".into(),
        attempts: 1,
        excluded_printers: Vec::new(),
        attempt_deadline_ms: None,
        expires_at_ms: now_ms() + 3_600_000,
        created_at_ms: 1,
        updated_at_ms: 1,
        error: None,
        redacted: false,
        client_reference: None,
        reprint: false,
    };
    ev.store.create_job(&job, b"^XA").expect("job");
    job
}

/// A job stored in doubt on [`DEVICE`] (attempt 1), and the loop's record of that doubt, as
/// `finish_attempt` leaves them.
fn job_in_doubt(ev: &mut EventLoop) -> JobRecord {
    let job = stored_job(ev, JobStatus::InDoubt);
    ev.in_doubt.insert(
        job.id.clone(),
        Doubt {
            tenant_id: job.tenant_id.clone(),
            device_id: DEVICE.into(),
            attempt: 1,
            unheard: None,
        },
    );
    job
}

/// A job dispatched to [`DEVICE`]'s printer `zebra` (attempt 1), its answer awaited.
fn job_out(ev: &mut EventLoop) -> JobRecord {
    let job = stored_job(ev, JobStatus::Dispatched);
    let printer_id = format!("{DEVICE}.zebra");
    ev.fleet.begin(&printer_id);
    ev.attempts.insert(
        job.id.clone(),
        Attempt {
            tenant_id: job.tenant_id.clone(),
            printer_id,
            device_id: DEVICE.into(),
            expect: None,
            direct: true,
            attempt: 1,
            dispatched_at_ms: now_ms(),
            deadline_ms: now_ms() + 30_000,
            request: None,
            counted: true,
        },
    );
    job
}

/// The kinds of the notifications the loop's events became, once its writers are done.
async fn notified(ev: EventLoop, tracker: TaskTracker, tenant_id: &str) -> Vec<(String, String)> {
    let store = ev.store.clone();
    drop(ev);
    tracker.close();
    tokio::time::timeout(Duration::from_secs(60), tracker.wait())
        .await
        .expect("writers end");
    store
        .notifications(tenant_id)
        .expect("notifications")
        .into_iter()
        .map(|n| (n.kind.as_str().to_owned(), n.subject.unwrap_or_default()))
        .collect()
}

/// A heartbeat of [`DEVICE`] carrying one final receipt for attempt 1 of `job_id`.
fn heartbeat_with(job_id: &str, outcome: JobOutcome) -> Heartbeat {
    Heartbeat {
        device_id: DEVICE.into(),
        seq: 1,
        version: "0".into(),
        uptime_s: 60,
        clock_ms: now_ms(),
        printers: Vec::new(),
        peers: Vec::new(),
        receipts: vec![PrintReceipt {
            job_id: job_id.into(),
            attempt: 1,
            state: ReceiptState::Done(outcome),
            at_ms: now_ms(),
        }],
        findings: Vec::new(),
    }
}

fn stored(ev: &EventLoop, job: &JobRecord) -> JobRecord {
    ev.store
        .job(&job.tenant_id, &job.id)
        .expect("read")
        .expect("job still stored")
}

#[tokio::test]
async fn a_not_printed_receipt_puts_a_job_in_doubt_back_in_the_queue() {
    let (_dir, _writers, mut ev) = fixture();
    let job = job_in_doubt(&mut ev);
    let hb = heartbeat_with(&job.id, not_printed(&job.id, "out of paper"));
    ev.settle_from_receipts(DEVICE, &hb);
    let after = stored(&ev, &job);
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.error.as_deref(), Some("out of paper"));
    // Queued in the store is not enough: the loop must dispatch it again.
    let queued: Vec<&str> = ev.queue.iter().map(|w| w.job_id.as_str()).collect();
    assert_eq!(queued, [job.id.as_str()]);
    assert!(ev.in_doubt.is_empty());
    assert!(
        ev.store.label(&job.tenant_id, &job.id).is_ok(),
        "label kept"
    );
}

#[tokio::test]
async fn a_printed_receipt_settles_a_job_in_doubt_as_printed_and_drops_its_label() {
    let (_dir, _writers, mut ev) = fixture();
    let job = job_in_doubt(&mut ev);
    let hb = heartbeat_with(
        &job.id,
        JobOutcome::Printed {
            job_id: job.id.clone(),
            printer: "zebra".into(),
        },
    );
    ev.settle_from_receipts(DEVICE, &hb);
    assert_eq!(stored(&ev, &job).status, JobStatus::Printed);
    assert!(ev.queue.is_empty(), "a printed job is never queued again");
    assert!(ev.in_doubt.is_empty());
    assert!(
        ev.store.label(&job.tenant_id, &job.id).is_err(),
        "label deleted"
    );
}

#[tokio::test]
async fn a_receipt_from_another_device_or_attempt_leaves_the_doubt_alone() {
    let (_dir, _writers, mut ev) = fixture();
    let job = job_in_doubt(&mut ev);
    let not_printed = not_printed(&job.id, "forged");
    let mut other_device = heartbeat_with(&job.id, not_printed.clone());
    other_device.device_id = "dev-2".into();
    ev.settle_from_receipts("dev-2", &other_device);
    let mut other_attempt = heartbeat_with(&job.id, not_printed);
    other_attempt.receipts[0].attempt = 2;
    ev.settle_from_receipts(DEVICE, &other_attempt);
    assert_eq!(stored(&ev, &job).status, JobStatus::InDoubt);
    assert!(ev.queue.is_empty());
    assert_eq!(ev.in_doubt.len(), 1);
}

#[tokio::test]
async fn a_not_printed_answer_requeues_the_job_first_without_that_printer() {
    let (_dir, _writers, mut ev) = fixture();
    let job = job_out(&mut ev);
    let waiting = JobRecord {
        id: "job-0".into(),
        ..job.clone()
    };
    ev.queue.push_back(Waiting::of(&waiting));
    let outcome = not_printed(&job.id, "paper out");
    ev.finish_attempt(&job.id, Ok(outcome));
    let after = stored(&ev, &job);
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.excluded_printers, [format!("{DEVICE}.zebra")]);
    assert_eq!(ev.queue.front().map(|w| w.job_id.as_str()), Some("job-1"));
    assert_eq!(ev.queue.front().map(|w| w.excluded.len()), Some(1));
    assert!(ev.attempts.is_empty());
    assert!(
        ev.store.label(&job.tenant_id, &job.id).is_ok(),
        "label kept"
    );
}

#[tokio::test]
async fn an_in_doubt_answer_is_recorded_for_the_receipts_and_announced() {
    let (_dir, tracker, mut ev) = fixture();
    let job = job_out(&mut ev);
    let outcome = JobOutcome::InDoubt {
        job_id: job.id.clone(),
        reason: "connection lost while writing".into(),
    };
    ev.finish_attempt(&job.id, Ok(outcome));
    assert_eq!(stored(&ev, &job).status, JobStatus::InDoubt);
    assert!(
        ev.queue.is_empty(),
        "a job in doubt is never sent again by itself"
    );
    assert_eq!(ev.in_doubt.get(&job.id).map(|d| d.attempt), Some(1));
    let kinds = notified(ev, tracker, &job.tenant_id).await;
    assert_eq!(kinds, [("label.in_doubt".to_owned(), job.id.clone())]);
}

#[tokio::test]
async fn a_failed_job_loses_its_label_and_is_announced_as_failed() {
    let (_dir, tracker, mut ev) = fixture();
    let job = stored_job(&mut ev, JobStatus::Queued);
    ev.fail(job.clone(), "expired before a printer was free");
    let after = stored(&ev, &job);
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(
        after.error.as_deref(),
        Some("expired before a printer was free")
    );
    assert!(
        ev.store.label(&job.tenant_id, &job.id).is_err(),
        "label deleted"
    );
    let kinds = notified(ev, tracker, &job.tenant_id).await;
    assert_eq!(kinds, [("label.failed".to_owned(), job.id.clone())]);
}

#[tokio::test]
async fn a_trial_process_that_reported_running_gets_no_jobs_until_its_successor_connects() {
    let (_dir, _tracker, mut ev) = fixture();
    assert!(!ev.update_hold(DEVICE, "0.1.1"), "no update, no hold");
    // The trial process of 0.1.1 reported `running`: its guard stops it next.
    ev.begin_handover(DEVICE);
    assert!(
        ev.update_hold(DEVICE, "0.1.1"),
        "its own heartbeats on the new version must not release it"
    );
    // The process it handed over to says hello on a new connection.
    ev.end_handover(DEVICE);
    assert!(!ev.update_hold(DEVICE, "0.1.1"));
}
