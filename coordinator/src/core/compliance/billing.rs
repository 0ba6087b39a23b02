//! The billing webhook: Stripe-style signatures and subscription events.
//!
//! The signature header is `t=<unix seconds>,v1=<hex hmac>[,v1=…]`, the MAC is
//! HMAC-SHA256 over `"<t>.<raw body>"` under the shared secret, compared in constant time, and
//! `t` must be within [`TOLERANCE_S`] of our clock (replays of old deliveries are refused).
//! Events are `customer.subscription.{created,updated,deleted}` whose object carries
//! `metadata.tenant_id` and a Stripe `status`; other event types are ignored.
//!
//! What it does not do: talk to the billing provider, or remember delivered event ids (the
//! timestamp tolerance and the "never older than the stored state" rule bound replays).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use thiserror::Error;

use super::SubscriptionState;

/// Largest accepted distance between the signature's timestamp and our clock, seconds.
pub const TOLERANCE_S: u64 = 300;

/// Why a delivery was refused. Messages never echo the header or the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is missing or not `t=…,v1=…`.
    #[error("the signature header is missing or malformed")]
    Malformed,
    /// The timestamp is too far from now.
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches.
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks `header` over `body` at `now_s`.
///
/// # Errors
/// [`SignatureError`].
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now_s: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<u64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            Some(_) => {} // other schemes (v0) are ignored, as Stripe documents
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if t.abs_diff(now_s) > TOLERANCE_S {
        return Err(SignatureError::Stale);
    }
    for sig in &sigs {
        let mut mac = mac(secret);
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(sig).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac takes keys of any length")
}

/// The header value a sender computes: outgoing notifications (`services::notifications`),
/// tests and the testkit.
pub fn sign(secret: &[u8], body: &[u8], t: u64) -> String {
    let mut mac = mac(secret);
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a delivery asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingEvent {
    /// Set a tenant's subscription state.
    Subscription {
        /// Tenant id from the subscription's metadata.
        tenant_id: String,
        /// The new state.
        state: SubscriptionState,
        /// When the event was created, unix seconds (0 when absent).
        created_s: u64,
    },
    /// An event type that does not concern us.
    Ignored,
}

/// Why an event body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON of the expected shape, or no tenant id.
    #[error("the event is malformed or names no tenant")]
    Malformed,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: u64,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    object: Object,
}

#[derive(Deserialize)]
struct Object {
    status: Option<String>,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

/// Maps a Stripe subscription status to ours.
fn state_of(status: &str) -> SubscriptionState {
    match status {
        "active" | "trialing" => SubscriptionState::Active,
        "past_due" | "unpaid" => SubscriptionState::PastDue,
        "canceled" | "incomplete_expired" => SubscriptionState::Canceled,
        _ => SubscriptionState::None,
    }
}

/// Parses a verified delivery. Unknown fields are allowed (the provider adds many).
///
/// # Errors
/// [`EventError::Malformed`].
pub fn parse_event(body: &[u8]) -> Result<BillingEvent, EventError> {
    let e: Event = serde_json::from_slice(body).map_err(|_| EventError::Malformed)?;
    let deleted = match e.kind.as_str() {
        "customer.subscription.created" | "customer.subscription.updated" => false,
        "customer.subscription.deleted" => true,
        _ => return Ok(BillingEvent::Ignored),
    };
    let object = e.data.ok_or(EventError::Malformed)?.object;
    let tenant_id = object
        .metadata
        .get("tenant_id")
        .filter(|t| sealprint_protocol::validate_id(t).is_ok())
        .ok_or(EventError::Malformed)?
        .clone();
    let state = if deleted {
        SubscriptionState::Canceled
    } else {
        state_of(object.status.as_deref().ok_or(EventError::Malformed)?)
    };
    Ok(BillingEvent::Subscription {
        tenant_id,
        state,
        created_s: e.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn signatures() {
        let body = br#"{"type":"x"}"#;
        let h = sign(SECRET, body, 1_000_000);
        assert_eq!(verify_signature(SECRET, Some(&h), body, 1_000_000), Ok(()));
        assert_eq!(
            verify_signature(SECRET, Some(&h), body, 1_000_000 + TOLERANCE_S),
            Ok(())
        );
        assert_eq!(
            verify_signature(SECRET, Some(&h), body, 1_000_000 + TOLERANCE_S + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&h), br#"{"type":"y"}"#, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", Some(&h), body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        // A rotated secret: one of several v1 signatures matches.
        let other = sign(b"old", body, 1_000_000);
        let both = format!("{other},{}", h.split(',').nth(1).expect("v1"));
        assert_eq!(
            verify_signature(SECRET, Some(&both), body, 1_000_000),
            Ok(())
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify_signature(SECRET, Some(bad), body, 1),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify_signature(SECRET, None, body, 1),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn events() {
        let ev = |kind: &str, status: &str| {
            format!(
                r#"{{"id":"evt_1","type":"{kind}","created":5,"data":{{"object":{{"status":"{status}","metadata":{{"tenant_id":"tnt-a"}}}}}}}}"#
            )
        };
        let sub = |state| BillingEvent::Subscription {
            tenant_id: "tnt-a".into(),
            state,
            created_s: 5,
        };
        let cases = [
            (
                "customer.subscription.created",
                "trialing",
                sub(SubscriptionState::Active),
            ),
            (
                "customer.subscription.updated",
                "past_due",
                sub(SubscriptionState::PastDue),
            ),
            (
                "customer.subscription.deleted",
                "active",
                sub(SubscriptionState::Canceled),
            ),
            ("invoice.paid", "active", BillingEvent::Ignored),
        ];
        for (kind, status, want) in cases {
            assert_eq!(parse_event(ev(kind, status).as_bytes()), Ok(want), "{kind}");
        }
        assert_eq!(parse_event(b"nope"), Err(EventError::Malformed));
        let no_tenant =
            br#"{"type":"customer.subscription.updated","data":{"object":{"status":"active"}}}"#;
        assert_eq!(parse_event(no_tenant), Err(EventError::Malformed));
    }
}
