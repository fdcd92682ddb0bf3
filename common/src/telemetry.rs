//! Distributed traces: spans exported over OTLP, configured by the standard `OTEL_*` variables.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! and then no layer is installed: [`enabled`] is false, the services make none of their
//! trace-only spans, and nothing is extracted or injected, so tracing costs nothing when off.
//!
//! When on, [`install`] gives the `tracing` layer that turns the services' spans into
//! OpenTelemetry spans, and a [`Traces`] guard whose [`Traces::shutdown`] flushes them at the end
//! of the serve path. Spans are exported in batches by the SDK's `BatchSpanProcessor` from a
//! thread of its own, through a bounded queue ([`TraceSettings::max_queue_size`]): a collector
//! that is down or slow costs a request nothing, spans that do not fit are dropped, and memory
//! stays bounded. Spans that never reached the collector are counted in
//! `bookshop_trace_spans_not_exported_total` ([`register_metrics`], [`export`]).
//!
//! [`continue_from`] makes a server span the child of the caller's W3C `traceparent` (and
//! `tracestate`), [`inject`] sends a client span's context on; both record the span's
//! `trace_id` and `span_id` fields, so the log lines inside the span carry them.
//!
//! Files: [`settings`] (the variables), [`export`] (the bounded, counted export),
//! [`propagation`] (W3C trace context in and out); here, [`install`] and [`enabled`].

mod export;
mod propagation;
mod settings;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing_subscriber::{Layer, Registry as Spans, filter::Targets};

use export::{Bounded, Counting, start_counting};

pub use export::register_metrics;
pub use propagation::{TRACEPARENT, TRACESTATE, continue_from, inject, record_ids, rename};
pub use settings::{Protocol, TelemetryError, TraceSettings};

/// Whether a trace layer is installed in this process.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are on: when false, the services skip their trace-only spans and every
/// function here returns at once.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The spans that become OpenTelemetry spans: the services' own. The exporter's own gRPC and
/// HTTP client (tonic, hyper, h2) stays out, or exporting would make spans to export.
fn own_spans() -> Targets {
    Targets::new()
        .with_target("marketplace", tracing::Level::TRACE)
        .with_target("recommendations", tracing::Level::TRACE)
        .with_target("bookshop_common", tracing::Level::TRACE)
}

/// The `tracing` layer that records spans, for the global subscriber.
pub type TraceLayer = Box<dyn Layer<Spans> + Send + Sync>;

/// Keeps the tracer provider; [`Traces::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports the spans still queued and stops the exporter, waiting at most `timeout`. Call
    /// it from a thread that is not one of the runtime's, while the runtime still runs (the
    /// export runs on it): a blocking-pool thread, or any thread beside a multi-threaded one.
    pub fn shutdown(self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(%error, "traces: could not export every span before stopping");
        }
    }
}

/// Sets up export as `settings` say and returns the layer to install and its guard. Must be
/// called inside the Tokio runtime the exporter is to run on (its connections live there).
pub fn install(settings: &TraceSettings) -> Result<(TraceLayer, Traces), TelemetryError> {
    let failed = |reason: String| TelemetryError::Exporter {
        endpoint: settings.endpoint.clone(),
        reason,
    };
    let exporter = match settings.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&settings.endpoint)
            .with_timeout(settings.export_timeout)
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(
                opentelemetry_http::hyper::HyperClient::with_default_connector(
                    settings.export_timeout,
                    None,
                ),
            )
            .with_endpoint(&settings.endpoint)
            .with_timeout(settings.export_timeout)
            .build(),
    }
    .map_err(|error| failed(error.to_string()))?;
    let waiting = Arc::new(AtomicUsize::new(0));
    let exporter = Counting {
        inner: Arc::new(exporter),
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|error| failed(error.to_string()))?,
        timeout: settings.export_timeout,
        waiting: waiting.clone(),
    };
    let batches = Bounded {
        inner: BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(settings.max_queue_size)
                    .with_scheduled_delay(settings.schedule_delay)
                    .build(),
            )
            .build(),
        waiting,
        limit: settings.max_queue_size,
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(settings.sampler.clone())
        .with_resource(
            Resource::builder_empty()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("bookshop");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(own_spans())
        .boxed();
    start_counting();
    ENABLED.store(true, Ordering::Relaxed);
    Ok((layer, Traces { provider }))
}
