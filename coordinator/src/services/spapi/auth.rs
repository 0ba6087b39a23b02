//! Tokens: the LWA access token of each connection and its Restricted Data Token.
//!
//! [`TokenCache`] keeps one token per key with single-flight refresh: callers of the same key
//! queue on one async lock, the first one refreshes and the others get its token. A token is
//! used until [`EARLY_RENEWAL`] before it expires (half its life for very short-lived ones),
//! as Amazon's own Java cache does. A token the server calls expired is dropped with
//! [`TokenCache::invalidate`], only if it is still the cached one, so a fresh token fetched
//! meanwhile by another caller survives.
//!
//! The wire types of the LWA exchange ([`LwaRequest`], sent as JSON, which Amazon's Java
//! library does too) and of `createRestrictedDataToken` live here. Tokens and secrets are
//! [`Zeroizing`] and never logged; the `Debug` of everything here is redacted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zeroize::{Zeroize, Zeroizing};

use super::error::SpApiError;

/// How long before expiry a cached token is renewed.
pub const EARLY_RENEWAL: Duration = Duration::from_secs(60);

/// A string that is wiped when dropped and never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

impl Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Clone)]
struct Cached {
    token: Zeroizing<String>,
    renew_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// One token per key, refreshed by one caller at a time.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

/// When a token that lives `expires_in` should be renewed, counted from `now`.
pub fn renew_at(now: Instant, expires_in: Duration) -> Instant {
    let margin = EARLY_RENEWAL.min(expires_in / 2);
    now + expires_in.saturating_sub(margin)
}

impl TokenCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The cached token of `key`, or a fresh one from `refresh` (which returns the token and
    /// its lifetime). Only one `refresh` per key runs at a time; callers that waited for it
    /// get its token.
    ///
    /// Cancel-safe: a cancelled refresh leaves the cache as it was.
    ///
    /// # Errors
    /// Whatever `refresh` returns; nothing is cached then.
    pub async fn get<F, Fut>(&self, key: &str, refresh: F) -> Result<Zeroizing<String>, SpApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Zeroizing<String>, Duration), SpApiError>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let (token, expires_in) = refresh().await?;
        *guard = Some(Cached {
            token: token.clone(),
            renew_at: renew_at(Instant::now(), expires_in),
        });
        Ok(token)
    }

    /// Drops the token of `key` if it is still `stale` (the server refused it).
    pub async fn invalidate(&self, key: &str, stale: &str) {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|c| c.token.as_str() == stale) {
            *guard = None;
        }
    }

    /// Drops every token whose key starts with `prefix` (a connection's tokens).
    pub fn forget_prefix(&self, prefix: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|k, _| !k.starts_with(prefix));
    }
}

/// The LWA refresh-token exchange, as JSON.
#[derive(Serialize)]
pub struct LwaRequest<'a> {
    /// Always `refresh_token`.
    pub grant_type: &'static str,
    /// The seller's refresh token.
    pub refresh_token: &'a str,
    /// The application's LWA client id.
    pub client_id: &'a str,
    /// The application's LWA client secret.
    pub client_secret: &'a str,
}

impl std::fmt::Debug for LwaRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LwaRequest(<redacted>)")
    }
}

/// LWA's answer (success or failure; extra fields ignored).
#[derive(Deserialize, Default)]
pub struct LwaResponse {
    /// The access token.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// Its lifetime, seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The error code of a failure (`invalid_grant`, …).
    #[serde(default)]
    pub error: Option<String>,
}

/// One restricted resource of an RDT request.
#[derive(Serialize, Debug)]
pub struct RestrictedResource {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// The path, generic (`{shipmentId}`) so one token serves every shipment.
    pub path: String,
}

/// The `createRestrictedDataToken` request.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RdtRequest {
    /// The resources.
    pub restricted_resources: Vec<RestrictedResource>,
}

/// The `createRestrictedDataToken` answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdtResponse {
    /// The token.
    pub restricted_data_token: SecretString,
    /// Its lifetime, seconds.
    pub expires_in: u64,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_refresh_in_flight_and_early_renewal() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get("conn", || async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok((Zeroizing::new(format!("tok{n}")), Duration::from_secs(3600)))
                    })
                    .await
                    .map(|t| t.to_string())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("token"), "tok0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let fresh = |n: &'static str| {
            move || async move { Ok((Zeroizing::new(n.to_owned()), Duration::from_secs(3600))) }
        };
        // Still valid at 3539 s; renewed at 3540 s (60 s early).
        tokio::time::advance(Duration::from_secs(3539)).await;
        assert_eq!(
            cache.get("conn", fresh("x")).await.expect("t").as_str(),
            "tok0"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            cache.get("conn", fresh("tok1")).await.expect("t").as_str(),
            "tok1"
        );
        // Invalidation only drops the token it names.
        cache.invalidate("conn", "tok0").await;
        assert_eq!(
            cache.get("conn", fresh("y")).await.expect("t").as_str(),
            "tok1"
        );
        cache.invalidate("conn", "tok1").await;
        assert_eq!(
            cache.get("conn", fresh("tok2")).await.expect("t").as_str(),
            "tok2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached() {
        let cache = TokenCache::default();
        let r = cache
            .get("c", || async {
                Err(SpApiError::Lwa {
                    status: 400,
                    code: "invalid_grant".into(),
                })
            })
            .await;
        assert!(r.is_err());
        let t = cache
            .get("c", || async {
                Ok((Zeroizing::new("ok".into()), Duration::from_secs(10)))
            })
            .await
            .expect("token");
        assert_eq!(t.as_str(), "ok");
    }

    #[test]
    fn short_lived_tokens_renew_at_half_life() {
        let now = Instant::now();
        assert_eq!(
            renew_at(now, Duration::from_secs(10)),
            now + Duration::from_secs(5)
        );
        assert_eq!(
            renew_at(now, Duration::from_secs(3600)),
            now + Duration::from_secs(3540)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = SecretString("Atzr|secret".into());
        assert_eq!(format!("{s:?}"), "<redacted>");
        let r = LwaRequest {
            grant_type: "refresh_token",
            refresh_token: "Atzr|secret",
            client_id: "id",
            client_secret: "shh",
        };
        assert!(!format!("{r:?}").contains("secret"));
    }
}
