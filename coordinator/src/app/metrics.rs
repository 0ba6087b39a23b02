//! The `/metrics` listener (`--metrics-listen`, off by default): plain HTTP/1.1 on its own
//! address, answering `GET /metrics` with [`crate::core::metrics`] in the Prometheus text
//! format and 404 to anything else. It carries no PII (kinds, states and counts only) but no
//! authentication either: bind it to a private interface (loopback, or the network the
//! Prometheus server scrapes from), never to the public API's.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The content type of the OpenMetrics text format that `prometheus-client` writes.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Time a scraper has to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn answer(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = if req.method() == Method::GET && req.uri().path() == "/metrics" {
        (StatusCode::OK, crate::core::metrics::get().encode())
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found: GET /metrics\n".to_owned(),
        )
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if status == StatusCode::OK {
        resp.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
        );
    }
    resp
}

/// Serves `/metrics` on `listener` until `shutdown`; connections run on `tracker`.
///
/// Cancel-safe: it returns when `shutdown` fires.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken, tracker: TaskTracker) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics listening");
    }
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let svc =
                hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    debug!(error = %e, "metrics connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
