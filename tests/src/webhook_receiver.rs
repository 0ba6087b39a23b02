//! An HTTPS webhook receiver for the end-to-end tests: a self-signed certificate for
//! `localhost` (trusted by the coordinator through `--spapi-ca-file`, its one extra CA),
//! answers 200 to every delivery and records each one: its signature header, notification id
//! header and raw body. [`verify`] checks a `sealprint-signature: t=…,v1=…` header as a
//! receiver would (HMAC-SHA256 over `"<t>.<body>"`).

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tls_server::TlsServer;

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `sealprint-signature`.
    pub signature: Option<String>,
    /// `sealprint-notification-id`.
    pub id: Option<String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Delivery {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    server: TlsServer,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> anyhow::Result<Receiver> {
        let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let recorded = seen.clone();
        let server = TlsServer::start(&["localhost"], move |req: Request<Incoming>| {
            let recorded = recorded.clone();
            async move {
                let header = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (signature, id) = (
                    header("sealprint-signature"),
                    header("sealprint-notification-id"),
                );
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                lock(&recorded).push(Delivery {
                    signature,
                    id,
                    body,
                });
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
            }
        })
        .await
        .context("starting the webhook receiver")?;
        Ok(Receiver { server, seen })
    }

    /// The webhook URL (`https://localhost:PORT/hooks/sealprint`).
    pub fn url(&self) -> String {
        format!(
            "https://localhost:{}/hooks/sealprint",
            self.server.addr.port()
        )
    }

    /// Its certificate (PEM), for the coordinator's `--spapi-ca-file`.
    pub fn cert_pem(&self) -> &str {
        &self.server.cert_pem
    }

    /// Every delivery so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.seen).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.map(|k| k ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Whether `signature` (`t=<unix s>,v1=<hex>`) is `secret`'s HMAC-SHA256 over
/// `"<t>.<body>"`.
pub fn verify(secret: &str, signature: Option<&str>, body: &[u8]) -> bool {
    let Some(sig) = signature else {
        return false;
    };
    let mut t = None;
    let mut v1 = Vec::new();
    for part in sig.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let want = hex::encode(hmac_sha256(secret.as_bytes(), &message));
    v1.contains(&want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
