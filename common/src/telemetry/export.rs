//! Getting spans out without costing requests: a bound on the spans waiting for export, the
//! export run on the Tokio runtime under a timeout, and a count of the spans that never reached
//! the collector, by reason, for both services' `/metrics`.
//!
//! The SDK's `BatchSpanProcessor` has a bounded queue of its own, but keeps the number of spans
//! it dropped to itself (it only logs it at shutdown). So [`Bounded`] keeps the bound in front
//! of it, with the same size: it counts the spans handed to the processor and not yet taken by
//! an export, and drops (and counts) a span that would not fit, so the processor's own queue
//! never overflows and every lost span is counted.

use std::{
    future::Future,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry::Context;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Why a span never reached the collector.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Lost {
    /// `export_failed`: its batch's export failed or timed out (collector down, refusing,
    /// slow); `queue_full`: it ended while the export queue was full.
    reason: &'static str,
}

const EXPORT_FAILED: Lost = Lost {
    reason: "export_failed",
};
const QUEUE_FULL: Lost = Lost {
    reason: "queue_full",
};

/// Spans lost since the process started. One process has one exporter, so the counter is the
/// process's, shown by every registry it is registered in.
static LOST: LazyLock<Family<Lost, Counter>> = LazyLock::new(Family::default);

/// Makes both series, at 0, once traces are on: a rate over them then has data from the start,
/// and their absence says traces are off.
pub(super) fn start_counting() {
    LOST.get_or_create(&EXPORT_FAILED).inc_by(0);
    LOST.get_or_create(&QUEUE_FULL).inc_by(0);
}

/// Registers `bookshop_trace_spans_not_exported_total{reason}` in a service's registry.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "bookshop_trace_spans_not_exported",
        "Spans that never reached the collector: reason export_failed (collector down, refusing \
         or slower than OTEL_EXPORTER_OTLP_TIMEOUT) or queue_full (more than \
         OTEL_BSP_MAX_QUEUE_SIZE waiting); absent while traces are off",
        LOST.clone(),
    );
}

/// The batch processor behind a bound of `limit` spans waiting for export (see the module's
/// documentation); `waiting` is shared with the [`Counting`] exporter, which takes spans off it.
#[derive(Debug)]
pub(super) struct Bounded<P = BatchSpanProcessor> {
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

/// The OTLP exporter, counting the spans it failed to export, and running each export on the
/// Tokio runtime (the batch processor's thread has none; the gRPC and HTTP clients need one).
#[derive(Debug)]
pub(super) struct Counting<E> {
    pub(super) inner: Arc<E>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) timeout: Duration,
    /// Spans waiting for export (see [`Bounded`]): a batch handed over leaves the queue.
    pub(super) waiting: Arc<AtomicUsize>,
}

impl<E: SpanExporter + 'static> SpanExporter for Counting<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        let spans = batch.len() as u64;
        let inner = self.inner.clone();
        let timeout = self.timeout;
        let export = self.runtime.spawn(async move {
            match tokio::time::timeout(timeout, inner.export(batch)).await {
                Ok(result) => result,
                Err(_) => Err(OTelSdkError::Timeout(timeout)),
            }
        });
        async move {
            let result = export
                .await
                .unwrap_or_else(|error| Err(OTelSdkError::InternalFailure(error.to_string())));
            if let Err(error) = &result {
                // The first failure after a success is logged; the counter has the rest.
                LOST.get_or_create(&EXPORT_FAILED).inc_by(spans);
                if !FAILING.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, spans, "traces: cannot export spans to the collector");
                }
            } else {
                FAILING.store(false, Ordering::Relaxed);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, before the first export: the exporter is not shared yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// Whether the last export failed (so that a collector that stays down is logged once).
static FAILING: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use opentelemetry_sdk::trace::Sampler;

    use super::*;
    use crate::telemetry::{Protocol, TraceSettings, install};

    /// Installs traces to a collector at `endpoint` that exports only when asked, runs `make`
    /// with them on this thread, and returns the guard.
    fn traced(
        runtime: &tokio::runtime::Runtime,
        endpoint: String,
        max_queue_size: usize,
        make: impl FnOnce(),
    ) -> crate::telemetry::Traces {
        let settings = TraceSettings {
            endpoint,
            protocol: Protocol::Grpc,
            service_name: "test".into(),
            sampler: Sampler::AlwaysOn,
            export_timeout: Duration::from_secs(30),
            schedule_delay: Duration::from_secs(60),
            max_queue_size,
        };
        let (layer, traces) = {
            let _inside = runtime.enter();
            install(&settings).unwrap()
        };
        let subscriber =
            tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), layer);
        tracing::subscriber::with_default(subscriber, make);
        traces
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn stopping_with_a_silent_collector_waits_no_longer_than_asked() {
        let runtime = runtime();
        // Takes connections (into the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let traces = traced(
            &runtime,
            format!("http://{}", silent.local_addr().unwrap()),
            16,
            || tracing::info_span!("waiting").in_scope(|| {}),
        );
        let started = std::time::Instant::now();
        traces.shutdown(Duration::from_millis(500));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    }

    /// A processor that keeps every span and exports none: nothing leaves its queue.
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
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};

        let before = LOST.get_or_create(&QUEUE_FULL).get();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: Keeping::default(),
                waiting: Arc::new(AtomicUsize::new(0)),
                limit: 2,
            })
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..5 {
            tracer.start("one").end();
        }
        assert_eq!(LOST.get_or_create(&QUEUE_FULL).get() - before, 3);
    }
}
