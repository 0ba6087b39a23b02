//! Outgoing notifications: each tenant's webhook deliveries, signed and retried.
//!
//! A notification owed to a webhook ([`crate::store::Store::owed_notifications`]) is POSTed
//! as JSON ([`payload`]: ids, kind, dates; never PII) to the tenant's https URL with
//! [`SIGNATURE_HEADER`]` = t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the same
//! scheme as the billing webhook ([`crate::core::compliance::billing::sign`]), so receivers verify
//! it as they verify Stripe's. A 2xx answer delivers it; anything else is retried with
//! exponential backoff and jitter ([`retry_delay`]) up to [`MAX_ATTEMPTS`] attempts. Each
//! attempt's outcome is recorded on the notification (state, attempts, last error, next
//! attempt).
//!
//! [`deliver_due`] is one pass at an explicit `now` (what the tests drive); [`run`] repeats
//! it until shutdown. The HTTPS client is the coordinator's one outgoing client
//! ([`crate::outbound::client`]: system roots plus the `--spapi-ca-file` extra CA, https only).
//!
//! Where a delivery may go is checked twice: [`validate_url`] refuses internal IP literals
//! when the webhook is set, and every connection goes through the outbound address guard
//! ([`crate::outbound::egress`]), which resolves the name, refuses it when any address is
//! internal, and dials the address it checked. Redirects are not followed (a 3xx is a failed
//! delivery).
//!
//! What it does not do: decide what to notify (`monitor::renewals` does).

use std::net::IpAddr;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::core::compliance::billing;
use crate::outbound::backoff;
use crate::outbound::client::{self, Http, SendFailure};
use crate::store::{
    Delivery, DeliveryState, EventData, NewNotification, NotificationKind, NotificationRecord,
    Store, StoreError,
};

/// The signature header of deliveries.
pub const SIGNATURE_HEADER: &str = "sealprint-signature";
/// The notification id header (receivers deduplicate retries with it).
pub const ID_HEADER: &str = "sealprint-notification-id";
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The smallest delay before a retry, and the base of the exponential backoff.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// The largest backoff.
pub const RETRY_CAP: Duration = Duration::from_secs(3600);
/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_LIMIT: usize = 64 * 1024;
/// Most deliveries attempted in one pass.
const BATCH: usize = 100;
/// Most deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Period of [`run`]'s passes.
const TICK: Duration = Duration::from_secs(5);

/// Creates a notification of an event that happened at `now_ms` (one per kind, subject and
/// time); a failure is logged, not returned, since the event itself already happened.
pub fn notify_event(
    store: &Store,
    tenant: &str,
    kind: NotificationKind,
    subject: Option<&str>,
    now_ms: u64,
) {
    let key = format!("{}/{}/{now_ms}", kind.as_str(), subject.unwrap_or("-"));
    let new = NewNotification {
        kind,
        subject,
        due_at_ms: None,
        dedupe_key: &key,
    };
    match store.create_notification(tenant, new, now_ms) {
        Ok(Some(n)) => {
            info!(tenant = %tenant, notification = %n.id, kind = kind.as_str(), "notification created")
        }
        Ok(None) => {}
        Err(e) => {
            warn!(tenant = %tenant, kind = kind.as_str(), error = %e, "notification not created")
        }
    }
}

/// Creates the notification of a job or fleet event (`subject`: the job, agent or printer id),
/// with its ids; like [`notify_event`], a failure is logged, not returned.
pub fn notify_with(
    store: &Store,
    tenant: &str,
    kind: NotificationKind,
    subject: &str,
    data: EventData,
) {
    let now_ms = data.at_ms;
    let key = format!("{}/{subject}/{now_ms}", kind.as_str());
    let new = NewNotification {
        kind,
        subject: Some(subject),
        due_at_ms: None,
        dedupe_key: &key,
    };
    match store.create_notification_with(tenant, new, Some(data), now_ms) {
        Ok(Some(n)) => {
            debug!(tenant = %tenant, notification = %n.id, kind = kind.as_str(), subject, "event notification created")
        }
        Ok(None) => {}
        Err(e) => {
            warn!(tenant = %tenant, kind = kind.as_str(), error = %e, "event notification not created")
        }
    }
}

