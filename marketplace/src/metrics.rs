//! Prometheus metrics at `GET /metrics`: requests, calls to Recommendations, the live catalog.

use std::time::Duration;

use bookshop_common::metrics::{GrpcCalls, LatencyFamily, latency_family, register, render};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub method: &'static str,
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    #[prometheus(flatten)]
    route: Route,
    status: u16,
}

pub use bookshop_common::metrics::Method;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    request_seconds: LatencyFamily<Route>,
    pub calls: GrpcCalls,
    pub retries: Counter,
    pub replicas: Family<[(&'static str, &'static str); 1], Gauge>,
    pub event_streams: Gauge,
    pub event_streams_refused: Counter,
    pub catalog_following: Gauge,
    pub catalog_changes: Counter,
    pub replicas_behind: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = bookshop_common::metrics::registry("marketplace");
        let r = &mut registry;
        let help = "Time to answer an HTTP request, in seconds";
        let request_seconds = latency_family();
        r.register("http_request_duration_seconds", help, request_seconds.clone());
        let calls = GrpcCalls::register(r, "client", "Calls to Recommendations (each attempt)");
        let help = "Calls retried on another replica after the first could not be reached";
        let retries = register(r, "bookshop_recommendations_retries", help);
        let help = "Recommendations replicas known to the balancer, by state (serving or ejected)";
        let replicas = register(r, "bookshop_recommendations_replicas", help);
        let help = "Live-catalog event streams (GET /events) open now";
        let event_streams = register(r, "bookshop_event_streams", help);
        let help = "Event streams refused because server.max_event_streams were open";
        let event_streams_refused = register(r, "bookshop_event_streams_refused", help);
        let help = "1 while the catalog's version stream from Recommendations is open, else 0";
        let catalog_following = register(r, "bookshop_catalog_following", help);
        let help =
            "Catalog changes seen: a new version in service, or the API Recommendations speaks";
        let catalog_changes = register(r, "bookshop_catalog_changes", help);
        let help = "Recommendations replicas serving another catalog version than the one followed";
        let replicas_behind = register(r, "bookshop_catalog_replicas_behind", help);
        Metrics {
            requests: register(r, "http_requests", "HTTP requests by method, route and status"),
            request_seconds,
            calls,
            retries,
            replicas,
            event_streams,
            event_streams_refused,
            catalog_following,
            catalog_changes,
            replicas_behind,
            registry,
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, route: Route, status: u16, took: Duration) {
        self.request_seconds.get_or_create(&route).observe(took.as_secs_f64());
        self.requests.get_or_create(&Answered { route, status }).inc();
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }
}
