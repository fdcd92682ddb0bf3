//! Prometheus metrics, at `GET /metrics`: HTTP requests by route and status, calls to
//! Recommendations by method and code, retries, the replicas, the live catalog.

use bookshop_common::metrics::{LatencyFamily, latency_family, register, render};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels<const N: usize> = [(&'static str, &'static str); N];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<(Labels<2>, [(&'static str, u16); 1]), Counter>,
    request_seconds: LatencyFamily<Labels<2>>,
    calls: Family<Labels<3>, Counter>,
    call_seconds: LatencyFamily<Labels<2>>,
    pub retries: Counter,
    pub replicas: Family<Labels<1>, Gauge>,
    pub event_streams: Gauge,
    pub event_streams_refused: Counter,
    pub catalog_following: Gauge,
    pub catalog_changes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = bookshop_common::metrics::registry("marketplace");
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
}

impl Metrics {
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        seconds: f64,
    ) {
        let route = [("method", method), ("route", route)];
        self.request_seconds.get_or_create(&route).observe(seconds);
        self.requests.get_or_create(&(route, [("status", status)])).inc();
    }

    /// One attempt of a call: `service/method`, and the code (a gRPC code's name,
    /// `CLIENT_TIMEOUT` when our own guard gave up, `NO_REPLICAS`).
    pub fn observe_call(
        &self,
        method: (&'static str, &'static str),
        code: &'static str,
        seconds: f64,
    ) {
        let method = [("grpc_service", method.0), ("grpc_method", method.1)];
        self.call_seconds.get_or_create(&method).observe(seconds);
        let [service, method] = method;
        self.calls.get_or_create(&[service, method, ("grpc_code", code)]).inc();
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }
}
