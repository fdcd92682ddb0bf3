//! Distributed traces: the services' `tracing` spans exported over OTLP, configured by the
//! standard `OTEL_*` variables, which the OpenTelemetry SDK and exporter read themselves.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set; then no layer is
//! installed, [`enabled`] is false and the services make none of their trace-only spans, so
//! traces cost nothing when off. When on, spans are exported in batches from the SDK's own
//! thread through a bounded queue: a collector that is down or slow costs a request nothing.
//!
//! # Layout
//! - [`env`]: the variables that would otherwise crash or silently misbehave, checked.
//! - [`export`]: the bounded queue, the exports run on the runtime, and the lost spans counted.
//! - [`propagation`]: W3C trace context in and out, and the span ids in log lines.

pub(crate) mod env;
mod export;
mod propagation;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing_subscriber::{Layer, Registry, filter::Targets};

pub use env::TelemetryError;
pub use export::register_metrics;
pub use propagation::{
    TRACEPARENT, TRACESTATE, continue_from, inject, is_traceparent, record_ids, rename,
};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are on: when not, the services skip their trace-only spans.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The layer that turns spans into OpenTelemetry spans, for the global subscriber.
pub type TraceLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The running export; [`Traces::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    exporter: env::Exporter,
}

/// Sets up export as the `OTEL_*` variables say, or nothing when they leave traces off.
/// `service` is the default `service.name`. Call it inside the runtime the exports run on.
pub fn install(service: &str) -> Result<Option<Traces>, TelemetryError> {
    install_with(service, |name| std::env::var(name).ok())
}

/// [`install`] with the variables `var` gives (tests give their own), for those checked here;
/// the SDK reads the others from the process.
pub fn install_with(
    service: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Traces>, TelemetryError> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned());
    match env::exporter(var)? {
        Some(exporter) => Traces::start(&service, exporter).map(Some),
        None => Ok(None),
    }
}

impl Traces {
    pub(crate) fn start(service: &str, exporter: env::Exporter) -> Result<Traces, TelemetryError> {
        let built = match exporter.protocol {
            env::Protocol::Grpc => {
                SpanExporter::builder().with_tonic().with_endpoint(&exporter.endpoint).build()
            }
            env::Protocol::HttpProtobuf => {
                SpanExporter::builder().with_http().with_endpoint(&exporter.endpoint).build()
            }
        };
        let built = built.map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        let waiting = Arc::new(AtomicUsize::new(0));
        let exports = export::OnRuntime::new(built, waiting.clone())?;
        let mut batch = BatchConfigBuilder::default().with_max_queue_size(exporter.max_queue_size);
        if let Some(delay) = exporter.schedule_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        let batches = export::Bounded {
            inner: BatchSpanProcessor::builder(exports).with_batch_config(batch.build()).build(),
            waiting,
            limit: exporter.max_queue_size,
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Traces { provider, exporter })
    }

    /// The layer for the services' own spans: the exporter's own clients (tonic, hyper, h2)
    /// stay out, or exporting would make spans to export.
    pub fn layer(&self) -> TraceLayer {
        let own = Targets::new()
            .with_target("marketplace", tracing::Level::TRACE)
            .with_target("recommendations", tracing::Level::TRACE)
            .with_target("bookshop_common", tracing::Level::TRACE);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("bookshop"))
            .with_location(false)
            .with_threads(false)
            .with_filter(own)
            .boxed()
    }

    /// Exports what is still queued, waiting at most `timeout`. Call it from a thread that is
    /// not the runtime's, while the runtime still runs (the exports run on it).
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
            timeout: None,
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
