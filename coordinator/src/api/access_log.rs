//! The access log: one line per API request at info level on the [`ACCESS_TARGET`] target,
//! with the method, the route template (`/v1/tenants/{tenant}/labels/{job}`, never the
//! concrete path), the status, the duration until the answer's head and the request id. No
//! query string, no header, no body, no address: nothing of the tenant's.
//!
//! The handler of a route names its template on the answer ([`templated`]); an answer
//! without one (an unknown path) is logged with route `-`.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::info;

use super::REQUEST_ID;

/// The tracing target of the access log lines.
pub const ACCESS_TARGET: &str = "sealprint::access";

/// The route template an answer was made for, set by the route's handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteTemplate(pub &'static str);

/// `resp` marked as the answer of `template`.
pub(crate) fn templated(mut resp: Response, template: &'static str) -> Response {
    resp.extensions_mut().insert(RouteTemplate(template));
    resp
}

/// The middleware: runs the request, then writes its line.
pub(crate) async fn log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteTemplate>()
        .map_or("-", |t| t.0);
    info!(
        target: "sealprint::access",
        method = %method,
        route,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %id,
        "request"
    );
    resp
}
