//! Spans exported over OTLP as `OTEL_*` says; without an endpoint, [`enabled`] is false.

pub(crate) mod env;
mod export;
mod propagation;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::{fmt, sync::Arc, time::Duration};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{Layer, Registry, filter::Targets};

pub use env::TelemetryError;
pub use export::register_metrics;
pub use propagation::{TRACEPARENT, TRACESTATE, continue_from, inject, is_traceparent};
pub use propagation::{record_ids, rename};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub type TraceLayer = Box<dyn Layer<Registry> + Send + Sync>;

#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    exporter: env::Exporter,
}

/// Starts export as `OTEL_*` says, `service` the default `service.name`, on the current runtime.
pub fn install(service: &str) -> Result<Option<Traces>, TelemetryError> {
    install_with(service, |name| std::env::var(name).ok())
}

/// [`install`] with the variables `var` gives (tests give their own) for those checked here.
pub fn install_with(
    service: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Traces>, TelemetryError> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned());
    env::exporter(var)?.map(|exporter| Traces::start(&service, exporter)).transpose()
}

impl Traces {
    pub(crate) fn start(service: &str, exporter: env::Exporter) -> Result<Traces, TelemetryError> {
        let builder = SpanExporter::builder();
        let endpoint = exporter.endpoint.as_str();
        let built = match exporter.protocol {
            env::Protocol::Grpc => builder.with_tonic().with_endpoint(endpoint).build(),
            env::Protocol::HttpProtobuf => builder.with_http().with_endpoint(endpoint).build(),
        };
        let built = built.map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        let waiting = Arc::new(AtomicUsize::new(0));
        let exports = export::OnRuntime::new(built, waiting.clone())?;
        let mut batch = BatchConfigBuilder::default().with_max_queue_size(exporter.max_queue_size);
        if let Some(delay) = exporter.schedule_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        let inner = BatchSpanProcessor::builder(exports).with_batch_config(batch.build()).build();
        let batches = export::Bounded { inner, waiting, limit: exporter.max_queue_size };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Traces { provider, exporter })
    }

    /// For the services' own spans only: the exporter's clients' spans would make spans to export.
    pub fn layer(&self) -> TraceLayer {
        let own_crates = ["marketplace", "recommendations", "bookshop_common"];
        let own: Targets = own_crates.into_iter().map(|name| (name, Level::TRACE)).collect();
        let layer = tracing_opentelemetry::layer().with_tracer(self.provider.tracer("bookshop"));
        layer.with_location(false).with_threads(false).with_filter(own).boxed()
    }

    /// Exports what is queued, waiting at most `timeout`, off the runtime's threads while it runs.
    pub fn shutdown(self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(%error, "traces: could not export every span before stopping");
        }
    }
}

impl fmt::Display for Traces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env::Exporter { endpoint, protocol, max_queue_size, .. } = &self.exporter;
        write!(f, "{protocol} to {endpoint}, at most {max_queue_size} spans queued")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stopping_with_a_silent_collector_waits_no_longer_than_asked() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Takes connections (into the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let exporter = env::Exporter {
            endpoint: format!("http://{}", silent.local_addr().unwrap()),
            protocol: env::Protocol::Grpc,
            max_queue_size: 16,
            schedule_delay: None,
        };
        let traces = {
            let _inside = runtime.enter();
            Traces::start("test", exporter).unwrap()
        };
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            traces.layer(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("waiting").in_scope(|| {});
        });
        let started = std::time::Instant::now();
        traces.shutdown(Duration::from_millis(500));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    }
}
