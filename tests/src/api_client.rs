//! A small HTTPS client for the coordinator's admin API, trusting the coordinator's own
//! (self-signed) certificate from its data directory, as an operator would pin it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An API client bound to one coordinator.
#[derive(Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    tls: TlsConnector,
    token: Option<String>,
}

impl ApiClient {
    /// A client for the API at `addr`, trusting the PEM certificate at `ca_pem`.
    pub fn new(addr: SocketAddr, ca_pem: &Path) -> anyhow::Result<ApiClient> {
        let pem = std::fs::read(ca_pem).with_context(|| format!("reading {}", ca_pem.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiClient {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            token: None,
        })
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(&self, token: &str) -> ApiClient {
        ApiClient {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The session token this client sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Logs in and returns a client carrying the session token.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<ApiClient> {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/sessions",
                Some(serde_json::json!({ "email": email, "password": password })),
            )
            .await?;
        if status != StatusCode::CREATED {
            return Err(anyhow!("login answered {status}: {body}"));
        }
        let token = body["token"]
            .as_str()
            .ok_or_else(|| anyhow!("no token in {body}"))?;
        Ok(self.with_token(token))
    }

    /// Sends one request; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        self.call_raw(method, path, raw.into_bytes()).await
    }

    /// Sends raw bytes as the body (for malformed-input tests).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (status, value, _) = self.exchange(method, path, body).await?;
        Ok((status, value))
    }

    /// Like [`ApiClient::call`], also returning the answer's headers (names in lower case).
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value, HashMap<String, String>)> {
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        self.exchange(method, path, raw.into_bytes()).await
    }

    /// Like [`ApiClient::call_with_headers`], also sending `extra` request headers.
    pub async fn call_sending(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value, HashMap<String, String>)> {
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        self.exchange_with(method, path, raw.into_bytes(), extra)
            .await
    }

    /// Sends a whole POST with `extra` headers and returns the open connection, whose
    /// answer nobody reads: dropping it hangs up, as a client whose first answer is lost
    /// does (it timed out, or its network dropped).
    pub async fn post_unread(
        &self,
        path: &str,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        use tokio::io::AsyncWriteExt as _;
        let body = body.to_string();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n",
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let tcp = TcpStream::connect(self.addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let mut tls = self.tls.connect(name, tcp).await?;
        tls.write_all(head.as_bytes()).await?;
        tls.write_all(body.as_bytes()).await?;
        tls.flush().await?;
        Ok(tls)
    }

    /// Sends a POST head declaring `declared` body bytes, then only `sent` of them, and
    /// returns the open connection: a request in flight until the connection drops.
    pub async fn post_partial(
        &self,
        path: &str,
        declared: usize,
        sent: &[u8],
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        use tokio::io::AsyncWriteExt as _;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {declared}\r\n\r\n"
        );
        let tcp = TcpStream::connect(self.addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let mut tls = self.tls.connect(name, tcp).await?;
        tls.write_all(head.as_bytes()).await?;
        tls.write_all(sent).await?;
        tls.flush().await?;
        Ok(tls)
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Value, HashMap<String, String>)> {
        self.exchange_with(method, path, body, &[]).await
    }

    async fn exchange_with(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value, HashMap<String, String>)> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = self.tls.connect(name, tcp).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value, headers))
    }

    /// GET that expects 200 and returns the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if status != StatusCode::OK {
            return Err(anyhow!("GET {path} answered {status}: {body}"));
        }
        Ok(body)
    }

    /// POST that expects `expect` and returns the body.
    pub async fn post(&self, path: &str, body: Value, expect: StatusCode) -> anyhow::Result<Value> {
        let (status, answer) = self.call(Method::POST, path, Some(body)).await?;
        if status != expect {
            return Err(anyhow!(
                "POST {path} answered {status} (expected {expect}): {answer}"
            ));
        }
        Ok(answer)
    }
}

/// One kept-alive HTTPS/1.1 connection to the API, for many requests in sequence (the
/// benchmark uses several of these side by side).
pub struct ApiConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    token: Option<String>,
}

impl ApiClient {
    /// Opens a kept-alive connection carrying this client's token.
    pub async fn connect(&self) -> anyhow::Result<ApiConnection> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = self.tls.connect(name, tcp).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(ApiConnection {
            sender,
            token: self.token.clone(),
        })
    }
}

impl ApiConnection {
    /// POSTs JSON and returns the status and body.
    pub async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .sender
            .send_request(req.body(Full::new(Bytes::from(body.to_string())))?)
            .await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}
