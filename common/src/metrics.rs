//! What both services' Prometheus metrics share: latency buckets, the build-info metric, and
//! the text served at `/metrics`.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

/// Latency histograms by label set, from 0.5 ms to 10 s: answers take well under a
/// millisecond, pages a few; deadlines are around a second.
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub fn latency_family<L: Clone + Eq + std::hash::Hash>() -> LatencyFamily<L> {
    const BUCKETS: [f64; 14] =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    Family::new_with_constructor(|| Histogram::new(BUCKETS))
}

/// Registers `metric` and returns it: a metric is a shared handle, so the service updates the
/// one the registry renders.
pub fn register<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    service: &'static str,
    version: &'static str,
}

/// A registry with `bookshop_build_info{service, version} 1` and the trace export's counts.
pub fn registry(service: &'static str) -> Registry {
    let mut registry = Registry::default();
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels { service, version: env!("CARGO_PKG_VERSION") }).set(1);
    registry.register(
        "bookshop_build_info",
        "The running service and its version (always 1)",
        info,
    );
    crate::telemetry::register_metrics(&mut registry);
    registry
}

pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = encode(&mut text, registry);
    text
}
