//! What both Bookshop services share, so each `main.rs` stays thin and both behave alike.
//!
//! # Layout
//! - [`logging`]: `tracing` set-up; `RUST_LOG` filters, `LOG_FORMAT=json` gives one JSON object
//!   per line.
//! - [`metrics`]: latency buckets, build info and the `/metrics` text format (prometheus-client).
//! - [`shutdown`]: the stop signal (SIGTERM or Ctrl-C) that containers and terminals send.
//! - [`settings`]: the layering rules of the `config` crate that both services use (prefix, `__`
//!   separator, the environment injected as a map so tests never touch the process environment).
//! - `test_certs` (feature `test-certs`, tests only): a CA and certificates made on the fly.
//! - [`loggable_id`]: which request ids (and trace headers) a caller may hand us.

pub mod logging;
pub mod metrics;
pub mod settings;
pub mod shutdown;
#[cfg(feature = "test-certs")]
pub mod test_certs;

/// The longest request id (or trace header) taken from a caller.
pub const MAX_ID_LEN: usize = 128;

/// Whether a request id from a caller may be logged and passed on: 1 to [`MAX_ID_LEN`] visible
/// ASCII characters. Anything else is replaced or left out, so that logs and headers never carry
/// control characters, spaces that split a log line's fields, or megabytes. The Marketplace
/// applies it to `x-request-id` from browsers, Recommendations to the metadata of every call.
pub fn loggable_id(value: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_loggable() {
        assert!(loggable_id(b"abc-123_XYZ.4"));
        assert!(!loggable_id(b""));
        assert!(!loggable_id(b"has space"));
        assert!(!loggable_id(b"new\nline"));
        assert!(!loggable_id("é".as_bytes()));
        assert!(!loggable_id("x".repeat(MAX_ID_LEN + 1).as_bytes()));
        assert!(loggable_id("x".repeat(MAX_ID_LEN).as_bytes()));
    }
}
