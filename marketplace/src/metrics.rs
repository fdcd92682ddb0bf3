//! Prometheus metrics at `GET /metrics`: HTTP requests by route and status with latency
//! histograms, calls to Recommendations by method and code with latency histograms, retries,
//! the replicas the balancer knows, the live catalog (event streams, the version stream,
//! changes), and build info.

use std::sync::Arc;

use bookshop_common::metrics::{
    CONTENT_TYPE, LatencyFamily, latency_family, register, register_build_info, render,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use salvo::{
    Response, handler,
    http::{HeaderValue, header},
};

use crate::balance::ReplicaPool;

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

/// A gRPC method of Recommendations, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMethod {
    /// The fully qualified service (`Recommendations`, `grpc.health.v1.Health`).
    pub service: &'static str,
    /// The method (`Recommend`, `Check`).
    pub method: &'static str,
}

/// The Marketplace's metrics, in a registry of their own.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    request_seconds: LatencyFamily<HttpRouteLabels>,
    calls: Family<GrpcLabels, Counter>,
    call_seconds: LatencyFamily<GrpcMethodLabels>,
    retries: Counter,
    replicas: Family<ReplicaLabels, Gauge>,
    /// Live-catalog event streams (`GET /events`) open now.
    pub event_streams: Gauge,
    /// Event streams refused because `server.max_event_streams` were open.
    pub event_streams_refused: Counter,
    /// 1 while the catalog's version stream from Recommendations is open, else 0.
    pub catalog_following: Gauge,
    /// Catalog changes seen (new versions, or Recommendations' API changing).
    pub catalog_changes: Counter,
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
        register_build_info(&mut registry, "marketplace", env!("CARGO_PKG_VERSION"));
        bookshop_common::telemetry::register_metrics(&mut registry);
        let r = &mut registry;
        Metrics {
            requests: register(
                r,
                "http_requests",
                "HTTP requests answered, by method, route and status",
                Family::default(),
            ),
            request_seconds: register(
                r,
                "http_request_duration_seconds",
                "Time to answer an HTTP request, in seconds",
                latency_family(),
            ),
            calls: register(
                r,
                "grpc_client_handled",
                "Calls to Recommendations (each attempt), by method and status code",
                Family::default(),
            ),
            call_seconds: register(
                r,
                "grpc_client_handling_seconds",
                "Time of a call to Recommendations (each attempt), in seconds",
                latency_family(),
            ),
            retries: register(
                r,
                "bookshop_recommendations_retries",
                "Calls retried on another replica after the first could not be reached",
                Counter::default(),
            ),
            replicas: register(
                r,
                "bookshop_recommendations_replicas",
                "Recommendations replicas known to the balancer, by state (serving or ejected)",
                Family::default(),
            ),
            event_streams: register(
                r,
                "bookshop_event_streams",
                "Live-catalog event streams (GET /events) open now",
                Gauge::default(),
            ),
            event_streams_refused: register(
                r,
                "bookshop_event_streams_refused",
                "Event streams refused because server.max_event_streams were open",
                Counter::default(),
            ),
            catalog_following: register(
                r,
                "bookshop_catalog_following",
                "1 while the catalog's version stream from Recommendations is open, else 0",
                Gauge::default(),
            ),
            catalog_changes: register(
                r,
                "bookshop_catalog_changes",
                "Catalog changes seen: a new version in service, or the API Recommendations speaks",
                Counter::default(),
            ),
            registry,
        }
    }

    /// Counts one answered HTTP request; `method` and `route` are fixed labels (see
    /// [`route_label`](crate::routes::route_label)), never raw request text.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.request_seconds
            .get_or_create(&HttpRouteLabels { method, route })
            .observe(seconds);
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts one attempt of a call to Recommendations. `code` is the gRPC status code name
    /// (`OK`, `UNAVAILABLE`, …; `CLIENT_TIMEOUT` when our own guard gave up).
    pub fn observe_call(&self, method: GrpcMethod, code: &'static str, seconds: f64) {
        let (grpc_service, grpc_method) = (method.service, method.method);
        self.call_seconds
            .get_or_create(&GrpcMethodLabels {
                grpc_service,
                grpc_method,
            })
            .observe(seconds);
        self.calls
            .get_or_create(&GrpcLabels {
                grpc_service,
                grpc_method,
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
