//! Store tests: one-time tokens, encrypted labels (nothing in clear on disk), heartbeats,
//! the audit chain.

use std::path::Path;

use sealprint_protocol::{Heartbeat, LabelFormat, PrinterReport, PrinterStatus, PrinterVerdict};

use super::*;
use crate::core::audit::ChainedEntry;
use crate::core::crypto::MasterKey;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
    (dir, store)
}

fn job(tenant: &str, id: &str) -> JobRecord {
    JobRecord {
        id: id.into(),
        tenant_id: tenant.into(),
        pool: Some("default".into()),
        requested_printer: None,
        printer: None,
        agent: None,
        status: JobStatus::Queued,
        format: LabelFormat::Zpl,
        label_len: 3,
        label_sha256: "00".into(),
        attempts: 0,
        excluded_printers: vec![],
        attempt_deadline_ms: None,
        expires_at_ms: 10,
        created_at_ms: 1,
        updated_at_ms: 1,
        error: None,
        redacted: false,
        client_reference: None,
        reprint: false,
    }
}

/// A tenant with an active subscription (enrollment needs one).
fn active_tenant(s: &Store) -> String {
    let t = s.create_tenant("Acme", 1).expect("tenant");
    s.update_tenant(&t.id, |t| {
        t.subscription.state = crate::core::compliance::SubscriptionState::Active;
    })
    .expect("update")
    .expect("exists");
    t.id
}

fn agent(tenant: &str, device: &str) -> AgentRecord {
    AgentRecord {
        device_id: device.into(),
        tenant_id: tenant.into(),
        site_id: "site-1".into(),
        serial: 7,
        certificate: vec![1, 2, 3],
        ed25519_public: [1; 32],
        x25519_public: [2; 32],
        hostname: "station-1".into(),
        enrolled_at_ms: 1,
        revoked: false,
        version: None,
        last_heartbeat_at_ms: None,
        clock_offset_ms: None,
        relay: None,
        findings: Vec::new(),
        heartbeat_seq: 0,
    }
}

fn printer(name: &str) -> PrinterReport {
    PrinterReport {
        name: name.into(),
        pool: "default".into(),
        uri: "raw://10.0.0.5:9100".into(),
        verdict: PrinterVerdict::Verified,
        reason: "zebra answered".into(),
        identity: Some("SN1".into()),
        status: PrinterStatus::Ready,
    }
}

fn heartbeat(device: &str, printers: Vec<PrinterReport>) -> Heartbeat {
    Heartbeat {
        device_id: device.into(),
        seq: 1,
        version: "0.1.0".into(),
        uptime_s: 5,
        clock_ms: 1_000,
        printers,
        peers: vec![],
        receipts: vec![],
        findings: vec![],
    }
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn enrollment_tokens_redeem_once() {
    let (_d, s) = open();
    let tenant = active_tenant(&s);
    let rec = |exp| EnrollmentTokenRecord {
        tenant_id: tenant.clone(),
        site_id: "site-1".into(),
        expires_at_s: exp,
        used: false,
    };
    s.put_enrollment_token(&[1; 32], &rec(100)).expect("put");
    s.put_enrollment_token(&[2; 32], &rec(100)).expect("put");
    assert!(matches!(
        s.put_enrollment_token(&[1; 32], &rec(100)),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.redeem_enrollment_token(&[9; 32], 50),
        Err(StoreError::TokenUnknown)
    ));
    assert!(matches!(
        s.redeem_enrollment_token(&[2; 32], 101),
        Err(StoreError::TokenExpired)
    ));
    let g = s.redeem_enrollment_token(&[1; 32], 100).expect("redeemed");
    assert_eq!(
        g,
        TokenGrant {
            tenant_id: tenant.clone(),
            site_id: "site-1".into()
        }
    );
    assert!(matches!(
        s.redeem_enrollment_token(&[1; 32], 100),
        Err(StoreError::TokenUsed)
    ));
}

#[test]
fn concurrent_redemptions_succeed_once() {
    let (_d, s) = open();
    let tenant = active_tenant(&s);
    s.put_enrollment_token(
        &[3; 32],
        &EnrollmentTokenRecord {
            tenant_id: tenant,
            site_id: "site-1".into(),
            expires_at_s: 100,
            used: false,
        },
    )
    .expect("put");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.redeem_enrollment_token(&[3; 32], 1).is_ok())
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn enrollment_needs_an_active_subscription_and_no_suspension() {
    use crate::core::compliance::{SubscriptionState, Suspension};
    let (_d, s) = open();
    let t = s.create_tenant("Acme", 1).expect("tenant").id;
    let rec = EnrollmentTokenRecord {
        tenant_id: t.clone(),
        site_id: "site-1".into(),
        expires_at_s: 100,
        used: false,
    };
    s.put_enrollment_token(&[4; 32], &rec).expect("put");
    assert!(matches!(
        s.redeem_enrollment_token(&[4; 32], 1),
        Err(StoreError::ProvisioningRefused(_))
    ));
    s.update_tenant(&t, |t| {
        t.subscription.state = SubscriptionState::Active;
        t.suspension = Some(Suspension {
            reason: "INC-1".into(),
            at_ms: 1,
            by: "usr-0".into(),
        });
    })
    .expect("update");
    assert!(matches!(
        s.redeem_enrollment_token(&[4; 32], 1),
        Err(StoreError::ProvisioningRefused("the tenant is suspended"))
    ));
    s.update_tenant(&t, |t| t.suspension = None)
        .expect("update");
    s.redeem_enrollment_token(&[4; 32], 1)
        .expect("a refused token stays usable");
}

#[test]
fn labels_are_encrypted_at_rest_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = format!("BUYER-{}", crate::core::crypto::random_id("marker"));
    let job_id = {
        let s = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = s.create_tenant("Acme", 1).expect("tenant");
        let label = format!("^XA^FO50,50^FD{marker} 1 Main St^FS^XZ");
        s.create_job(&job(&t.id, "job-1"), label.as_bytes())
            .expect("job");
        assert!(matches!(
            s.create_job(&job(&t.id, "job-1"), b"x"),
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.label(&t.id, "job-1").expect("label").as_slice(),
            label.as_bytes()
        );
        assert!(s.label("tnt-other", "job-1").is_err());
        s.flush().expect("flush");
        "job-1".to_owned()
    };
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "marker found in clear in {}",
            f.display()
        );
    }
    // Deletion, on a fresh store.
    let (_d2, s) = open();
    let t = s.create_tenant("Acme", 1).expect("tenant");
    s.create_job(&job(&t.id, &job_id), b"^XA^XZ").expect("job");
    s.delete_label(&t.id, &job_id).expect("delete");
    assert!(matches!(s.label(&t.id, &job_id), Err(StoreError::NotFound)));
    s.delete_label(&t.id, &job_id).expect("idempotent");
}