/// An event's `data` as JSON: its ids, states and times (`at`, unix ms).
pub fn event_json(d: &EventData) -> serde_json::Value {
    let mut v = json!({
        "job_id": d.job_id,
        "status": d.status,
        "agent_id": d.agent_id,
        "printer_id": d.printer_id,
        "client_reference": d.client_reference,
        "reprint": d.reprint,
        "at": d.at_ms,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(o) = &d.outcome {
            obj.insert("outcome".to_owned(), json!(o));
        }
        if let Some(u) = &d.resolved_by {
            obj.insert("resolved_by".to_owned(), json!(u));
        }
        obj.retain(|_, v| !v.is_null());
    }
    v
}

/// Checks a webhook URL: `https://host[:port]/path`, no credentials, no internal IP literal
/// host, at most [`MAX_URL_LEN`] bytes.
///
/// # Errors
/// A message saying what is wrong (never echoing the URL).
pub fn validate_url(url: &str) -> Result<(), &'static str> {
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("url must be at most 2048 characters without spaces");
    }
    let uri: hyper::Uri = url.parse().map_err(|_| "url is not a valid URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("url must be https");
    }
    let Some(authority) = uri.authority() else {
        return Err("url must name a host");
    };
    if authority.as_str().contains('@') {
        return Err("url must not hold credentials");
    }
    let host = authority.host();
    if host.is_empty() {
        return Err("url must name a host");
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if literal
        .parse::<IpAddr>()
        .is_ok_and(crate::outbound::egress::forbidden)
    {
        return Err("url must not point at a loopback, private or link-local address");
    }
    Ok(())
}

/// The JSON body of a notification's delivery: ids, kind and dates only (a job or fleet
/// event adds its [`EventData`] as `data`).
pub fn payload(n: &NotificationRecord) -> Vec<u8> {
    let mut body = json!({
        "id": n.id,
        "type": n.kind.as_str(),
        "tenant_id": n.tenant_id,
        "subject": n.subject,
        "due_at": n.due_at_ms,
        "created_at": n.created_at_ms,
    });
    if let (Some(data), Some(obj)) = (&n.data, body.as_object_mut()) {
        obj.insert("data".to_owned(), event_json(data));
    }
    serde_json::to_vec(&body).expect("a json value always serialises")
}

/// The delay before the retry that follows attempt number `attempts` (1-based): at least
/// [`RETRY_BASE`], plus exponential backoff with full jitter capped at [`RETRY_CAP`].
pub fn retry_delay(attempts: u32) -> Duration {
    RETRY_BASE + backoff(attempts.saturating_sub(1), RETRY_BASE, RETRY_CAP)
}

/// What one [`deliver_due`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Delivered now.
    pub delivered: usize,
    /// Failed now, to be retried.
    pub retrying: usize,
    /// Given up now.
    pub failed: usize,
}

/// One POST; `Err` says why it did not deliver (a status or a transport error).
async fn post(
    http: &Http,
    url: &str,
    secret: &[u8],
    n: &NotificationRecord,
    now_ms: u64,
) -> Result<(), String> {
    let body = payload(n);
    let signature = billing::sign(secret, &body, now_ms / 1000);
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, crate::outbound::USER_AGENT)
        .header(SIGNATURE_HEADER, signature)
        .header(ID_HEADER, n.id.as_str())
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| "the webhook url is not usable".to_owned())?;
    match client::send(http, req, REQUEST_TIMEOUT, ANSWER_LIMIT).await {
        Ok(a) if a.status.is_success() => Ok(()),
        Ok(a) => Err(format!("HTTP {}", a.status.as_u16())),
        Err(SendFailure::NotSent(e) | SendFailure::Ambiguous(e)) => Err(e),
        Err(SendFailure::TooLarge) => Err("the answer was too large".to_owned()),
    }
}

/// The delivery after an attempt at `now_ms` with `result`.
fn after_attempt(old: &Delivery, result: Result<(), String>, now_ms: u64) -> Delivery {
    let attempts = old.attempts.saturating_add(1);
    let mut d = Delivery {
        attempts,
        last_attempt_at_ms: Some(now_ms),
        ..old.clone()
    };
    match result {
        Ok(()) => {
            d.state = DeliveryState::Delivered;
            d.delivered_at_ms = Some(now_ms);
            d.last_error = None;
            d.next_attempt_at_ms = None;
        }
        Err(e) => {
            d.last_error = Some(e.chars().take(300).collect());
            if attempts >= MAX_ATTEMPTS {
                d.state = DeliveryState::Failed;
                d.next_attempt_at_ms = None;
            } else {
                d.state = DeliveryState::Pending;
                let delay = u64::try_from(retry_delay(attempts).as_millis()).unwrap_or(u64::MAX);
                d.next_attempt_at_ms = Some(now_ms.saturating_add(delay));
            }
        }
    }
    d
}

