//! One SP-API call ([`SpApi::call`]): rate limit, token, request, retries per the operation's
//! policy (a purchase without an idempotency key is never sent twice) and a typed error for
//! anything but 2xx. [`CallSpec`] is what a request carries besides the token.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT as UA};
use hyper::Request;
use tracing::{debug, info};
use zeroize::Zeroizing;

use super::model::ErrorList;
use super::operation::{self, Retry};
use super::{business_id, error, Connection, Operation, SpApi, SpApiError, MAX_ANSWER};
use crate::core::clock::amz_date;
use crate::outbound::client::{self, Answer, SendFailure};
use crate::outbound::{backoff, USER_AGENT};

/// What one SP-API request carries besides the token.
#[derive(Default)]
pub struct CallSpec<'a> {
    /// `{shipmentId}` of the path.
    pub shipment_id: Option<&'a str>,
    /// Query parameters (encoded here).
    pub query: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<Zeroizing<Vec<u8>>>,
    /// `x-amzn-IdempotencyKey`.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> CallSpec<'a> {
    /// A request with this JSON body.
    pub fn json(body: Zeroizing<Vec<u8>>) -> CallSpec<'a> {
        CallSpec {
            body: Some(body),
            ..CallSpec::default()
        }
    }

    /// A request about this shipment (`{shipmentId}` of the path).
    pub fn shipment(shipment_id: &'a str) -> CallSpec<'a> {
        CallSpec {
            shipment_id: Some(shipment_id),
            ..CallSpec::default()
        }
    }
}

/// The first error's code (sanitised, `unknown` without one), and whether it is MFN's
/// refusal of the requested label format.
fn first_error(body: &[u8]) -> (String, bool) {
    serde_json::from_slice::<ErrorList>(body)
        .ok()
        .and_then(|l| l.errors.into_iter().next())
        .map(|e| (error::sanitise_code(&e.code), e.label_format_refused))
        .unwrap_or_else(|| ("unknown".to_owned(), false))
}

