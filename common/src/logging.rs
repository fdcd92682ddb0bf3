//! `tracing` to stderr as text or JSON (`LOG_FORMAT`), by a thread that drops nothing (it waits).

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, prelude::*};

use crate::telemetry::TraceLayer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// When `RUST_LOG` is unset or malformed; `notify` logs routine inotify bookkeeping at `info`.
pub const DEFAULT_FILTER: &str = "info,notify=warn";

/// Requests and calls slower than this are logged at `info` even when they succeed.
pub const SLOW: std::time::Duration = std::time::Duration::from_millis(250);

/// Installs the global subscriber. Keep the guard: dropping it writes out the lines still queued.
pub fn init(traces: Option<TraceLayer>) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    // Its slots are allocated up front: the default of 128k lines is 4 MB of resident memory.
    let writer = NonBlockingBuilder::default().buffered_lines_limit(8_192).lossy(false);
    let stderr = BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = writer.thread_name("log-writer").finish(stderr);
    // Colours only on a terminal; `try_init`, so that a second call (tests) is harmless.
    let ansi = std::io::stderr().is_terminal();
    // An unknown `LOG_FORMAT` falls back to text: logging must never stop start-up.
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let format = if json { LogFormat::Json } else { LogFormat::Text };
    let _ = subscriber(traces, filter, format, writer, ansi).try_init();
    guard
}

/// Lines in either format carry the fields of their spans (with traces on, the spans' ids).
pub fn subscriber<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(
    traces: Option<TraceLayer>,
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync {
    let lines = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    let lines = match format {
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(true).boxed(),
        LogFormat::Text => lines.boxed(),
    };
    tracing_subscriber::registry().with(traces).with(filter).with(lines)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use tracing::field::Empty;

    use super::*;
    use crate::telemetry::{
        self, Traces,
        env::{Exporter, Protocol},
    };

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
        let exporter = Exporter {
            endpoint: "http://127.0.0.1:9".into(),
            protocol: Protocol::Grpc,
            max_queue_size: 16,
            schedule_delay: None,
        };
        let traces = {
            let _inside = runtime.enter();
            Traces::start("test", exporter).unwrap()
        };
        let layer = traces.layer();
        let lines = Captured::default();
        let writer = lines.clone();
        let subscriber =
            subscriber(Some(layer), EnvFilter::new("info"), format, move || writer.clone(), false);
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

    /// Log lines, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_and_json_lines_carry_the_trace_and_span_ids_of_their_span() {
        let text = logged_in_a_traced_span(LogFormat::Text);
        assert!(text.contains(&format!("trace_id={TRACE}")), "{text}");
        let span_id = span_id_after(&text, "span_id=");
        assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
        assert_ne!(span_id, CALLER_SPAN, "the line's span is ours, not the caller's");

        let json = logged_in_a_traced_span(LogFormat::Json);
        assert!(json.contains(&format!("\"trace_id\":\"{TRACE}\"")), "{json}");
        let span_id = span_id_after(&json, "\"span_id\":\"");
        assert!(span_id.chars().all(|c| c.is_ascii_hexdigit()), "{json}");
        assert_ne!(span_id, CALLER_SPAN);
    }
}
