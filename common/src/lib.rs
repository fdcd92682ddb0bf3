//! What both Bookshop services share, so each `main.rs` stays thin and both behave alike.
//!
//! # Layout
//! - [`cli`]: the command line both binaries share (`--config`, flags, a subcommand).
//! - [`serve`]: the serve path of both binaries: logging, settings, runtime, run until stopped.
//! - [`runtime`]: the Tokio runtime, with the worker threads `TOKIO_WORKER_THREADS` gives.
//! - [`settings`]: layered configuration (defaults, file, `PREFIX__…` variables, flags) whose
//!   errors name the key, the value and the layer that set it.
//! - [`net`]: `host:port` values, bind addresses, and binding with an error naming the setting.
//! - [`tls`]: reading the PEM files a TLS setting names.
//! - [`logging`]: `tracing` set-up; `RUST_LOG` filters, `LOG_FORMAT=json` gives one JSON object
//!   per line.
//! - [`metrics`]: latency buckets, build info and the `/metrics` text format (prometheus-client).
//! - [`telemetry`]: distributed traces over OTLP, off unless the standard `OTEL_*` variables
//!   turn them on; W3C trace context in and out.
//! - [`shutdown`]: the stop signal (SIGTERM or Ctrl-C) that containers and terminals send.
//! - `testing` (feature `testing`, tests only): polling with a deadline, and a certificate
//!   authority made on the fly.
//! - here: [`loggable_id`] (which request ids a caller may hand us), [`fnv1a`] (a hash that is
//!   the same on every machine) and [`millis`].

pub mod cli;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

use std::time::Duration;

/// The longest request id (or trace header) taken from a caller.
pub const MAX_ID_LEN: usize = 128;

/// Whether a request id from a caller may be logged and passed on: 1 to [`MAX_ID_LEN`] visible
/// ASCII characters. Anything else is replaced or left out, so that logs and headers never carry
/// control characters, spaces that split a log line's fields, or megabytes. The Marketplace
/// applies it to `x-request-id` from browsers, Recommendations to the metadata of every call.
pub fn loggable_id(value: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// 64-bit FNV-1a: stable across processes, machines and releases (unlike `std`'s hashers), and
/// `const`, so embedded files get their version at compile time. The catalog's content hash
/// and the assets' versions are made with it.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Whole milliseconds, as a number that logs and settings can compare (`u128` is logged as
/// text).
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
