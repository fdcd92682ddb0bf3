//! The benchmark harness's Rust side, driven by `bench/run.sh` (see `docs/benchmarks.md`).
//!
//! The load itself comes from external tools (`h2load` for gRPC, `wrk` for HTTP); this crate
//! holds everything around them: the frameworks' floors (`tonic-floor`, `salvo-floor`), and in
//! `bench-tool` the servers' start and stop, the load runs with the servers' usage read from
//! `/proc`, the scenarios that need a real client checking answers (hot reload latency, reload
//! under load), the generated catalogs, start-up timing, and the results table.
//!
//! # Layout
//! - [`run`]: the run directory: the servers started by name, their logs, `results.tsv`.
//! - [`load`]: one `h2load` or `wrk` run after its warm-up, as a `load` row.
//! - [`usage`]: what the servers used, from `/proc`: CPU time, context switches, peak RSS.
//! - [`catalog`]: generated catalogs (any size, with a version in every title) and broken ones.
//! - [`grpc`]: a tonic client for `Recommend`, and the request body `h2load` sends.
//! - [`reload`]: scenario 4 (time from a write to the first answer that reflects it) and
//!   scenario 5 (reloads during a load run, every answer checked).
//! - [`browser`]: a minimal Chrome DevTools Protocol client for headless Chromium, which
//!   collects the page's problems (console errors, exceptions, CSP violations).
//! - [`live`]: scenario 9's save-to-screen latency: catalog edits timed to the new title in
//!   the open page.
//! - [`event_stream`]: the Marketplace's `GET /events` (Server-Sent Events) over plain
//!   HTTP/1.1, and the parser of the stream.
//! - [`idle_streams`]: scenario 9's cost of open tabs: the home page's req/s without and with
//!   idle event streams, and the Marketplace's RSS per stream.
//! - [`scale`]: scenario 6, one catalog size: start-up, load, reload and peak RSS.
//! - [`memory`]: scenario 8, RSS around reloads of a `catalog.max_bytes` catalog.
//! - [`otlp_sink`]: an OTLP/gRPC trace receiver that counts spans, for `bench/callgrind.sh
//!   --traces`.
//! - [`startup`]: starting a server until healthy; scenario 7's time from process start to
//!   healthy, idle RSS and stop time.
//! - [`stats`]: percentiles and `h2load` request logs.
//! - [`report`]: the results (one TSV row per measurement) as a markdown table.

pub mod browser;
pub mod catalog;
pub mod event_stream;
pub mod grpc;
pub mod idle_streams;
pub mod live;
pub mod load;
pub mod memory;
pub mod otlp_sink;
pub mod reload;
pub mod report;
pub mod run;
pub mod scale;
pub mod startup;
pub mod stats;
pub mod usage;
