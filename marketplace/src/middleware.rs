//! The hoops every response goes through: the access log and the security headers.

use std::time::Instant;

use salvo::{
    Depot, FlowCtrl, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
};

/// The Content-Security-Policy: our own stylesheet and images, nothing else; no scripts, no
/// framing, forms only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `tracing` target of the access log, so it can be filtered on its own
/// (`RUST_LOG=info,marketplace::access=warn` silences it).
pub const ACCESS_LOG_TARGET: &str = "marketplace::access";

/// Sets the security headers on every response, error pages included.
#[handler]
pub async fn security_headers(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let headers = res.headers_mut();
    for (name, value) in [
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
    ] {
        headers.insert(name, value);
    }
    ctrl.call_next(req, depot, res).await;
}

/// One `tracing` event per request: method, route (the matched pattern, `-` when none
/// matched), path, status and latency. The probes (`/healthz`, `/readyz`) log at `debug`, so
/// that a Kubernetes probe every few seconds does not drown the log; everything else at `info`.
#[handler]
pub async fn access_log(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    // With the access log filtered out (`RUST_LOG=warn`), no clock reading and no route string.
    if !tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO) {
        ctrl.call_next(req, depot, res).await;
        return;
    }
    let started = Instant::now();
    ctrl.call_next(req, depot, res).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let route = match req.matched_path() {
        "" if status == StatusCode::NOT_FOUND.as_u16()
            || status == StatusCode::METHOD_NOT_ALLOWED.as_u16() =>
        {
            "-".to_owned()
        }
        matched => format!("/{matched}"),
    };
    let method = req.method().as_str();
    let path = req.uri().path();
    if matches!(route.as_str(), "/healthz" | "/readyz") {
        tracing::debug!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
    } else {
        tracing::info!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
    }
}
