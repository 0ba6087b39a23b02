//! The API's listener: TLS, then HTTP/1.1 or HTTP/2 per connection, with the limits that keep
//! a stranger from stalling it. They live here, at the connection layer, apart from routing.
//!
//! - The accept loop never waits: each connection takes a place in the [`Registry`]; over the
//!   per-address or total cap, the oldest idle connection (of that address, or of the address
//!   holding the most) is shed, and only when none is idle is the newcomer refused.
//! - Deadlines: the TLS handshake ([`ServerLimits::handshake_timeout`]); a connection that
//!   never sends a whole request head within [`ServerLimits::header_read_timeout`] is closed
//!   (hyper's HTTP/1 header-read timer, and a watchdog for both protocols); an idle kept-alive
//!   connection is closed after [`ServerLimits::idle_timeout`]; a request body must arrive at
//!   [`ServerLimits::body_min_rate`] after a grace period ([`DeadlineBody`], 408 when late).
//! - HTTP/2: concurrent streams and the header list size are capped; HTTP/1: the header
//!   buffer and the number of headers.
//! - A request counts as in flight until its answer is sent ([`TrackedBody`]), so a
//!   connection is idle exactly when nothing is owed on it.
//!
//! Every request goes to the route table ([`super::app`]), or to the standby
//! ([`super::standby`]) while the coordinator starts or drains, behind these limits.
//!
//! On shutdown it stops accepting and asks each connection to finish its in-flight requests;
//! connection tasks run on the caller's tracker, so the caller drains them.

mod registry;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::CONTENT_LENGTH;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use self::registry::{Conn, Registry};
use super::limits::AddressKey;
use super::{PeerAddr, BODY_LIMIT};

/// The connection-layer limits of the API server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a whole request head, from connecting or from the end of
    /// the previous answer.
    pub header_read_timeout: Duration,
    /// How long a connection that has served requests may stay idle.
    pub idle_timeout: Duration,
    /// Time a request body has before [`ServerLimits::body_min_rate`] applies.
    pub body_grace: Duration,
    /// The slowest a request body may arrive on average, bytes a second.
    pub body_min_rate: u64,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections from one address (an IPv4 address or an IPv6 /64) at once.
    pub max_connections_per_address: usize,
    /// HTTP/2 streams open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list, bytes.
    pub h2_max_header_list_size: u32,
    /// Largest HTTP/1 read buffer (bounds a request head), bytes.
    pub h1_max_buf_size: usize,
    /// Most headers in an HTTP/1 request.
    pub h1_max_headers: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_grace: Duration::from_secs(10),
            body_min_rate: 64 * 1024,
            max_connections: 4096,
            max_connections_per_address: 256,
            h2_max_concurrent_streams: 32,
            h2_max_header_list_size: 16 * 1024,
            h1_max_buf_size: 64 * 1024,
            h1_max_headers: 64,
        }
    }
}

impl ServerLimits {
    /// The deadline of a body of `content_length` bytes (the largest accepted when unknown).
    fn body_deadline(&self, content_length: Option<u64>) -> Duration {
        let len = content_length
            .unwrap_or(BODY_LIMIT as u64)
            .min(BODY_LIMIT as u64);
        self.body_grace + Duration::from_secs(len / self.body_min_rate.max(1))
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body did not arrive within its deadline.
    #[error("the request body did not arrive in time")]
    Deadline,
    /// The connection failed.
    #[error("request body: {0}")]
    Hyper(#[from] hyper::Error),
}

/// A request body that fails with [`BodyError::Deadline`] once its deadline passes.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Deadline))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that keeps its request counted as in flight until it is sent.
pub struct TrackedBody {
    inner: axum::body::Body,
    conn: Arc<Conn>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.conn.end();
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` (the API's [`super::app`], or its [`super::standby`]) on `listener` until
/// `shutdown` (see the module doc). The listener is shared so that the standby can hand it
/// to the API once the coordinator is up, and take it back while it drains.
///
/// Cancel-safe: it returns when `shutdown` fires.
pub async fn serve(
    listener: Arc<TcpListener>,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    let registry = Registry::new(limits.max_connections, limits.max_connections_per_address);
    let limits = Arc::new(limits);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admission = match registry.admit(AddressKey::of(Some(peer.ip()))) {
            Ok(a) => a,
            Err(why) => {
                debug!(%peer, ?why, "connection refused: at the cap, none idle");
                continue;
            }
        };
        let (acceptor, app, limits, shutdown) = (
            acceptor.clone(),
            app.clone(),
            limits.clone(),
            shutdown.clone(),
        );
        tracker.spawn(
            async move {
                let conn = admission.conn.clone();
                tokio::select! {
                    () = connection(stream, peer, acceptor, app, limits, shutdown, conn.clone()) => {}
                    () = conn.shed.cancelled() => debug!("connection shed"),
                }
                drop(admission);
            }
            .instrument(info_span!("api_conn", %peer)),
        );
    }
    info!("api stopped accepting");
}

/// One connection from handshake to close.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    limits: Arc<ServerLimits>,
    shutdown: CancellationToken,
    conn: Arc<Conn>,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(error = %e, "tls handshake failed");
            return;
        }
        Err(_) => {
            debug!("tls handshake timed out");
            return;
        }
    };
    let svc = {
        let (conn, limits) = (conn.clone(), limits.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (app, conn) = (app.clone(), conn.clone());
            conn.begin();
            let content_length = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let deadline = Box::pin(tokio::time::sleep(limits.body_deadline(content_length)));
            let mut req = req.map(|inner| axum::body::Body::new(DeadlineBody { inner, deadline }));
            // The IP allowlist is checked against the TCP peer (never a header).
            req.extensions_mut().insert(PeerAddr(peer));
            async move {
                let resp = match tower::ServiceExt::oneshot(app, req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|inner| TrackedBody { inner, conn }))
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.h1_max_buf_size)
        .max_headers(limits.h1_max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_size)
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let http = builder.serve_connection(TokioIo::new(tls), svc);
    let mut http = std::pin::pin!(http);
    let mut draining = false;
    loop {
        // An idle connection is closed once it has been idle too long: before its first
        // request, the header-read timeout; after, the idle timeout.
        let allowed = if conn.served() {
            limits.idle_timeout
        } else {
            limits.header_read_timeout
        };
        let idle = Duration::from_millis(conn.idle_for_ms());
        let check = Instant::now() + allowed.saturating_sub(idle).max(Duration::from_millis(200));
        tokio::select! {
            r = http.as_mut() => {
                if let Err(e) = r {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check) => {
                let allowed = if conn.served() { limits.idle_timeout } else { limits.header_read_timeout };
                if Duration::from_millis(conn.idle_for_ms()) >= allowed {
                    debug!(served = conn.served(), "idle connection closed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_deadline_grows_with_the_declared_length() {
        let l = ServerLimits::default();
        assert_eq!(l.body_deadline(Some(100)), Duration::from_secs(10));
        assert_eq!(
            l.body_deadline(Some(6_400 * 1024)),
            Duration::from_secs(10 + 100)
        );
        assert_eq!(l.body_deadline(None), l.body_deadline(Some(u64::MAX)));
    }
}
