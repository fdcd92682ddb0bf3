//! W3C trace context in and out, and span ids in log lines; none of it works while traces are off.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::enabled;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Makes `span` the child of a well-formed `traceparent`'s span. Call it before entering `span`.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if enabled() {
        let parent = TraceContextPropagator::new().extract(&headers(traceparent, tracestate));
        // Only a span that is filtered out or already started refuses; neither is ours.
        let _ = span.set_parent(parent);
        record_ids(span);
    }
}

/// Fills the `trace_id` and `span_id` fields (declared `Empty`) of a span made with traces on.
pub fn record_ids(span: &tracing::Span) {
    if enabled() {
        let context = span.context().span().span_context().clone();
        if context.is_valid() {
            span.record("trace_id", tracing::field::display(context.trace_id()));
            span.record("span_id", tracing::field::display(context.span_id()));
        }
    }
}

/// Names a started span (`otel.name` is read only at the start): a route is known after routing.
pub fn rename(span: &tracing::Span, name: String) {
    if enabled() {
        span.context().span().update_name(name);
    }
}

/// Sends the context of `span` on: `set` is called with `traceparent` (and `tracestate`).
pub fn inject(span: &tracing::Span, mut set: impl FnMut(&str, String)) {
    if enabled() {
        let mut headers = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
        headers.into_iter().for_each(|(key, value)| set(&key, value));
    }
}

fn headers(traceparent: Option<&str>, tracestate: Option<&str>) -> HashMap<String, String> {
    let pairs = [(TRACEPARENT, traceparent), (TRACESTATE, tracestate)].into_iter();
    pairs.filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned()))).collect()
}

/// A well-formed W3C `traceparent`: one that a caller may hand on, traces on or off.
pub fn is_traceparent(value: &str) -> bool {
    let context = TraceContextPropagator::new().extract(&headers(Some(value), None));
    context.span().span_context().is_valid()
}
