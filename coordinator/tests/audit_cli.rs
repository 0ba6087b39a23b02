//! `sealprint-coordinator audit verify`: the real binary on a data directory made by `init`,
//! before and after an audit entry is edited on disk.

use std::process::Command;

use sealprint_coordinator::app::init::{init, InitOptions};
use sealprint_coordinator::store::{AuditEntry, Store};
use sealprint_coordinator::MasterKey;

fn verify(data: &std::path::Path, key: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealprint-coordinator"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .arg("--master-key-file")
        .arg(key)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn audit_verify_names_the_first_bad_entry() {
    let root = tempfile::tempdir().expect("tempdir");
    let pw = root.path().join("pw");
    std::fs::write(&pw, "Correct-Horse-Battery-9\n").expect("pw");
    let data = root.path().join("data");
    let key = root.path().join("master.key");
    init(
        &InitOptions {
            data_dir: data.clone(),
            master_key_file: key.clone(),
            admin_email: "admin@example.com".into(),
            admin_password_file: pw,
            tls_cert: None,
            tls_key: None,
            tls_names: vec![],
        },
        1,
    )
    .expect("init");
    {
        let store = Store::open(&data, MasterKey::load(&key).expect("key")).expect("store");
        for i in 0..3 {
            store
                .append_audit(AuditEntry {
                    at_ms: 10 + i,
                    tenant_id: Some("tnt-1".into()),
                    actor: "usr-1".into(),
                    action: "label.requested".into(),
                    object: Some(format!("job-{i}")),
                    outcome: "ok".into(),
                })
                .expect("append");
        }
        store.flush().expect("flush");
    }
    let (ok, text) = verify(&data, &key);
    assert!(ok, "{text}");
    assert!(text.contains("intact: 4 entries"), "{text}");

    // Edit entry 2 with sled directly, as an attacker with the data directory could.
    {
        let db = sled::open(data.join("store")).expect("sled");
        let tree = db.open_tree("audit").expect("tree");
        let k = 2u64.to_be_bytes();
        let mut v: serde_json::Value =
            serde_json::from_slice(&tree.get(k).expect("get").expect("entry")).expect("json");
        v["entry"]["outcome"] = "denied".into();
        tree.insert(k, serde_json::to_vec(&v).expect("json"))
            .expect("insert");
        db.flush().expect("flush");
    }
    let (ok, text) = verify(&data, &key);
    assert!(!ok, "{text}");
    assert!(text.contains("broken at entry 2"), "{text}");
}
