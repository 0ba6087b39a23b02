//! The coordinator served in-process over real sockets: `init` a directory, `start` on port 0,
//! talk HTTPS to it (TLS 1.3 and 1.2), shut it down and drain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sealprint_coordinator::app::config::{resolve, FileConfig, Overrides};
use sealprint_coordinator::app::healthcheck::{healthcheck, HealthcheckOptions};
use sealprint_coordinator::app::init::{init, InitError, InitOptions};
use sealprint_coordinator::core::paths::TLS_CERT;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn https(
    addr: std::net::SocketAddr,
    cert_pem: &[u8],
    version: &'static rustls::SupportedProtocolVersion,
    req: Request<Full<Bytes>>,
) -> (u16, serde_json::Value) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem) {
        let c: CertificateDer<'static> = c.expect("pem");
        roots.add(c).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("tls handshake");
    assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_shuts_down_cleanly() {
    let root = tempfile::tempdir().expect("tempdir");
    let pw = root.path().join("pw");
    std::fs::write(&pw, "Correct-Horse-Battery-9\n").expect("pw");
    let data_dir = root.path().join("data");
    let key = root.path().join("master.key");
    let opts = InitOptions {
        data_dir: data_dir.clone(),
        master_key_file: key.clone(),
        admin_email: "admin@example.com".into(),
        admin_password_file: pw,
        tls_cert: None,
        tls_key: None,
        tls_names: vec![],
    };
    let report = init(&opts, sealprint_coordinator::now_ms()).expect("init");
    // A second init is refused with the variant `init --exist-ok` turns into success.
    assert!(matches!(
        init(&opts, sealprint_coordinator::now_ms()),
        Err(InitError::AlreadyInitialised(_))
    ));

    let config = resolve(
        FileConfig::default(),
        Overrides {
            data_dir: Some(data_dir.clone()),
            master_key_file: Some(key),
            api_listen: Some("127.0.0.1:0".into()),
            mesh_listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Overrides::default()
        },
    )
    .expect("config");
    config.check_paths().expect("paths");
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .expect("bind");
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let started =
        sealprint_coordinator::start(&config, listener, shutdown.clone(), tracker.clone())
            .await
            .expect("started");
    let line = started.ready.line();
    assert!(line.starts_with("READY {\"api\":\"127.0.0.1:"), "{line}");
    assert_eq!(started.ready.peer_id.to_string(), report.peer_id);
    assert!(!started.ready.mesh.is_empty());

    let cert = std::fs::read(data_dir.join(TLS_CERT)).expect("cert");
    let addr = started.ready.api;
    let get = || {
        Request::get("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let (s, v) = https(addr, &cert, &rustls::version::TLS13, get()).await;
    assert_eq!((s, v), (200, serde_json::json!({"status": "ok"})));
    let (s, _) = https(addr, &cert, &rustls::version::TLS12, get()).await;
    assert_eq!(s, 200);
    // `sealprint-coordinator healthcheck` (the container images' healthcheck).
    let check = |server_name: &str| HealthcheckOptions {
        addr: addr.to_string(),
        ca_file: data_dir.join(TLS_CERT),
        server_name: server_name.into(),
        timeout: Duration::from_secs(5),
    };
    healthcheck(&check("localhost")).await.expect("healthy");
    let wrong = healthcheck(&check("elsewhere.example")).await;
    assert!(wrong.is_err(), "a certificate for another name passed");

    let login = Request::post("/v1/sessions")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(
            br#"{"email":"admin@example.com","password":"Correct-Horse-Battery-9"}"#,
        )))
        .expect("request");
    let (s, v) = https(addr, &cert, &rustls::version::TLS13, login).await;
    assert_eq!(s, 201, "{v}");
    assert!(v["token"].is_string());

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("drained within the grace period");
    started.store.flush().expect("flush");
    let gone = healthcheck(&check("localhost")).await;
    assert!(
        gone.is_err(),
        "healthcheck passed with the coordinator stopped"
    );
}
