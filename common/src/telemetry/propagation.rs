//! W3C trace context in and out: a server span continues its caller's `traceparent` (and
//! `tracestate`), a client span sends its own, and each records its `trace_id` and `span_id`
//! fields, so the log lines inside it carry them. All of it does nothing while traces are off.

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::enabled;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Makes `span` the child of the remote span a well-formed `traceparent` names. Call it before
/// the span is first entered.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(traceparent, tracestate));
    // Only a span that is filtered out or already started refuses; neither is ours.
    let _ = span.set_parent(parent);
    record_ids(span);
}

/// Records the `trace_id` and `span_id` fields (declared empty) of a span made while traces are
/// on, so that the lines logged inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let context = span.context().span().span_context().clone();
    if context.is_valid() {
        span.record("trace_id", tracing::field::display(context.trace_id()));
        span.record("span_id", tracing::field::display(context.span_id()));
    }
}

/// Names a span that has started (`otel.name` is read only until then): a server span is named
/// after its route, known once the request has been routed.
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