impl SpApi {
    /// Sleeps the backoff of `attempt`; [`SpApiError::Cancelled`] on shutdown.
    pub(super) async fn pause(&self, attempt: u32) -> Result<(), SpApiError> {
        let o = &self.inner.opts;
        let d = backoff(attempt, o.backoff_base, o.backoff_cap);
        tokio::select! {
            _ = self.inner.shutdown.cancelled() => Err(SpApiError::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Calls `op` on `conn`: rate limit, token (RDT for restricted operations, else LWA),
    /// retries per the operation's policy, and a typed error for anything but 2xx.
    ///
    /// Not cancel-safe for purchases: dropping it after the request left makes the outcome
    /// unknown (the caller treats that as in doubt).
    ///
    /// # Errors
    /// [`SpApiError::Api`], [`SpApiError::LabelFormatRefused`], [`SpApiError::Throttled`],
    /// [`SpApiError::Transport`], [`SpApiError::InDoubt`] (MFN createShipment or Shipping v2
    /// oneClickShipment after a timeout or 5xx; a Shipping v2 purchase whose retries with the
    /// same idempotency key all failed ambiguously),
    /// [`SpApiError::TooLarge`], [`SpApiError::Lwa`], [`SpApiError::Cancelled`].
    pub async fn call(
        &self,
        conn: &Connection,
        op: Operation,
        spec: CallSpec<'_>,
    ) -> Result<Answer, SpApiError> {
        let info = op.info();
        let mut url = format!("{}{}", conn.base_url(), op.path(spec.shipment_id));
        for (i, (k, v)) in spec.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&operation::encode_component(v));
        }
        let body = spec.body.map(Bytes::from_owner);
        let business = business_id(conn.record.region, &conn.record.marketplace_id);
        let max = self.inner.opts.max_attempts.max(1);
        let mut token_refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // The access token first, the rate token last, right before the request leaves:
            // calls that took their rate tokens a second apart and then both waited for one
            // token renewal would otherwise reach Amazon together, over the operation's burst
            // (seen in CI: two getShipment calls at once at 1 per second, burst 1).
            let token = if info.restricted {
                self.rdt_token(conn).await?
            } else {
                self.lwa_token(conn).await?
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return Err(SpApiError::Cancelled),
                _ = self.inner.limits.acquire(&conn.record.id, op) => {}
            }
            let mut b = Request::builder()
                .method(info.method.clone())
                .uri(&url)
                .header(UA, USER_AGENT)
                .header(ACCEPT, "application/json")
                .header("x-amz-date", amz_date(crate::core::clock::now_ms() / 1000));
            let mut access = HeaderValue::from_str(&token)
                .map_err(|_| SpApiError::Connection("token is not a valid header value"))?;
            access.set_sensitive(true);
            b = b.header("x-amz-access-token", access);
            if info.shipping_v2 {
                b = b.header("x-amzn-shipping-business-id", business);
            }
            if let Some(k) = spec.idempotency_key {
                b = b.header("x-amzn-IdempotencyKey", k);
            }
            if body.is_some() {
                b = b.header(CONTENT_TYPE, "application/json");
            }
            let req = b
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|_| SpApiError::Connection("endpoint is not a valid url"))?;
            let started = tokio::time::Instant::now();
            let sent = client::send(
                &self.inner.http,
                req,
                self.inner.opts.request_timeout,
                MAX_ANSWER,
            )
            .await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            crate::core::metrics::get()
                .spapi_call(info.name, sent.as_ref().ok().map(|a| a.status.as_u16()));
            let a = match sent {
                Ok(a) => a,
                Err(SendFailure::TooLarge) => {
                    return Err(SpApiError::TooLarge {
                        operation: info.name,
                        limit: MAX_ANSWER,
                    })
                }
                Err(SendFailure::NotSent(reason)) => {
                    debug!(op = info.name, attempt, reason = %reason, "spapi request not sent");
                    if attempt >= max {
                        return Err(SpApiError::Transport {
                            operation: info.name,
                            reason,
                        });
                    }
                    self.pause(attempt).await?;
                    continue;
                }
                Err(SendFailure::Ambiguous(reason)) => {
                    info!(op = info.name, attempt, reason = %reason, "spapi answer lost");
                    match info.retry {
                        Retry::Never => {
                            return Err(SpApiError::InDoubt {
                                operation: info.name,
                                reason: format!("{reason}; not retried (no idempotency key)"),
                            })
                        }
                        _ if attempt < max => {
                            self.pause(attempt).await?;
                            continue;
                        }
                        Retry::Idempotent => {
                            return Err(SpApiError::InDoubt {
                                operation: info.name,
                                reason: format!(
                                    "{reason}; retry with the same idempotency key settles it"
                                ),
                            })
                        }
                        Retry::Safe => {
                            return Err(SpApiError::Transport {
                                operation: info.name,
                                reason,
                            })
                        }
                    }
                }
            };
            let status = a.status.as_u16();
            let ok = a.status.is_success();
            if ok || status == 400 || status == 404 {
                if let Some(r) = &a.rate_limit {
                    self.inner.limits.observe(&conn.record.id, op, r);
                }
            }
            if ok {
                debug!(op = info.name, status, request_id = %a.request_id, attempt, elapsed_ms, "spapi call");
                return Ok(a);
            }
            let (code, label_format_refused) = first_error(&a.body);
            info!(op = info.name, status, code = %code, request_id = %a.request_id, attempt, elapsed_ms, "spapi call failed");
            let api_error = |code: String| SpApiError::Api {
                operation: info.name,
                status,
                code,
                request_id: a.request_id.clone(),
            };
            match status {
                400 if label_format_refused => {
                    return Err(SpApiError::LabelFormatRefused {
                        operation: info.name,
                        status,
                        code,
                        request_id: a.request_id.clone(),
                    })
                }
                429 => {
                    // Refused before processing: safe to retry, even a purchase.
                    self.inner.limits.throttled(&conn.record.id, op);
                    if attempt >= max {
                        return Err(SpApiError::Throttled {
                            operation: info.name,
                            attempts: attempt,
                        });
                    }
                    self.pause(attempt).await?;
                }
                401 | 403 if !token_refreshed => {
                    // An expired or revoked token is refused before processing: renew once.
                    token_refreshed = true;
                    self.invalidate(conn, op, &token).await;
                    attempt -= 1;
                }
                500..=599 => match info.retry {
                    Retry::Never => {
                        return Err(SpApiError::InDoubt {
                            operation: info.name,
                            reason: format!(
                                "status {status} ({code}, request id {}); not retried (no idempotency key)",
                                a.request_id
                            ),
                        })
                    }
                    _ if attempt < max && matches!(status, 500 | 502 | 503 | 504) => {
                        self.pause(attempt).await?;
                    }
                    Retry::Idempotent => {
                        return Err(SpApiError::InDoubt {
                            operation: info.name,
                            reason: format!(
                                "status {status} ({code}, request id {}); retry with the same idempotency key settles it",
                                a.request_id
                            ),
                        })
                    }
                    Retry::Safe => return Err(api_error(code)),
                },
                _ => return Err(api_error(code)),
            }
        }
    }
}
