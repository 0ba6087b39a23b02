//! The HTTPS transport: one pooled hyper client per process (HTTP/1.1 and HTTP/2 over
//! rustls), trusting the system's roots plus an optional extra CA file (`--spapi-ca-file`,
//! for tests and private proxies), https only, through the outbound address guard
//! ([`super::egress`]), following no redirect.
//!
//! [`send`] sends one request with a deadline and reads the answer into a zeroizing buffer
//! with a size cap. It tells apart a failure before anything was sent ([`SendFailure::NotSent`],
//! always safe to retry) from one after ([`SendFailure::Ambiguous`]: the server may have
//! acted). It never logs bodies or headers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use thiserror::Error;
use tracing::warn;
use zeroize::Zeroizing;

use super::egress::{EgressPolicy, GuardedConnector};
use crate::core::buffer::push_zeroizing;

/// The shared client: every connection goes through the outbound address guard.
pub type Http = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the SP-API client could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The extra CA file could not be read.
    #[error("spapi ca file {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The extra CA file holds no usable PEM certificate.
    #[error("spapi ca file {0} holds no usable PEM certificate")]
    CaPem(String),
    /// rustls refused the configuration.
    #[error("spapi tls configuration: {0}")]
    Tls(String),
}

/// Reads and checks an extra CA file (PEM, at least one certificate).
///
/// # Errors
/// [`SetupError::CaFile`], [`SetupError::CaPem`].
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, SetupError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| SetupError::CaFile {
        path: shown.clone(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect();
    if certs.is_empty() || certs.iter().any(Result::is_err) {
        return Err(SetupError::CaPem(shown));
    }
    Ok(pem)
}

/// The rustls configuration: system roots plus `extra_ca_pem`.
///
/// # Errors
/// [`SetupError::CaPem`], [`SetupError::Tls`].
pub fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        warn!(
            errors = native.errors.len(),
            "some system root certificates could not be loaded"
        );
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| SetupError::CaPem("extra ca".into()))?;
            roots
                .add(cert)
                .map_err(|e| SetupError::Tls(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        warn!("no trusted root certificate for spapi: every call will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Builds the process's client from a TLS configuration; `egress` says which addresses it
/// may reach ([`super::egress`]). It follows no redirect.
pub fn http_client(tls: rustls::ClientConfig, egress: EgressPolicy) -> Http {
    let tcp = GuardedConnector::new(egress, |tcp| {
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
    });
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(8)
        .build(https)
}

/// A received answer.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `x-amzn-RequestId` (`-` when absent or not printable).
    pub request_id: String,
    /// `x-amzn-RateLimit-Limit`, if present.
    pub rate_limit: Option<String>,
    /// The body, wiped on drop.
    pub body: Zeroizing<Vec<u8>>,
}

/// Why no answer was received.
#[derive(Debug)]
pub enum SendFailure {
    /// Nothing reached the server (connect or TLS failure): safe to retry anything.
    NotSent(String),
    /// The request may have been processed (timeout, connection lost after sending).
    Ambiguous(String),
    /// The answer's body is over the cap (the request was processed).
    TooLarge,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s.chars().take(300).collect()
}

fn header(h: &hyper::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// Sends `req` and reads the answer within `timeout`, refusing bodies over `limit` bytes.
///
/// Cancel-safe in the sense that dropping it drops the request; whether the server acted is
/// then unknown, as after [`SendFailure::Ambiguous`].
pub async fn send(
    http: &Http,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    limit: usize,
) -> Result<Answer, SendFailure> {
    let work = async {
        let resp = http.request(req).await.map_err(|e| {
            if e.is_connect() {
                SendFailure::NotSent(chain(&e))
            } else {
                SendFailure::Ambiguous(chain(&e))
            }
        })?;
        let status = resp.status();
        let request_id =
            header(resp.headers(), "x-amzn-requestid").unwrap_or_else(|| "-".to_owned());
        let rate_limit = header(resp.headers(), "x-amzn-ratelimit-limit");
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(SendFailure::TooLarge);
        }
        let mut body = Zeroizing::new(Vec::with_capacity(declared.unwrap_or(4096)));
        let mut incoming = resp.into_body();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| SendFailure::Ambiguous(chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > limit {
                    return Err(SendFailure::TooLarge);
                }
                push_zeroizing(&mut body, &data, limit);
            }
        }
        Ok(Answer {
            status,
            request_id,
            rate_limit,
            body,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(SendFailure::Ambiguous(format!(
            "no complete answer within {} ms",
            timeout.as_millis()
        ))),
    }
}
