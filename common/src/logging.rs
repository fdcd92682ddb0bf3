//! Logging through `tracing`, filtered by `RUST_LOG` (default `info`), as text or as JSON.
//!
//! Lines are written to stderr by a thread of their own: a request only formats its line and
//! queues it, and the writer thread puts everything queued into stderr with one `write` per
//! batch instead of one per line. Nothing is dropped: when the queue ([`QUEUED_LINES`]) is full,
//! logging waits.
//!
//! With the default filter, answered requests and calls are not logged one by one (their access
//! lines are at `debug`): failures, slow answers ([`SLOW`]), reloads and start-up are.
//! `RUST_LOG=info,marketplace::access=debug,recommendations::access=debug` logs every one.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::telemetry::TraceLayer;

/// The log line format, chosen with `LOG_FORMAT` (`text`, the default, or `json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Reads `LOG_FORMAT`; an unknown value falls back to text (logging must never stop start-up).
    pub fn from_env() -> Self {
        match std::env::var("LOG_FORMAT") {
            Ok(v) if v.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// The filter used when `RUST_LOG` is unset or malformed. `notify` logs routine inotify
/// bookkeeping (a watch on a replaced file) at `info`, which is noise for operators.
pub const DEFAULT_FILTER: &str = "info,notify=warn";

/// Requests and calls that take longer than this are logged at `info` even when they succeed
/// (the others at `debug`): a slow answer is worth a line, a fast one is not.
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(250);

/// Lines queued for the writer thread before logging waits for it: a burst of a few thousand
/// requests' lines never waits, and a stalled stderr holds up requests (as a plain `write` would)
/// rather than memory growing or lines being dropped.
pub const QUEUED_LINES: usize = 8_192;

/// Installs the global subscriber. Call once, first thing in `main`, and keep the returned
/// guard until the process ends: dropping it writes out the lines still queued.
///
/// `traces` is the layer that records spans for export ([`crate::telemetry::install`]), when
/// traces are on; without it no such layer is installed. A span the filter leaves out is not
/// traced either, so the spans are at `info`.
///
/// A malformed `RUST_LOG` falls back to [`DEFAULT_FILTER`] rather than failing: a typo in a log
/// filter should not keep a service from starting.
pub fn init(traces: Option<TraceLayer>) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: `docker logs` and log collectors get plain text.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        // The queue's slots are allocated up front (32 bytes each): tracing-appender's default
        // of 128k lines would add 4 MB to each process's resident memory.
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    // `try_init` so that a second call (tests, embedding) is harmless.
    let _ = subscriber(traces, filter, LogFormat::from_env(), writer, ansi).try_init();
    LogGuard { _writer: guard }
}

/// What [`init`] installs: the trace layer (if any), the filter, and the lines in `format`
/// written to `writer`. Both formats carry the fields of the spans a line is logged in: with
/// traces on, the `trace_id` and `span_id` of the request's, the call's or the reload's span.
pub fn subscriber<W>(
    traces: Option<TraceLayer>,
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let lines = match format {
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Text => lines.boxed(),
    };
    tracing_subscriber::registry()
        .with(traces)
        .with(filter)
        .with(lines)
}

/// Keeps the log writer thread; dropping it writes out what is still queued (see [`init`]).
#[must_use = "dropping the guard stops the log writer: keep it until the process ends"]
#[derive(Debug)]
pub struct LogGuard {
    _writer: WorkerGuard,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use opentelemetry_sdk::trace::Sampler;
    use tracing::field::Empty;

    use super::*;
    use crate::telemetry::{self, Protocol, TraceSettings};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";

    /// What a line logged in a traced span that continues a caller's trace looks like.
    fn logged_in_a_traced_span(format: LogFormat) -> String {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Nothing listens there: the one export, at shutdown, fails at once.
        let settings = TraceSettings {
            endpoint: "http://127.0.0.1:9".into(),
            protocol: Protocol::Grpc,
            service_name: "test".into(),
            sampler: Sampler::AlwaysOn,
            export_timeout: Duration::from_millis(200),
            schedule_delay: Duration::from_secs(60),
            max_queue_size: 16,
        };
        let (layer, traces) = {
            let _inside = runtime.enter();
            telemetry::install(&settings).unwrap()
        };
        let lines = crate::testing::CapturedLines::default();
        let writer = lines.clone();
        let subscriber = subscriber(
            Some(layer),
            EnvFilter::new("info"),
            format,
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", trace_id = Empty, span_id = Empty);
            let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
            telemetry::continue_from(&span, Some(&traceparent), None);
            span.in_scope(|| tracing::info!("inside"));
        });
        traces.shutdown(Duration::from_secs(1));
        lines.text()
    }

    /// The 16 hex digits after `key` in `line`.
    fn span_id_after<'a>(line: &'a str, key: &str) -> &'a str {
        let start = line.find(key).unwrap() + key.len();
        &line[start..start + 16]
    }

    #[test]
    fn text_and_json_lines_carry_the_trace_and_span_ids_of_their_span() {
        let text = logged_in_a_traced_span(LogFormat::Text);
        assert!(text.contains(&format!("trace_id={TRACE}")), "{text}");
        let span_id = span_id_after(&text, "span_id=");
        assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
        assert_ne!(
            span_id, CALLER_SPAN,
            "the line's span is ours, not the caller's"
        );

        let json = logged_in_a_traced_span(LogFormat::Json);
        assert!(
            json.contains(&format!("\"trace_id\":\"{TRACE}\"")),
            "{json}"
        );
        let span_id = span_id_after(&json, "\"span_id\":\"");
        assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()), "{json}");
        assert_ne!(span_id, CALLER_SPAN);
    }
}
