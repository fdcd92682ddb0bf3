//! Spans out without costing requests: queued within a bound, exported on Tokio, losses counted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::{Resource, error::OTelSdkError, error::OTelSdkResult};
use prometheus_client::metrics::{counter::Counter, family::Family};
use prometheus_client::registry::Registry;

use super::TelemetryError;

type Lost = [(&'static str, &'static str); 1];
const EXPORT_FAILED: Lost = [("reason", "export_failed")];
const QUEUE_FULL: Lost = [("reason", "queue_full")];

/// The process has one exporter, so the count is the process's, in every registry it is in.
static LOST: LazyLock<Family<Lost, Counter>> = LazyLock::new(Family::default);

/// Whether the last export failed, so that a collector that stays down is logged once.
static FAILING: AtomicBool = AtomicBool::new(false);

pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "bookshop_trace_spans_not_exported",
        "Spans that never reached the collector: reason export_failed (collector down, refusing \
         or slower than OTEL_EXPORTER_OTLP_TIMEOUT) or queue_full (more than \
         OTEL_BSP_MAX_QUEUE_SIZE waiting); absent while traces are off",
        LOST.clone(),
    );
}

/// `inner` behind a bound of `limit` spans waiting; [`OnRuntime`] takes exported ones off.
#[derive(Debug)]
pub(super) struct Bounded<P> {
    pub(super) inner: P,
    pub(super) waiting: Arc<AtomicUsize>,
    pub(super) limit: usize,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            LOST.get_or_create(&QUEUE_FULL).inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[derive(Debug)]
pub(super) struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    waiting: Arc<AtomicUsize>,
}

impl<E> OnRuntime<E> {
    /// `inner` on the current runtime; both series start at 0, so a rate has data from the start.
    pub(super) fn new(inner: E, waiting: Arc<AtomicUsize>) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        LOST.get_or_create(&EXPORT_FAILED).inc_by(0);
        LOST.get_or_create(&QUEUE_FULL).inc_by(0);
        Ok(OnRuntime { inner: Arc::new(inner), runtime, waiting })
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        let spans = batch.len() as u64;
        let inner = self.inner.clone();
        let export = self.runtime.spawn(async move { inner.export(batch).await });
        let result =
            export.await.unwrap_or_else(|e| Err(OTelSdkError::InternalFailure(e.to_string())));
        let was_failing = FAILING.swap(result.is_err(), Ordering::Relaxed);
        if let Err(error) = &result {
            LOST.get_or_create(&EXPORT_FAILED).inc_by(spans);
            if !was_failing {
                tracing::warn!(%error, spans, "traces: cannot export spans to the collector");
            }
        }
        result
    }

    // Flush and shutdown stay the trait's no-ops: so are the OTLP exporter's.
    fn set_resource(&mut self, resource: &Resource) {
        // Called once, before the first export: the exporter is not shared yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};

    use super::*;

    /// Keeps every span and exports none: nothing leaves its queue.
    #[derive(Debug, Default)]
    struct Keeping(std::sync::Mutex<Vec<SpanData>>);

    impl SpanProcessor for Keeping {
        fn on_start(&self, _: &mut Span, _: &Context) {}

        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }

        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }

        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn spans_beyond_the_queue_are_dropped_and_counted() {
        let before = LOST.get_or_create(&QUEUE_FULL).get();
        let inner = Keeping::default();
        let waiting = Arc::new(AtomicUsize::new(0));
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(Bounded { inner, waiting, limit: 2 })
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..5 {
            tracer.start("one").end();
        }
        assert_eq!(LOST.get_or_create(&QUEUE_FULL).get() - before, 3);
    }
}
