//! What every request goes through, 404s too: its id and span, access log and metrics, headers.

use std::{sync::Arc, time::Instant};

use bookshop_common::telemetry;
use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Depot, FlowCtrl, Request, Response, handler};
use tracing::{Instrument, field::Empty};

use crate::{metrics::Route, recommendations::Caller, web::AppState};

/// `RUST_LOG=info,marketplace::access=debug` logs every request, not only failed and slow ones.
pub const ACCESS_LOG_TARGET: &str = "marketplace::access";

/// Our own stylesheet, images and script, no inline script, and the script talks only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const REQUEST_ID: &str = "x-request-id";

/// The request id (the client's if loggable, else new) and `traceparent` as [`Caller`]; its span.
#[handler]
pub async fn request_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let header = |name: &str| req.headers().get(name).and_then(|value| value.to_str().ok());
    let request_id = header(REQUEST_ID).filter(|id| bookshop_common::loggable_id(id.as_bytes()));
    let request_id =
        request_id.map_or_else(|| format!("{:032x}", rand::random::<u128>()), str::to_owned);
    let traceparent = header(telemetry::TRACEPARENT).filter(|v| telemetry::is_traceparent(v));
    let traceparent = traceparent.map(str::to_owned);
    // Loggable ids are visible ASCII: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let span = if telemetry::enabled() {
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = Empty,
            span_id = Empty,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %req.method(),
            http.route = Empty,
            http.response.status_code = Empty,
        );
        let tracestate = header(telemetry::TRACESTATE).filter(|value| value.len() <= 512);
        telemetry::continue_from(&span, traceparent.as_deref(), tracestate);
        span
    } else {
        tracing::info_span!("request", request_id = %request_id)
    };
    depot.insert_typed(Caller { request_id, traceparent });
    ctrl.call_next(req, depot, res).instrument(span.clone()).await;
    if telemetry::enabled() {
        let (route, _) = super::route(req);
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        telemetry::rename(&span, format!("{} {route}", req.method()));
        span.record("http.route", route);
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
}

/// Each request counted, logged at `info` if it failed or was slow, else (and probes) at `debug`.
#[handler]
pub async fn access_log(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let started = Instant::now();
    ctrl.call_next(req, depot, res).await;
    let elapsed = started.elapsed();
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let (route, probe) = super::route(req);
    // A label value: `'static`, and few.
    let known = ["GET", "HEAD", "POST"].into_iter().find(|m| req.method().as_str() == *m);
    let method = known.unwrap_or("OTHER");
    if let Ok(state) = depot.get_typed::<Arc<AppState>>() {
        state.metrics.observe_request(Route { method, route }, status, elapsed);
    }
    let (path, latency_ms) = (req.uri().path(), elapsed.as_secs_f64() * 1000.0);
    if (status >= 400 || elapsed >= bookshop_common::logging::SLOW) && !probe {
        tracing::info!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
    } else {
        tracing::debug!(target: ACCESS_LOG_TARGET, method, route, path, status, latency_ms, "request");
    }
}

#[handler]
pub async fn security_headers(res: &mut Response) {
    let headers = res.headers_mut();
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
}

/// While draining, each answer closes its connection: clients go elsewhere, not to a closing one.
#[handler]
pub async fn close_when_draining(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    ctrl.call_next(req, depot, res).await;
    if depot.get_typed::<Arc<AppState>>().is_ok_and(|state| state.stopping.is_cancelled()) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
