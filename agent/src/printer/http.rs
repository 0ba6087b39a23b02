//! IPP over HTTP: one POST per connection with hyper 1's client connection API, over TCP
//! (`ipp://`), TLS (`ipps://`, rustls) or the CUPS scheduler's unix socket.
//!
//! Every step has a timeout, responses are read to at most [`MAX_RESPONSE`] bytes, and errors
//! say whether any byte of the request may have left ([`HttpError::nothing_sent`]), which is
//! what decides between "not printed" and "in doubt" for Print-Job.
//!
//! # TLS
//! Printers ship self-signed certificates, and no CA can vouch for a device on a warehouse LAN,
//! so `ipps://` does not authenticate the certificate: it checks the handshake signatures
//! (the peer holds the key of the certificate it shows) and encrypts. The device is verified by
//! its identity (printer-uuid or serial) instead, like an `ipp://` one. The certificate's
//! SHA-256 is returned so the caller can pin it for the process's lifetime.
//!
//! # What it does not do
//! No redirects, no authentication, no keep-alive, no chunked uploads of huge documents (a
//! label is at most a few MiB and is sent from memory). Never logs bodies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ipp::{self, DecodeError, Message};
use super::uri::bracketed;
use super::Timeouts;

/// The largest response body read (1 MiB); a printer's attributes are a few KiB.
pub(crate) const MAX_RESPONSE: usize = 1024 * 1024;

/// The CUPS scheduler's unix socket on Debian and most Linux distributions.
pub(crate) const CUPS_SOCKET: &str = "/run/cups/cups.sock";

/// Where an IPP request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// TCP, with TLS when `tls`.
    Tcp {
        /// Whether to speak TLS.
        tls: bool,
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket (the local CUPS scheduler).
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf),
}

/// An IPP endpoint: where to connect and which resource to POST to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Where to connect.
    pub target: Target,
    /// The HTTP resource (for example `/ipp/print` or `/printers/Zebra`).
    pub path: String,
}

impl Endpoint {
    /// The `ipp://` or `ipps://` URI of the printer, as the `printer-uri` attribute.
    pub fn printer_uri(&self) -> String {
        match &self.target {
            Target::Tcp { tls, host, port } => {
                let scheme = if *tls { "ipps" } else { "ipp" };
                format!("{scheme}://{}:{port}{}", bracketed(host), self.path)
            }
            Target::Unix(_) => format!("ipp://localhost{}", self.path),
        }
    }

    fn host_header(&self) -> String {
        match &self.target {
            Target::Tcp { host, port, .. } => format!("{}:{port}", bracketed(host)),
            Target::Unix(_) => "localhost".to_owned(),
        }
    }
}

/// Why an IPP exchange failed. Messages name no document content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    /// The connection (TCP, unix socket, TLS or HTTP handshake) could not be set up; nothing
    /// was sent.
    #[error("connect failed: {0}")]
    Connect(String),
    /// Sending the request or reading the response failed; the request may have been received.
    #[error("exchange failed: {0}")]
    Exchange(String),
    /// A step took too long; `sent` says whether the request may have been received.
    #[error("timed out")]
    Timeout {
        /// Whether sending had started.
        sent: bool,
    },
    /// The server answered with an HTTP status other than 200 (it refused the request).
    #[error("http status {0}")]
    Status(u16),
    /// The response body was larger than [`MAX_RESPONSE`].
    #[error("response larger than 1 MiB")]
    TooLarge,
    /// The response was not an IPP message.
    #[error("{0}")]
    Decode(DecodeError),
}

impl HttpError {
    /// Whether no byte of the request can have been received by the server.
    pub fn nothing_sent(&self) -> bool {
        match self {
            HttpError::Connect(_) | HttpError::Status(_) => true,
            HttpError::Timeout { sent } => !sent,
            HttpError::Exchange(_) | HttpError::TooLarge | HttpError::Decode(_) => false,
        }
    }
}

