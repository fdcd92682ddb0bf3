//! The hoops every response goes through: the access log (with the request metrics) and the
//! security headers.

use std::{sync::Arc, time::Instant};

use salvo::{
    Depot, FlowCtrl, Request, Response, handler,
    http::{HeaderValue, Method, StatusCode, header},
};
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, routes::route_label};

/// The Content-Security-Policy: our own stylesheet, images and script (no inline script), which
/// may only talk to us (`/events`, `/api/`); no framing, forms only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The `tracing` target of the access log, so it can be filtered on its own
/// (`RUST_LOG=info,marketplace::access=debug` logs every request, `=warn` none).
pub const ACCESS_LOG_TARGET: &str = "marketplace::access";

/// The security headers, one table made at compile time.
const SECURITY_HEADERS: [(header::HeaderName, HeaderValue); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];

/// Sets the security headers on every response, error pages included.
#[handler]
pub async fn security_headers(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, value);
    }
    ctrl.call_next(req, depot, res).await;
}

/// Once the server is stopping (the token cancelled), while it drains, every answer closes its
/// connection (`Connection: close`), so clients reconnect elsewhere instead of sending their
/// next request on a connection that is about to close.
#[derive(Debug, Clone)]
pub struct CloseWhenDraining(pub CancellationToken);

#[handler]
impl CloseWhenDraining {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        ctrl.call_next(req, depot, res).await;
        if self.0.is_cancelled() {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Every request, observed once: counted in the metrics (route, status, latency) and logged as
/// one `tracing` event with method, route (the matched pattern, `-` when none matched), path,
/// status and latency: at `info` when it failed (4xx, 5xx) or was slow
/// ([`SLOW`](bookshop_common::logging::SLOW)), at `debug` otherwise and for the probes, so that
/// the default log carries what needs attention and costs nothing per page.
/// `RUST_LOG=info,marketplace::access=debug` logs every request.
#[derive(Debug, Clone)]
pub struct AccessLog(pub Arc<Metrics>);

#[handler]
impl AccessLog {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        ctrl.call_next(req, depot, res).await;
        let elapsed = started.elapsed();
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        let route = route_label(req);
        let (route, probe) = route.map_or(("-", false), |r| (r.path, r.probe));
        let method = method_label(req.method());
        self.0
            .observe_request(method, route, status, elapsed.as_secs_f64());
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let path = req.uri().path();
        let noteworthy = status >= 400 || elapsed >= bookshop_common::logging::SLOW;
        if noteworthy && !probe {
            tracing::info!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
        } else {
            tracing::debug!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
        }
    }
}

/// The request method as a fixed label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}
