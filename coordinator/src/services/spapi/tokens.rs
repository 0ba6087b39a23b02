//! Obtaining tokens: the LWA refresh-token exchange and the RDT of the restricted operations,
//! each through its cache in [`auth`](super::auth) (single-flight, early renewal).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_TYPE, USER_AGENT as UA};
use hyper::{Request, StatusCode};
use tracing::{debug, info};
use zeroize::Zeroizing;

use super::auth::{LwaRequest, LwaResponse, RdtRequest, RdtResponse, RestrictedResource};
use super::{error, CallSpec, Connection, Operation, SpApi, SpApiError};
use crate::outbound::client::{self, SendFailure};
use crate::outbound::USER_AGENT;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl SpApi {
    /// The connection's LWA access token (cached; one exchange in flight per connection).
    pub(super) async fn lwa_token(
        &self,
        conn: &Connection,
    ) -> Result<Zeroizing<String>, SpApiError> {
        self.inner
            .lwa
            .get(&conn.key(), || self.lwa_exchange(conn))
            .await
    }

    async fn lwa_exchange(
        &self,
        conn: &Connection,
    ) -> Result<(Zeroizing<String>, Duration), SpApiError> {
        let body = Zeroizing::new(
            serde_json::to_vec(&LwaRequest {
                grant_type: "refresh_token",
                refresh_token: &conn.secrets.refresh_token.0,
                client_id: &conn.record.client_id,
                client_secret: &conn.secrets.client_secret.0,
            })
            .expect("strings always serialise"),
        );
        let body = Bytes::from_owner(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = Request::post(conn.lwa_url())
                .header(UA, USER_AGENT)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(Full::new(body.clone()))
                .map_err(|_| SpApiError::Connection("lwa endpoint is not a valid url"))?;
            let sent = client::send(
                &self.inner.http,
                req,
                self.inner.opts.request_timeout,
                64 * 1024,
            )
            .await;
            let transient = match sent {
                Ok(a) if a.status.is_success() => {
                    let r: LwaResponse = serde_json::from_slice(&a.body).unwrap_or_default();
                    return match (r.access_token, r.expires_in) {
                        (Some(t), Some(s)) if !t.0.is_empty() => {
                            debug!(connection = %conn.record.id, expires_in = s, "lwa token obtained");
                            Ok((Zeroizing::new(t.0.clone()), Duration::from_secs(s)))
                        }
                        _ => Err(SpApiError::Lwa {
                            status: a.status.as_u16(),
                            code: "malformed_answer".into(),
                        }),
                    };
                }
                Ok(a)
                    if a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    SpApiError::Lwa {
                        status: a.status.as_u16(),
                        code: "server_error".into(),
                    }
                }
                Ok(a) => {
                    let r: LwaResponse = serde_json::from_slice(&a.body).unwrap_or_default();
                    let code = r
                        .error
                        .as_deref()
                        .map(error::sanitise_code)
                        .unwrap_or_else(|| "unknown".into());
                    info!(connection = %conn.record.id, status = a.status.as_u16(), code = %code, "lwa refused the token exchange");
                    return Err(SpApiError::Lwa {
                        status: a.status.as_u16(),
                        code,
                    });
                }
                Err(SendFailure::TooLarge) => {
                    return Err(SpApiError::TooLarge {
                        operation: "lwaToken",
                        limit: 64 * 1024,
                    })
                }
                Err(SendFailure::NotSent(reason) | SendFailure::Ambiguous(reason)) => {
                    SpApiError::Transport {
                        operation: "lwaToken",
                        reason,
                    }
                }
            };
            // Token exchanges have no side effect worth fearing: retry transient failures.
            if attempt >= self.inner.opts.max_attempts {
                return Err(transient);
            }
            self.pause(attempt).await?;
        }
    }

    /// The connection's RDT for the restricted operations (one token for all of them, with
    /// generic paths; cached until shortly before it expires).
    pub(super) fn rdt_token<'a>(
        &'a self,
        conn: &'a Connection,
    ) -> BoxFuture<'a, Result<Zeroizing<String>, SpApiError>> {
        Box::pin(async move {
            let key = format!("{}/rdt", conn.key());
            self.inner
                .rdt
                .get(&key, || async {
                    let req = RdtRequest {
                        restricted_resources: Operation::restricted_resources()
                            .into_iter()
                            .map(|(m, p)| RestrictedResource {
                                method: m.to_string(),
                                path: p.to_owned(),
                            })
                            .collect(),
                    };
                    let body = serde_json::to_vec(&req).expect("plain data serialises");
                    let spec = CallSpec::json(Zeroizing::new(body));
                    let a = self
                        .call(conn, Operation::CreateRestrictedDataToken, spec)
                        .await?;
                    let r: RdtResponse =
                        serde_json::from_slice(&a.body).map_err(|_| SpApiError::Malformed {
                            operation: "createRestrictedDataToken",
                            what: "no restrictedDataToken",
                        })?;
                    debug!(connection = %conn.record.id, expires_in = r.expires_in, "rdt obtained");
                    Ok((
                        Zeroizing::new(r.restricted_data_token.0.clone()),
                        Duration::from_secs(r.expires_in),
                    ))
                })
                .await
        })
    }

    pub(super) async fn invalidate(&self, conn: &Connection, op: Operation, token: &str) {
        if op.info().restricted {
            self.inner
                .rdt
                .invalidate(&format!("{}/rdt", conn.key()), token)
                .await;
        } else {
            self.inner.lwa.invalidate(&conn.key(), token).await;
        }
    }

    /// Drops the cached tokens of a connection (after a credentials change).
    pub fn forget_tokens(&self, tenant_id: &str, connection_id: &str) {
        let prefix = format!("{tenant_id}/{connection_id}");
        self.inner.lwa.forget_prefix(&prefix);
        self.inner.rdt.forget_prefix(&prefix);
    }
}