#[test]
fn jobs_unfinished_and_updates() {
    let (_d, s) = open();
    let t = s.create_tenant("A", 1).expect("tenant");
    assert!(matches!(
        s.create_job(&job("tnt-none", "job-x"), b"x"),
        Err(StoreError::NotFound)
    ));
    s.create_job(&job(&t.id, "job-1"), b"^XA").expect("job");
    s.create_job(&job(&t.id, "job-2"), b"^XA").expect("job");
    let mut j2 = s.job(&t.id, "job-2").expect("read").expect("exists");
    j2.status = JobStatus::Printed;
    s.update_job(&j2).expect("update");
    s.create_job(&job(&t.id, "job-3"), b"^XA").expect("job");
    let mut j3 = s.job(&t.id, "job-3").expect("read").expect("exists");
    j3.status = JobStatus::InDoubt;
    s.update_job(&j3).expect("update");
    let mut unfinished: Vec<String> = s
        .unfinished_jobs()
        .expect("scan")
        .into_iter()
        .map(|j| j.id)
        .collect();
    unfinished.sort();
    assert_eq!(unfinished, ["job-1", "job-3"], "printed jobs are finished");
    assert!(s.job("tnt-other", "job-1").expect("read").is_none());
}

#[test]
fn heartbeats_update_agents_and_printers() {
    let (_d, s) = open();
    s.put_agent(&agent("tnt-1", "dev-a")).expect("agent");
    s.put_agent(&agent("tnt-2", "dev-b")).expect("agent");
    assert!(matches!(
        s.record_heartbeat("dev-zz", &heartbeat("dev-zz", vec![]), None, 1),
        Err(StoreError::NotFound)
    ));
    s.record_heartbeat(
        "dev-a",
        &heartbeat("dev-a", vec![printer("p1"), printer("p2")]),
        Some("dev-r"),
        1_500,
    )
    .expect("hb");
    let a = s.agent("dev-a").expect("read").expect("exists");
    assert_eq!(a.version.as_deref(), Some("0.1.0"));
    assert_eq!(a.last_heartbeat_at_ms, Some(1_500));
    assert_eq!(a.clock_offset_ms, Some(-500));
    assert_eq!(a.relay.as_deref(), Some("dev-r"));
    assert_eq!(s.printers("tnt-1").expect("printers").len(), 2);
    assert!(s.printers("tnt-2").expect("printers").is_empty());

    s.record_heartbeat(
        "dev-a",
        &heartbeat("dev-a", vec![printer("p1")]),
        None,
        2_000,
    )
    .expect("hb");
    let ps = s.printers("tnt-1").expect("printers");
    let gone = ps.iter().find(|p| p.name == "p2").expect("p2 kept");
    assert_eq!(gone.status, PrinterStatus::Offline);
    assert_eq!(gone.verdict, PrinterVerdict::Unreachable);
    assert_eq!(
        s.printer("tnt-1", "dev-a.p1")
            .expect("read")
            .expect("p1")
            .status,
        PrinterStatus::Ready
    );

    // Revocation through the tenant only, and a heartbeat never undoes it.
    assert!(s.revoke_agent("tnt-2", "dev-a").expect("revoke").is_none());
    assert!(s.revoke_agent("tnt-1", "dev-a").expect("revoke").is_some());
    s.record_heartbeat("dev-a", &heartbeat("dev-a", vec![]), None, 3_000)
        .expect("hb");
    assert!(s.agent("dev-a").expect("read").expect("exists").revoked);
    assert_eq!(
        s.revoked_devices("tnt-1").expect("devices"),
        vec!["dev-a".to_owned()]
    );
    assert!(s.revoked_devices("tnt-2").expect("devices").is_empty());
    assert_eq!(s.agents("tnt-1").expect("agents").len(), 1);
}

