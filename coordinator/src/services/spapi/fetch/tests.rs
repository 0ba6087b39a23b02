//! Tests of the background fetch: a fetched label becomes a queued job, a bad one a failure,
//! and a restart settles what it interrupted.

use std::sync::{Arc, Mutex};

use super::*;
use crate::core::crypto::MasterKey;
use crate::core::dispatcher::Dispatch;
use crate::services::spapi::decode_label;
use crate::store::Store;

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Dispatch for Recorder {
    fn job_submitted(&self, _tenant_id: &str, job_id: &str) {
        self.0.lock().expect("lock").push(job_id.to_owned());
    }
    fn agent_revoked(&self, _device_id: &str) {}
}

fn fetch(tenant: &str, job: &str, source: &str) -> SpapiFetchRecord {
    SpapiFetchRecord {
        job_id: job.into(),
        tenant_id: tenant.into(),
        connection_id: "spc-1".into(),
        source: source.into(),
        state: FetchState::Fetching,
        pool: Some("p".into()),
        printer: None,
        job_ttl_ms: 1000,
        shipment_id: None,
        tracking_id: None,
        idempotency_key: None,
        failed_call: None,
        error_code: None,
        request_id: None,
        error: None,
        checksum: None,
        redacted: false,
        label_format_fallback: false,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

#[tokio::test]
async fn a_restart_leaves_purchases_in_doubt_and_reads_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
    let t = store.create_tenant("t", 1).expect("tenant").id;
    for (job, source) in [
        ("job-a", "mfn"),
        ("job-b", "shipping_v2"),
        ("job-c", "mfn_shipment"),
        ("job-d", "shipping_v2_shipment"),
        ("job-e", "shipping_v2_one_click"),
    ] {
        store
            .create_spapi_fetch(&fetch(&t, job, source))
            .expect("fetch");
    }
    let recorder = Arc::new(Recorder::default());
    let _api = SpApi::for_tests(store.clone(), recorder.clone());
    let state = |job: &str| {
        store
            .spapi_fetch(&t, job)
            .expect("read")
            .expect("some")
            .state
    };
    assert_eq!(state("job-a"), FetchState::InDoubt);
    assert_eq!(state("job-b"), FetchState::InDoubt);
    assert_eq!(state("job-c"), FetchState::Failed);
    assert_eq!(state("job-d"), FetchState::Failed);
    assert_eq!(state("job-e"), FetchState::InDoubt);
    assert!(recorder.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_fetched_label_becomes_a_queued_job_and_a_bad_one_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
    let t = store.create_tenant("t", 1).expect("tenant").id;
    let recorder = Arc::new(Recorder::default());
    let api = SpApi::for_tests(store.clone(), recorder.clone());
    let zpl = b"^XA^FDx^FS^XZ".to_vec();
    let rec = fetch(&t, "job-ok", "mfn_shipment");
    store.create_spapi_fetch(&rec).expect("fetch");
    api.fetched(
        &rec,
        FetchedShipment {
            operation: "getShipment",
            shipment_id: Some("s-1".into()),
            tracking_id: Some("1Z1".into()),
            label: decode_label(
                &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zpl),
                "application/zpl",
                None,
            ),
        },
    );
    let job = store.job(&t, "job-ok").expect("read").expect("job");
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(store.label(&t, "job-ok").expect("label").as_slice(), zpl);
    let f = store
        .spapi_fetch(&t, "job-ok")
        .expect("read")
        .expect("fetch");
    assert_eq!(f.state, FetchState::Fetched);
    assert_eq!(f.tracking_id.as_deref(), Some("1Z1"));
    assert_eq!(*recorder.0.lock().expect("lock"), vec!["job-ok".to_owned()]);

    let rec = fetch(&t, "job-bad", "mfn");
    store.create_spapi_fetch(&rec).expect("fetch");
    api.fetched(
        &rec,
        FetchedShipment {
            operation: "createShipment",
            shipment_id: Some("s-2".into()),
            tracking_id: None,
            label: decode_label("H4sIAAAAAAAAAOR", "image/png", None),
        },
    );
    assert!(store.job(&t, "job-bad").expect("read").is_none());
    let f = store
        .spapi_fetch(&t, "job-bad")
        .expect("read")
        .expect("fetch");
    assert_eq!(f.state, FetchState::Failed);
    assert_eq!(f.failed_call.as_deref(), Some("createShipment"));
    assert_eq!(f.shipment_id.as_deref(), Some("s-2"));
    assert!(f.error.as_deref().unwrap_or_default().contains("base64"));
}
