//! What both services' Prometheus metrics share: latency buckets, build info, `/metrics` text.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::{Metric, Registry};

/// From 0.5 ms to 10 s: answers take well under a millisecond, pages a few, deadlines a second.
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub fn latency_family<L: Clone + Eq + std::hash::Hash>() -> LatencyFamily<L> {
    const BUCKETS: [f64; 14] =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    Family::new_with_constructor(|| Histogram::new(BUCKETS))
}

/// A new metric, registered: the handle returned shares its counts with the registry.
pub fn register<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A gRPC method as the metrics and spans name it: service and method.
pub type Method = (&'static str, &'static str);

pub type Labels<const N: usize> = [(&'static str, &'static str); N];

/// gRPC calls counted and timed by service, method and code, named as go-grpc-prometheus does.
#[derive(Debug)]
pub struct GrpcCalls {
    handled: Family<Labels<3>, Counter>,
    seconds: LatencyFamily<Labels<2>>,
}

impl GrpcCalls {
    pub fn register(registry: &mut Registry, side: &str, help: &str) -> Self {
        let (handled, seconds) = (Family::default(), latency_family());
        let name = format!("grpc_{side}_handled");
        registry.register(name, format!("{help}, by method and status code"), handled.clone());
        let name = format!("grpc_{side}_handling_seconds");
        registry.register(name, format!("{help}: time taken, in seconds"), seconds.clone());
        GrpcCalls { handled, seconds }
    }

    pub fn observe(&self, (service, method): Method, code: &'static str, took: Duration) {
        let call @ [service, method] = [("grpc_service", service), ("grpc_method", method)];
        self.seconds.get_or_create(&call).observe(took.as_secs_f64());
        self.handled.get_or_create(&[service, method, ("grpc_code", code)]).inc();
    }
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry with `bookshop_build_info{service, version} 1` and the trace export's counts.
pub fn registry(service: &'static str) -> Registry {
    let mut registry = Registry::default();
    let info = Family::<[(&str, &str); 2], Gauge>::default();
    info.get_or_create(&[("service", service), ("version", env!("CARGO_PKG_VERSION"))]).set(1);
    let help = "The running service and its version (always 1)";
    registry.register("bookshop_build_info", help, info);
    crate::telemetry::register_metrics(&mut registry);
    registry
}

pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = encode(&mut text, registry);
    text
}
