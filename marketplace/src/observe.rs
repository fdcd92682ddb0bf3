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
use bookshop_proto::SERVICE_NAME;
use bytes::Bytes;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use salvo::{
    Depot, FlowCtrl, Request, Response, handler,
    http::{HeaderName, HeaderValue, header},
};
use tonic::metadata::{Ascii, MetadataValue};
use tracing::Instrument;

use crate::balance::ReplicaPool;

/// The method nearly every call to Recommendations is (its metrics label).
pub const RECOMMEND: &str = "Recommend";

/// The request id header, read from clients and returned to them.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header, passed through to Recommendations.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the current request passes on to Recommendations, ready to go into a call's metadata.
///
/// Both values are marked sensitive, which makes HTTP/2 send them as never-indexed literals: a
/// value that is new on every request can never be reused from the HPACK table, so indexing it
/// would only cost both sides a table insertion and evict entries that can be reused.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (the client's, or ours).
    pub request_id: MetadataValue<Ascii>,
    /// The client's `traceparent`, if it sent a well-formed one.
    pub traceparent: Option<MetadataValue<Ascii>>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `f` with the context of the request being handled on this task, if any.
pub fn with_current<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// `version-traceid-parentid-flags`, lower-case hex: `00-<32>-<16>-<2>`.
fn usable_traceparent(value: &[u8]) -> bool {
    if value.len() != 55 || [value[2], value[35], value[52]] != [b'-'; 3] {
        return false;
    }
    let (version, trace_id, parent_id, flags) =
        (&value[..2], &value[3..35], &value[36..52], &value[53..]);
    let hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let not_zero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    [version, trace_id, parent_id, flags].into_iter().all(hex)
        && version != b"ff"
        && not_zero(trace_id)
        && not_zero(parent_id)
}

/// A new random request id: 128 bits as 32 lower-case hex digits.
fn new_request_id() -> Bytes {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        *digit = DIGITS[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    Bytes::copy_from_slice(&id)
}

/// A value for the call's metadata, sent as a never-indexed literal (see [`RequestContext`]).
fn sensitive(value: Bytes) -> Option<MetadataValue<Ascii>> {
    let mut value = MetadataValue::try_from(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The headers a page response carries, for [`request_context`]'s one allocation.
const RESPONSE_HEADERS: usize = 16;

/// The outermost hoop: the request id, its response header, and the request's span.
#[handler]
pub async fn request_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let header = |name: &HeaderName| req.headers().get(name).map(HeaderValue::as_bytes);
    // Checked here, so the conversions below cannot fail (they check again anyway).
    let request_id = header(&REQUEST_ID)
        .filter(|id| bookshop_common::loggable_id(id))
        .map_or_else(new_request_id, Bytes::copy_from_slice);
    let traceparent = header(&TRACEPARENT)
        .filter(|tp| usable_traceparent(tp))
        .map(Bytes::copy_from_slice)
        .and_then(sensitive);
    let headers = res.headers_mut();
    // Room for every header of a page at once (ours and the security headers: 11), instead of
    // growing the map three times on the way.
    headers.reserve(RESPONSE_HEADERS);
    if let Ok(value) = HeaderValue::from_maybe_shared(request_id.clone()) {
        headers.insert(REQUEST_ID, value);
    }
    let text = std::str::from_utf8(&request_id).unwrap_or("-");
    let span = tracing::info_span!("request", request_id = %text);
    let Some(request_id) = sensitive(request_id.clone()) else {
        ctrl.call_next(req, depot, res).instrument(span).await;
        return;
    };
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
    /// The series nearly every request and call lands in, looked up once, so the hot path
    /// neither hashes labels nor takes the families' locks.
    hot: HotSeries,
}

/// `GET` of the pages (`/`) and of the API with `200`, and a successful `Recommend`.
#[derive(Debug)]
struct HotSeries {
    routes: [HotRoute; 2],
    recommend_ok: Counter,
    recommend_seconds: Histogram,
}

#[derive(Debug)]
struct HotRoute {
    route: &'static str,
    ok: Counter,
    seconds: Histogram,
}

/// The routes of [`HotSeries`], as [`route_label`](crate::middleware::route_label) names them.
const HOT_ROUTES: [&str; 2] = ["/", "/api/recommendations"];

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
        let recommend = GrpcMethodLabels {
            grpc_service: SERVICE_NAME,
            grpc_method: RECOMMEND,
        };
        let hot = HotSeries {
            routes: HOT_ROUTES.map(|route| HotRoute {
                route,
                ok: requests
                    .get_or_create(&HttpLabels {
                        method: "GET",
                        route,
                        status: 200,
                    })
                    .clone(),
                seconds: request_seconds
                    .get_or_create(&HttpRouteLabels {
                        method: "GET",
                        route,
                    })
                    .clone(),
            }),
            recommend_ok: calls
                .get_or_create(&GrpcLabels {
                    grpc_service: SERVICE_NAME,
                    grpc_method: RECOMMEND,
                    grpc_code: "OK",
                })
                .clone(),
            recommend_seconds: call_seconds.get_or_create(&recommend).clone(),
        };
        Metrics {
            registry,
            requests,
            request_seconds,
            calls,
            call_seconds,
            retries,
            replicas,
            hot,
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
        let hot = (method == "GET")
            .then(|| self.hot.routes.iter().find(|hot| hot.route == route))
            .flatten();
        match hot {
            Some(hot) => hot.seconds.observe(seconds),
            None => self
                .request_seconds
                .get_or_create(&HttpRouteLabels { method, route })
                .observe(seconds),
        }
        match hot {
            Some(hot) if status == 200 => hot.ok.inc(),
            _ => self
                .requests
                .get_or_create(&HttpLabels {
                    method,
                    route,
                    status,
                })
                .inc(),
        };
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
        let recommend = service == SERVICE_NAME && method == RECOMMEND;
        if recommend {
            self.hot.recommend_seconds.observe(seconds);
            if code == "OK" {
                self.hot.recommend_ok.inc();
                return;
            }
        } else {
            self.call_seconds
                .get_or_create(&GrpcMethodLabels {
                    grpc_service: service,
                    grpc_method: method,
                })
                .observe(seconds);
        }
        self.calls
            .get_or_create(&GrpcLabels {
                grpc_service: service,
                grpc_method: method,
                grpc_code: code,
            })
            .inc();
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
    fn new_request_ids_are_32_random_hex_digits() {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id:?}"
        );
        assert_ne!(new_request_id(), new_request_id());
        // Every digit position varies (a shift mistake would leave some fixed).
        let ids: Vec<Bytes> = (0..64).map(|_| new_request_id()).collect();
        for position in 0..32 {
            assert!(
                ids.iter().any(|id| id[position] != ids[0][position]),
                "digit {position} never changes"
            );
        }
    }

    #[test]
    fn per_request_values_are_sent_never_indexed() {
        let value = sensitive(new_request_id()).expect("an id is a valid metadata value");
        assert!(value.is_sensitive());
    }

    #[test]
    fn only_well_formed_traceparents_are_passed_on() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(usable_traceparent(good.as_bytes()));
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
            assert!(!usable_traceparent(bad.as_bytes()), "{bad}");
        }
    }
}