/// One delivery of `n` at `now_ms`, recorded; its new state.
async fn deliver(
    store: &Store,
    http: &Http,
    n: NotificationRecord,
    now_ms: u64,
) -> Result<DeliveryState, StoreError> {
    let t = n.tenant_id.as_str();
    let target = match (store.webhook(t)?, store.webhook_secret(t)) {
        (Some(hook), Ok(secret)) => Some((hook.url, secret)),
        (None, _) | (_, Err(StoreError::NotFound | StoreError::Crypto(_))) => None,
        (_, Err(e)) => return Err(e),
    };
    let delivery = match target {
        Some((url, secret)) => {
            let result = post(http, &url, &secret, &n, now_ms).await;
            after_attempt(&n.delivery, result, now_ms)
        }
        None => Delivery {
            state: DeliveryState::Failed,
            last_error: Some("the tenant's webhook was removed".to_owned()),
            next_attempt_at_ms: None,
            ..n.delivery.clone()
        },
    };
    info!(
        tenant = %t,
        notification = %n.id,
        state = delivery.state.as_str(),
        attempts = delivery.attempts,
        error = delivery.last_error.as_deref().unwrap_or("-"),
        "notification delivery"
    );
    let state = delivery.state;
    crate::core::metrics::get().webhook_delivery(state.as_str());
    store.record_delivery(t, &n.id, delivery)?;
    Ok(state)
}

/// Attempts every owed delivery due at `now_ms` (at most [`BATCH`], [`CONCURRENCY`] at a
/// time, so one slow receiver does not hold up the others), and records each outcome.
/// Cancel-safe: a delivery cut short is attempted again.
///
/// # Errors
/// [`StoreError`] when the outbox cannot be read or an outcome not recorded.
pub async fn deliver_due(
    store: &Store,
    http: &Http,
    now_ms: u64,
) -> Result<DeliveryReport, StoreError> {
    let due: Vec<NotificationRecord> = store
        .owed_notifications()?
        .into_iter()
        .filter(|n| n.delivery.next_attempt_at_ms.unwrap_or(0) <= now_ms)
        .take(BATCH)
        .collect();
    let mut outcomes = futures::stream::iter(due)
        .map(|n| deliver(store, http, n, now_ms))
        .buffer_unordered(CONCURRENCY);
    let mut report = DeliveryReport::default();
    while let Some(state) = outcomes.next().await {
        match state? {
            DeliveryState::Delivered => report.delivered += 1,
            DeliveryState::Pending => report.retrying += 1,
            _ => report.failed += 1,
        }
    }
    Ok(report)
}

