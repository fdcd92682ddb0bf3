//! Bookshop's **Recommendations** service: the seed's gRPC API (`/Recommendations/Recommend`)
//! answering with books from `catalog.toml`, which is hot-reloaded when it changes.
//!
//! `main.rs` only parses the command line and calls into this library, so the tests drive the
//! same code the binary runs.
//!
//! # Layout
//! - [`catalog`]: parsing and validating `catalog.toml` (errors with file, line and column).
//! - [`store`]: the catalog in service, swapped atomically.
//! - [`reload`]: re-reading the file: only complete content, passing read errors retried.
//! - [`watch`]: when to reload (filesystem events, polling, SIGHUP), settling and retrying.
//! - [`selection`]: how books are picked (`random` or `per_user`).
//! - [`service`]: the `Recommend` RPC and its mapping to gRPC status codes.
//! - [`events`]: `bookshop.catalog.v1.CatalogEvents/Watch`: the catalog version and its changes.
//! - [`settings`]: layered configuration (defaults, file, `RECOMMENDATIONS__…`, flags).
//! - [`connections`]: accepting gRPC connections: a cap, and no client kept that stays silent.
//! - [`startup`]: [`Application`]: bind, serve with health and reflection, stop gracefully.
//! - [`metrics`]: Prometheus metrics and their `/metrics` listener.
//! - [`healthcheck`]: the client side of the `healthcheck` subcommand.

pub mod catalog;
pub mod connections;
pub mod events;
pub mod healthcheck;
pub mod metrics;
pub mod reload;
pub mod selection;
pub mod service;
pub mod settings;
pub mod startup;
pub mod store;
pub mod watch;

pub use startup::{Application, StartError};
