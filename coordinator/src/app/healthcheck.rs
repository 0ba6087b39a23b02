//! `sealprint-coordinator healthcheck`: asks a running coordinator's API for `GET /healthz`
//! and succeeds only on `200`. The container image is `FROM scratch` (no shell, no curl), so
//! its healthcheck is this subcommand of the binary itself (`deploy/compose.yaml`).
//!
//! The connection trusts only the certificates in `--ca-file` (the data directory's own
//! `tls/cert.pem` for the self-signed certificate `init` makes), with the server name
//! `--server-name`; nothing is sent but the request line and `Host`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What `healthcheck` asks, and where.
#[derive(Debug, Clone)]
pub struct HealthcheckOptions {
    /// The API's address, e.g. `127.0.0.1:8443`.
    pub addr: String,
    /// PEM certificates to trust.
    pub ca_file: PathBuf,
    /// The name the certificate must carry.
    pub server_name: String,
    /// The whole exchange's limit.
    pub timeout: Duration,
}

/// Sends `GET /healthz` and checks the status line says 200.
///
/// # Errors
/// When the certificate file cannot be read, the connection or TLS handshake fails, the
/// answer does not come within the timeout, or its status is not 200.
pub async fn healthcheck(opts: &HealthcheckOptions) -> anyhow::Result<()> {
    let pem = std::fs::read(&opts.ca_file)
        .with_context(|| format!("reading {}", opts.ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.context("parsing the certificate file")?)
            .context("trusting the certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(opts.server_name.clone()).context("--server-name")?;
    let ask = async {
        let tcp = tokio::net::TcpStream::connect(&opts.addr)
            .await
            .with_context(|| format!("connecting to {}", opts.addr))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let request = format!(
            "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            opts.server_name
        );
        tls.write_all(request.as_bytes()).await?;
        tls.flush().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = tls.read(&mut buf).await.context("reading the answer")?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let status = line.lines().next().unwrap_or_default().to_owned();
        Ok::<_, anyhow::Error>(status)
    };
    let status = tokio::time::timeout(opts.timeout, ask)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {} within {:?}", opts.addr, opts.timeout))??;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET /healthz answered {status:?}");
    }
    Ok(())
}
