//! An HTTPS (HTTP/1.1) server on a free loopback port with a fresh self-signed certificate:
//! the transport of the test doubles that stand in for outside HTTPS services
//! ([`crate::spapi_standin`], [`crate::webhook_receiver`]). The coordinator trusts the
//! certificate through `--spapi-ca-file`. Stops when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A running server.
#[derive(Debug)]
pub struct TlsServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// Its certificate (PEM), for the client's trust store.
    pub cert_pem: String,
    task: JoinHandle<()>,
}

impl TlsServer {
    /// Starts serving `handler` for every request, with a certificate for `names` (DNS names
    /// or IP addresses).
    pub async fn start<H, Fut, E>(names: &[&str], handler: H) -> anyhow::Result<TlsServer>
    where
        H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .context("making the server's certificate")?;
        let cert_pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der())
            .map_err(|e| anyhow::anyhow!("key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, handler) = (acceptor.clone(), handler.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(handler);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(TlsServer {
            addr,
            cert_pem,
            task,
        })
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
