//! Request ids that follow a request into Recommendations' log.
//!
//! [`request_context`] (the outermost hoop) takes the request id from `x-request-id` when the
//! client sent a usable one, else makes one; returns it in the response's `x-request-id`; and
//! runs the rest of the request inside a `request{request_id=…}` span, so every log line of the
//! request (the access log, a failed call) carries it. The gateway sends it, and the W3C
//! `traceparent` when the client sent one, to Recommendations as gRPC metadata
//! ([`with_current`]).
//!
//! With traces on ([`telemetry`]), the span is the request's server span (route and status),
//! continuing the caller's `traceparent`, and each call's attempt sends its own span's context
//! instead (`client.rs`), so that Recommendations' span is the child of that attempt.

use bookshop_common::telemetry;
use salvo::{
    Depot, FlowCtrl, Request, Response, handler,
    http::{HeaderName, HeaderValue, StatusCode},
};
use tracing::Instrument;

use crate::routes::route_label;

/// The request id header, read from clients and returned to them.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header, passed through to Recommendations.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the current request passes on to Recommendations.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (the client's, or ours): visible ASCII.
    pub request_id: String,
    /// The client's `traceparent`, if it sent a well-formed one.
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `f` with the context of the request being handled on this task, if any.
pub fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// The outermost hoop: the request id, its response header, and the request's span.
#[handler]
pub async fn request_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let request_id = header(REQUEST_ID)
        .filter(|id| bookshop_common::loggable_id(id.as_bytes()))
        .map_or_else(|| format!("{:032x}", rand::random::<u128>()), str::to_owned);
    let traceparent = header(TRACEPARENT)
        .filter(|tp| usable_traceparent(tp))
        .map(str::to_owned);
    // Loggable ids are visible ASCII: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if !telemetry::enabled() {
        let span = tracing::info_span!("request", request_id = %request_id);
        let context = RequestContext {
            request_id,
            traceparent,
        };
        CURRENT
            .scope(context, ctrl.call_next(req, depot, res).instrument(span))
            .await;
        return;
    }
    // With traces on, the request's span is the server span of its trace: the child of the
    // caller's `traceparent` (a browser's, a proxy's) when there is one.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    telemetry::continue_from(
        &span,
        traceparent.as_deref(),
        header(TRACESTATE).filter(|ts| ts.len() <= MAX_TRACESTATE_LEN),
    );
    let context = RequestContext {
        request_id,
        traceparent,
    };
    CURRENT
        .scope(
            context,
            ctrl.call_next(req, depot, res).instrument(span.clone()),
        )
        .await;
    let route = route_label(req).map_or("-", |route| route.path);
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    telemetry::rename(&span, format!("{} {route}", req.method()));
    span.record("http.route", route);
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The W3C `tracestate` header, passed on with the `traceparent` when traces are on.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest `tracestate` taken from a caller: the W3C limit is 32 members, a few hundred
/// bytes in practice; a longer one is left out rather than carried into every call.
const MAX_TRACESTATE_LEN: usize = 512;

/// `version-traceid-parentid-flags`, lower-case hex: `00-<32>-<16>-<2>`, with a version other
/// than `ff` and ids that are not all zeros (W3C Trace Context).
fn usable_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, parent_id, flags] = parts[..] else {
        return false;
    };
    let hex =
        |s: &str, len| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let not_zero = |s: &str| s.bytes().any(|b| b != b'0');
    hex(version, 2)
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && version != "ff"
        && not_zero(trace_id)
        && not_zero(parent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_passed_on() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(usable_traceparent(good));
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-abc-def-01",
            "garbage",
            "",
        ] {
            assert!(!usable_traceparent(bad), "{bad}");
        }
    }
}
