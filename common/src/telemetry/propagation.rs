//! W3C trace context in and out, and span ids in log lines; none of it works while traces are off.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::enabled;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Makes `span` the child of a well-formed `traceparent`'s span. Call it before entering `span`.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if enabled() {
        let parent = TraceContextPropagator::new().extract(&Headers(traceparent, tracestate));
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
pub fn inject(span: &tracing::Span, set: impl FnMut(&str, String)) {
    if enabled() {
        TraceContextPropagator::new().inject_context(&span.context(), &mut Setter(set));
    }
}

struct Headers<'a>(Option<&'a str>, Option<&'a str>);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.0,
            TRACESTATE => self.1,
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

/// A well-formed W3C `traceparent`: one that a caller may hand on, traces on or off.
pub fn is_traceparent(value: &str) -> bool {
    let context = TraceContextPropagator::new().extract(&Headers(Some(value), None));
    context.span().span_context().is_valid()
}
