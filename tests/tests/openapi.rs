//! The API's OpenAPI 3.1 contract against a live coordinator (the real binary, TLS with its
//! own certificate as CA, a real session token): the document is served, and schemathesis
//! (PyPI) drives every operation and finds no server error and no answer outside the
//! schema. Skipped, saying so, only when schemathesis is not installed (CI installs it).

use std::process::Command;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_testkit::cluster::{CoordinatorProc, ADMIN_EMAIL};
use serde_json::json;

/// How long schemathesis may generate cases (its whole run stays within a few minutes).
const FUZZ_SECONDS: u64 = 40;

/// The schemathesis command, if installed.
fn schemathesis() -> Option<&'static str> {
    ["schemathesis", "st"].into_iter().find(|cmd| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let root = tempfile::Builder::new()
        .prefix("sealprint-openapi-")
        .tempdir()
        .expect("scratch");
    let secret = root.path().join("billing-secret");
    std::fs::write(&secret, b"whsec-openapi-test-0123456789").expect("secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("0600");
    }
    let extra = [
        "--billing-webhook-secret-file".to_owned(),
        secret.display().to_string(),
    ];
    let coord = CoordinatorProc::start_new_with(root.path(), &extra)
        .await
        .expect("coordinator");
    let client = coord.client().expect("client");
    let (s, v) = client
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"email": ADMIN_EMAIL, "password": coord.admin_password})),
        )
        .await
        .expect("login");
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().expect("token").to_owned();
    let admin = client.with_token(&token);
    let tenant = admin
        .post("/v1/tenants", json!({"name": "Acme"}), StatusCode::CREATED)
        .await
        .expect("tenant")["id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    let (s, doc) = client
        .call(Method::GET, "/v1/openapi.json", None)
        .await
        .expect("openapi.json");
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");

    let Some(st) = schemathesis() else {
        eprintln!(
            "SKIPPED: schemathesis is not installed (pip install schemathesis); \
             the OpenAPI document was checked, the live fuzzing was not"
        );
        return;
    };
    // The tenant of the path is a real one, so the operations get past 404.
    let config = root.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.tenant\" = \"{tenant}\"\n"),
    )
    .expect("config");
    let cert = coord.data_dir.join("tls").join("cert.pem");
    let url = format!("https://{}/v1/openapi.json", coord.api);
    let mut cmd = tokio::process::Command::new(st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", &url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("--tls-verify")
        .arg(&cert)
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-time", &FUZZ_SECONDS.to_string()])
        .args(["--workers", "2", "--request-timeout", "30"])
        .current_dir(root.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(FUZZ_SECONDS + 240), cmd.output())
        .await
        .expect("schemathesis finished in time")
        .expect("schemathesis ran");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text.rsplit("SUMMARY").next().unwrap_or("");
    let cases = summary
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" generated")
                .or_else(|| {
                    l.trim()
                        .split(" generated")
                        .next()
                        .filter(|_| l.contains(" generated"))
                })
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!("schemathesis ran {cases} cases against {url}");
    let failed = summary.contains("Failures:");
    if failed || cases == 0 {
        println!("{text}");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(cases > 0, "schemathesis generated no case");
    assert!(
        !failed,
        "schemathesis found server errors or schema violations"
    );
}
