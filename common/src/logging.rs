//! Logging through `tracing`, filtered by `RUST_LOG` (default `info`), as text or as JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber. Call once, first thing in `main`.
///
/// A malformed `RUST_LOG` falls back to [`DEFAULT_FILTER`] rather than failing: a typo in a log
/// filter should not keep a service from starting.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: `docker logs` and log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal());
    // `try_init` so that a second call (tests, embedding) is harmless.
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