#[test]
fn sessions_expire() {
    let (_d, s) = open();
    let rec = SessionRecord {
        user_id: "usr-1".into(),
        expires_at_ms: 100,
        created_at_ms: 1,
    };
    s.create_session(&[4; 32], &rec).expect("session");
    assert_eq!(s.session(&[4; 32], 99).expect("read"), Some(rec));
    assert_eq!(s.session(&[4; 32], 100).expect("read"), None);
    assert_eq!(
        s.session(&[4; 32], 1).expect("read"),
        None,
        "expired sessions are removed"
    );
}

#[test]
fn users_have_unique_emails() {
    let (_d, s) = open();
    let u = s
        .create_user("A@x.io", "h".into(), true, None, vec![], 1)
        .expect("user");
    assert!(matches!(
        s.create_user("a@X.io ", "h".into(), false, None, vec![], 1),
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.user_by_email("a@x.io").expect("read").map(|x| x.id),
        Some(u.id.clone())
    );
    assert!(
        !format!("{u:?}").contains("a@x.io"),
        "debug hides the email"
    );
}

#[test]
fn serials_increase() {
    let (_d, s) = open();
    let a = s.next_serial().expect("serial");
    let b = s.next_serial().expect("serial");
    assert_eq!((a, b), (1, 2));
}

#[test]
fn audit_chain_detects_tampering() {
    let (_d, s) = open();
    for i in 0..5 {
        s.append_audit(AuditEntry {
            at_ms: i,
            tenant_id: Some(if i % 2 == 0 { "tnt-1" } else { "tnt-2" }.into()),
            actor: "usr-1".into(),
            action: "label.requested".into(),
            object: Some(format!("job-{i}")),
            outcome: "ok".into(),
        })
        .expect("append");
    }
    assert_eq!(s.verify_audit_chain().expect("verifies"), 5);
    assert_eq!(s.audit_entries(Some("tnt-1")).expect("entries").len(), 3);

    let tree = s.audit_tree();
    let key = 2u64.to_be_bytes();
    let mut e: ChainedEntry =
        decode(&tree.get(key).expect("get").expect("entry"), "audit").expect("decode");
    e.entry.outcome = "denied".into();
    tree.insert(key, encode(&e)).expect("tamper");
    assert!(matches!(
        s.verify_audit_chain(),
        Err(StoreError::Chain(ChainError::Altered(2)))
    ));

    tree.insert(key, b"not json".to_vec()).expect("corrupt");
    assert!(matches!(
        s.verify_audit_chain(),
        Err(StoreError::Chain(ChainError::Unreadable(2)))
    ));

    // Put it back, then delete one and swap two: both are found, and where.
    tree.insert(key, encode(&e)).expect("restore");
    e.entry.outcome = "ok".into();
    tree.insert(key, encode(&e)).expect("restore");
    assert_eq!(s.verify_audit_chain().expect("intact again"), 5);
    let third = tree
        .remove(3u64.to_be_bytes())
        .expect("remove")
        .expect("was there");
    assert!(matches!(
        s.verify_audit_chain(),
        Err(StoreError::Chain(ChainError::Gap {
            expected: 3,
            found: 4
        }))
    ));
    tree.insert(3u64.to_be_bytes(), third).expect("restore");
    let one = tree.get(1u64.to_be_bytes()).expect("get").expect("one");
    let two = tree.get(2u64.to_be_bytes()).expect("get").expect("two");
    tree.insert(1u64.to_be_bytes(), two).expect("swap");
    tree.insert(2u64.to_be_bytes(), one).expect("swap");
    let err = s.verify_audit_chain().expect_err("reordered");
    assert!(
        matches!(err, StoreError::Chain(ref c) if c.seq() == 1),
        "{err}"
    );
}
