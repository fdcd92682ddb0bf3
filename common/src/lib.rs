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

pub mod logging;
pub mod metrics;
pub mod settings;
pub mod shutdown;
#[cfg(feature = "test-certs")]
pub mod test_certs;