/// Runs [`deliver_due`] every few seconds until `shutdown`. Cancel-safe: it returns when
/// `shutdown` fires (an attempt in flight is dropped and made again after a restart).
pub async fn run(store: Store, http: Http, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = deliver_due(&store, &http, crate::core::clock::now_ms()) => {
                if let Err(e) = r {
                    warn!(error = %e, "notification deliveries failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;
    use hyper::Response;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use serde_json::Value;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::core::crypto::MasterKey;
    use crate::store::WebhookRecord;

    const T0: u64 = 1_700_000_000_000;
    const SECRET: &[u8] = b"whsec_receiver_test";

    /// What the receiver saw: whether the signature verified, the body, the id header.
    type Seen = Arc<Mutex<Vec<(bool, Value, Option<String>)>>>;

    /// A real HTTPS receiver (rustls, self-signed certificate for `localhost`) that verifies
    /// each delivery's signature at the test's clock, answers 500 to the first delivery and
    /// 200 to the others. Returns its port and certificate.
    async fn receiver(clock: Arc<AtomicU64>, seen: Seen) -> (u16, String) {
        let (cert, key) = crate::api::self_signed(vec!["localhost".into()]).expect("cert");
        let tls = crate::api::tls_server_config(cert.as_bytes(), key.as_bytes()).expect("tls");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen, clock) = (acceptor.clone(), seen.clone(), clock.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (seen, clock) = (seen.clone(), clock.clone());
                            async move {
                                let header = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .and_then(|v| v.to_str().ok())
                                        .map(str::to_owned)
                                };
                                let (sig, id) = (header(SIGNATURE_HEADER), header(ID_HEADER));
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let now_s = clock.load(Ordering::SeqCst) / 1000;
                                let ok =
                                    billing::verify_signature(SECRET, sig.as_deref(), &body, now_s)
                                        .is_ok();
                                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                let mut seen = seen.lock().expect("lock");
                                seen.push((ok, json, id));
                                let status = if seen.len() == 1 { 500 } else { 200 };
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::new()))
                                        .expect("response"),
                                )
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (port, cert)
    }

    struct NoDispatch;
    impl crate::core::dispatcher::Dispatch for NoDispatch {
        fn job_submitted(&self, _: &str, _: &str) {}
        fn agent_revoked(&self, _: &str) {}
    }

    #[tokio::test]
    async fn deliveries_are_signed_retried_and_recorded() {
        let clock = Arc::new(AtomicU64::new(T0));
        let seen: Seen = Arc::default();
        let (port, cert) = receiver(clock.clone(), seen.clone()).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        // The coordinator's outgoing client, trusting the receiver through the extra CA option.
        let spapi = crate::services::spapi::SpApi::new(
            crate::services::spapi::SpApiOptions {
                extra_ca_pem: Some(cert.into_bytes()),
                egress: crate::outbound::egress::EgressPolicy {
                    allow_loopback: true,
                },
                ..Default::default()
            },
            store.clone(),
            Arc::new(NoDispatch),
            TaskTracker::new(),
            CancellationToken::new(),
        )
        .expect("client");
        let http = spapi.http();
        let t = store.create_tenant("t", T0).expect("tenant").id;
        store
            .set_webhook(
                &WebhookRecord {
                    tenant_id: t.clone(),
                    url: format!("https://localhost:{port}/hooks/sealprint"),
                    created_at_ms: T0,
                    created_by: "usr-1".into(),
                },
                SECRET,
            )
            .expect("webhook");
        let n = store
            .create_notification(
                &t,
                NewNotification {
                    kind: NotificationKind::RenewalDue,
                    subject: Some("security_attestation"),
                    due_at_ms: Some(T0 + 5),
                    dedupe_key: "k",
                },
                T0,
            )
            .expect("create")
            .expect("new");
        let delivery = |store: &Store| store.notifications(&t).expect("list")[0].delivery.clone();

        // First attempt: the receiver answers 500, so it is retried later.
        let r = deliver_due(&store, &http, T0).await.expect("pass");
        assert_eq!(r.retrying, 1, "{r:?}");
        let d = delivery(&store);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.last_error.as_deref(), Some("HTTP 500"));
        let next = d.next_attempt_at_ms.expect("next attempt");
        let base = RETRY_BASE.as_millis() as u64;
        assert!((T0 + base..=T0 + 3 * base).contains(&next), "{next}");
        // Not due yet: nothing is sent.
        let r = deliver_due(&store, &http, next - 1).await.expect("pass");
        assert_eq!(r, DeliveryReport::default());
        assert_eq!(seen.lock().expect("lock").len(), 1);

        clock.store(next, Ordering::SeqCst);
        let r = deliver_due(&store, &http, next).await.expect("pass");
        assert_eq!(r.delivered, 1, "{r:?}");
        let d = delivery(&store);
        assert_eq!(d.state, DeliveryState::Delivered);
        assert_eq!((d.attempts, d.delivered_at_ms), (2, Some(next)));
        assert_eq!(d.last_error, None);
        assert!(store.owed_notifications().expect("owed").is_empty());

        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 2);
        for (ok, body, id) in seen.iter() {
            assert!(ok, "the signature verifies");
            assert_eq!(id.as_deref(), Some(n.id.as_str()));
            let keys: Vec<&str> = body
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["created_at", "due_at", "id", "subject", "tenant_id", "type"],
                "ids, kinds and dates only"
            );
            assert_eq!(body["type"], "renewal_due");
            assert_eq!(body["due_at"], T0 + 5);
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let mut d = Delivery {
            state: DeliveryState::Pending,
            ..Delivery::default()
        };
        let mut now = 0;
        for attempt in 1..MAX_ATTEMPTS {
            d = after_attempt(&d, Err("HTTP 503".into()), now);
            assert_eq!((d.state, d.attempts), (DeliveryState::Pending, attempt));
            let next = d.next_attempt_at_ms.expect("next");
            let ceiling = RETRY_BASE.as_millis() as u64 * (1 + (1u64 << (attempt - 1)));
            let cap = (RETRY_BASE + RETRY_CAP).as_millis() as u64;
            assert!(next - now >= RETRY_BASE.as_millis() as u64);
            assert!(next - now <= ceiling.min(cap), "attempt {attempt}");
            now = next;
        }
        d = after_attempt(&d, Err("HTTP 503".into()), now);
        assert_eq!(d.state, DeliveryState::Failed);
        assert_eq!(d.next_attempt_at_ms, None);
        assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));
    }

    #[test]
    fn webhook_urls() {
        assert_eq!(
            validate_url("https://hooks.acme.example/sealprint?x=1"),
            Ok(())
        );
        assert_eq!(validate_url("https://203.0.113.9:8443/h"), Ok(()));
        for bad in [
            "https://10.0.0.1:8443/h",
            "https://127.0.0.1/h",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]:8443/h",
            "https://[fd00::1]/h",
            "https://[::ffff:192.168.0.1]/h",
            "http://hooks.acme.example/",
            "ftp://x/",
            "https://user:pw@hooks.acme.example/",
            "https:///path",
            "hooks.acme.example",
            "https://a b/",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        assert!(validate_url(&format!("https://a.example/{}", "x".repeat(MAX_URL_LEN))).is_err());
    }
}
