//! The benchmark harness's Rust side, driven by `bench/run.sh` (see `docs/benchmarks.md`).
//!
//! The load itself comes from external tools (`h2load` for gRPC, `wrk` for HTTP); this crate
//! holds what they cannot do: the frameworks' floors (`tonic-floor`, `salvo-floor`), and in
//! `bench-tool` the scenarios that need a real client checking answers (hot reload latency,
//! reload under load), the generated catalogs, start-up timing, and the results table.
//!
//! # Layout
//! - [`catalog`]: generated catalogs (any size, with a version in every title) and broken ones.
//! - [`grpc`]: a tonic client for `Recommend`, and the request body `h2load` sends.
//! - [`reload`]: scenario 4 (time from a write to the first answer that reflects it) and
//!   scenario 5 (reloads during a load run, every answer checked).
//! - [`startup`]: scenario 7's time from process start to healthy, idle RSS and stop time.
//! - [`stats`]: percentiles, `h2load` request logs, `/proc` readings.
//! - [`report`]: the results (one TSV row per measurement) as a markdown table.

pub mod catalog;
pub mod grpc;
pub mod reload;
pub mod report;
pub mod startup;
pub mod stats;
