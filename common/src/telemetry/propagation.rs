//! W3C trace context in and out: a server span continues its caller's `traceparent` (and
//! `tracestate`), a client span sends its own, and each records its `trace_id` and `span_id`
//! fields so that the log lines inside it carry them. Everything here does nothing while
//! traces are off.

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::enabled;

/// Makes `span` the child of the remote span named by a W3C `traceparent` (and its
/// `tracestate`), if any and well-formed, and records its `trace_id` and `span_id` fields. Call
/// it before the span is first entered. Does nothing while traces are off.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&TraceHeaders {
        traceparent,
        tracestate,
    });
    // Only a span that is disabled (filtered out) or already started refuses; neither is ours.
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(span, parent);
    record_ids(span);
}

/// The W3C trace context headers (or gRPC metadata) of an incoming request.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// Records the `trace_id` and `span_id` fields of `span` (a span made while traces are on,
/// with both fields declared empty), so that the lines logged inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(span);
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
        span.record("span_id", tracing::field::display(span_context.span_id()));
    }
}

/// Names `span` once it has started (`otel.name` is only read until then): a server span is
/// named after its route, known only once the request has been routed. Does nothing while
/// traces are off.
pub fn rename(span: &tracing::Span, name: String) {
    if !enabled() {
        return;
    }
    tracing_opentelemetry::OpenTelemetrySpanExt::context(span)
        .span()
        .update_name(name);
}

/// Sends the context of `span` on: calls `set` with `traceparent` (and `tracestate` when there
/// is one). Does nothing while traces are off.
pub fn inject(span: &tracing::Span, set: impl FnMut(&str, String)) {
    if !enabled() {
        return;
    }
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(span);
    TraceContextPropagator::new().inject_context(&context, &mut Setter(set));
}

struct TraceHeaders<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

struct Setter<F>(F);

impl<F: FnMut(&str, String)> Injector for Setter<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value);
    }
}