/// What an exchange returned.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The decoded response.
    pub message: Message,
    /// SHA-256 of the server's TLS certificate (ipps only).
    pub certificate: Option<[u8; 32]>,
}

/// Aborts the connection task when dropped, so a cancelled or failed exchange leaves nothing
/// running.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// POSTs `body` (an encoded IPP request, possibly followed by a document) and decodes the
/// response. Cancel safe in the sense that dropping it closes the connection; whether the
/// request was received is then unknown.
///
/// # Errors
/// [`HttpError`]; see [`HttpError::nothing_sent`].
pub(crate) async fn exchange(
    endpoint: &Endpoint,
    body: Bytes,
    timeouts: Timeouts,
) -> Result<Exchange, HttpError> {
    let request = hyper::Request::post(endpoint.path.as_str())
        .header(HOST, endpoint.host_header())
        .header(CONTENT_TYPE, "application/ipp")
        .body(Full::new(body))
        .map_err(|_| HttpError::Connect("invalid request path".to_owned()))?;
    match &endpoint.target {
        Target::Tcp { tls, host, port } => {
            let tcp = within(timeouts.connect, TcpStream::connect((host.as_str(), *port)))
                .await?
                .map_err(|e| HttpError::Connect(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            if *tls {
                let (stream, certificate) = tls_connect(host, tcp, timeouts.connect).await?;
                let message = send(stream, request, timeouts).await?;
                Ok(Exchange {
                    message,
                    certificate,
                })
            } else {
                let message = send(tcp, request, timeouts).await?;
                Ok(Exchange {
                    message,
                    certificate: None,
                })
            }
        }
        #[cfg(unix)]
        Target::Unix(path) => {
            let stream = within(timeouts.connect, tokio::net::UnixStream::connect(path))
                .await?
                .map_err(|e| HttpError::Connect(e.to_string()))?;
            let message = send(stream, request, timeouts).await?;
            Ok(Exchange {
                message,
                certificate: None,
            })
        }
        #[cfg(not(unix))]
        Target::Unix(_) => Err(HttpError::Connect(
            "unix sockets exist only on unix".to_owned(),
        )),
    }
}

async fn within<F: std::future::Future>(limit: Duration, f: F) -> Result<F::Output, HttpError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| HttpError::Timeout { sent: false })
}

async fn send<IO>(
    io: IO,
    request: hyper::Request<Full<Bytes>>,
    timeouts: Timeouts,
) -> Result<Message, HttpError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = within(
        timeouts.connect,
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(io)),
    )
    .await?
    .map_err(|e| HttpError::Connect(format!("http handshake: {e}")))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let body = tokio::time::timeout(timeouts.write + timeouts.answer, async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpError::Exchange(e.to_string()))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(HttpError::Status(response.status().as_u16()));
        }
        let collected = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    HttpError::TooLarge
                } else {
                    HttpError::Exchange(e.to_string())
                }
            })?;
        Ok(collected.to_bytes())
    })
    .await
    .map_err(|_| HttpError::Timeout { sent: true })??;
    ipp::decode(&body).map_err(|e| match e {
        DecodeError::Incomplete => HttpError::Decode(DecodeError::Malformed(
            "response ends before end-of-attributes",
        )),
        other => HttpError::Decode(other),
    })
}

async fn tls_connect(
    host: &str,
    tcp: TcpStream,
    limit: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<[u8; 32]>), HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Connect(format!("tls setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SelfSignedAllowed(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| HttpError::Connect("host is not a valid tls server name".to_owned()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = within(limit, connector.connect(name, tcp))
        .await?
        .map_err(|e| HttpError::Connect(format!("tls handshake: {e}")))?;
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Sha256::digest(leaf.as_ref()).into());
    Ok((stream, certificate))
}

/// Accepts any certificate chain (printers' certificates are self-signed; see the module
/// docs), but still checks that the peer signed the handshake with the certificate's key.
#[derive(Debug)]
struct SelfSignedAllowed(Arc<CryptoProvider>);

impl ServerCertVerifier for SelfSignedAllowed {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
