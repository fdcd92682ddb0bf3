//! Seeing what the Marketplace does: request ids that follow a request into Recommendations'
//! log, and Prometheus metrics at `GET /metrics`.
//!
//! - [`request_context`] (the outermost hoop) takes the request id from `x-request-id` when the
//!   client sent a usable one, else makes one; returns it in the response's `x-request-id`; and
//!   runs the rest of the request inside a `request{request_id=…}` span, so every log line of the
//!   request (the access log, a failed call) carries it. The gateway sends it, and the W3C
//!   `traceparent` when the client sent one, to Recommendations as gRPC metadata.
//! - [`Metrics`]: HTTP requests by route and status with latency histograms, gRPC calls to
//!   Recommendations by method and code with latency histograms, the replicas the balancer knows,
//!   and build info.

use std::sync::Arc;

use bookshop_common::metrics::{CONTENT_TYPE, latency_histogram, register_build_info, render};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use salvo::{
    Depot, FlowCtrl, Request, Response, handler,
    http::{HeaderName, HeaderValue, header},
};
use tracing::Instrument;

use crate::balance::ReplicaPool;

/// The request id header, read from clients and returned to them.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header, passed through to Recommendations.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the current request passes on to Recommendations.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (the client's, or ours).
    pub request_id: String,
    /// The client's `traceparent`, if it sent a well-formed one.
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The context of the request being handled on this task, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A client's request id is used if it is 1 to 128 visible ASCII characters; anything else is
/// replaced, so that logs and headers never carry control characters or megabytes.
fn usable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// `version-traceid-parentid-flags`, lower-case hex: `00-<32>-<16>-<2>`.
fn usable_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}

/// A new random request id: 128 bits as 32 hex digits.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The outermost hoop: the request id, its response header, and the request's span.
#[handler]
pub async fn request_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request_id = header(&REQUEST_ID)
        .filter(|id| usable_request_id(id))
        .map_or_else(new_request_id, str::to_owned);
    let traceparent = header(&TRACEPARENT)
        .filter(|tp| usable_traceparent(tp))
        .map(str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let span = tracing::info_span!("request", request_id = %request_id);
    let context = RequestContext {
        request_id,
        traceparent,
    };
    CURRENT
        .scope(context, ctrl.call_next(req, depot, res).instrument(span))
        .await;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcMethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    state: &'static str,
}

/// The Marketplace's metrics, in a registry of their own.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    request_seconds: Family<HttpRouteLabels, Histogram, fn() -> Histogram>,
    calls: Family<GrpcLabels, Counter>,
    call_seconds: Family<GrpcMethodLabels, Histogram, fn() -> Histogram>,
    retries: Counter,
    replicas: Family<ReplicaLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<HttpRouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, in seconds",
            request_seconds.clone(),
        );
        let calls = Family::<GrpcLabels, Counter>::default();
        registry.register(
            "grpc_client_handled",
            "Calls to Recommendations (each attempt), by method and status code",
            calls.clone(),
        );
        let call_seconds =
            Family::<GrpcMethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "grpc_client_handling_seconds",
            "Time of a call to Recommendations (each attempt), in seconds",
            call_seconds.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "bookshop_recommendations_retries",
            "Calls retried on another replica after the first could not be reached",
            retries.clone(),
        );
        let replicas = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "bookshop_recommendations_replicas",
            "Recommendations replicas known to the balancer, by state (serving or ejected)",
            replicas.clone(),
        );
        register_build_info(&mut registry, "marketplace", env!("CARGO_PKG_VERSION"));
        Metrics {
            registry,
            requests,
            request_seconds,
            calls,
            call_seconds,
            retries,
            replicas,
        }
    }

    /// Counts one answered HTTP request (`route` and `method` are fixed labels, see
    /// [`route_label`](crate::middleware::route_label)).
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&HttpRouteLabels { method, route })
            .observe(seconds);
    }

    /// Counts one attempt of a call to Recommendations. `code` is the gRPC status code name
    /// (`OK`, `UNAVAILABLE`, …; `CLIENT_TIMEOUT` when our own guard gave up).
    pub fn observe_call(
        &self,
        service: &'static str,
        method: &'static str,
        code: &'static str,
        seconds: f64,
    ) {
        self.calls
            .get_or_create(&GrpcLabels {
                grpc_service: service,
                grpc_method: method,
                grpc_code: code,
            })
            .inc();
        self.call_seconds
            .get_or_create(&GrpcMethodLabels {
                grpc_service: service,
                grpc_method: method,
            })
            .observe(seconds);
    }

    /// Counts a retry on another replica.
    pub fn observe_retry(&self) {
        self.retries.inc();
    }

    /// The metrics as text, with the replica gauges read from `pool` now.
    pub fn render(&self, pool: &ReplicaPool) -> String {
        let states = pool.states();
        let ejected = states.iter().filter(|s| s.ejected).count();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.replicas
            .get_or_create(&ReplicaLabels { state: "serving" })
            .set(count(states.len() - ejected));
        self.replicas
            .get_or_create(&ReplicaLabels { state: "ejected" })
            .set(count(ejected));
        render(&self.registry)
    }
}

/// `GET /metrics`: the Prometheus text.
#[derive(Debug, Clone)]
pub struct MetricsHandler {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The replica pool, for the replica gauges.
    pub pool: ReplicaPool,
}

#[handler]
impl MetricsHandler {
    async fn handle(&self, res: &mut Response) {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.body(self.metrics.render(&self.pool));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_taken_from_clients() {
        assert!(usable_request_id("abc-123_XYZ.4"));
        assert!(!usable_request_id(""));
        assert!(!usable_request_id("has space"));
        assert!(!usable_request_id("new\nline"));
        assert!(!usable_request_id(&"x".repeat(129)));
        assert_eq!(new_request_id().len(), 32);
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn only_well_formed_traceparents_are_passed_on() {
        assert!(usable_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!usable_traceparent(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!usable_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!usable_traceparent("00-abc-def-01"));
        assert!(!usable_traceparent("garbage"));
    }
}
