//! Bookshop's **Recommendations**: the tutorial's gRPC API (`/Recommendations/Recommend`) and
//! Bookshop's own (`bookshop.catalog.v1`), answering from a hot-reloaded `catalog.toml`.
//! `main.rs` only parses the command line, so the tests drive the code the binary runs.
//!
//! # Layout
//! From the bottom up; a module uses only those above it in this list.
//! - [`catalog`]: `catalog.toml` parsed and validated, and the catalog in service.
//! - [`selection`]: how books are picked (`random` or `per_user`).
//! - [`metrics`]: Prometheus metrics and their `/metrics` listener.
//! - [`watch`]: when the file may have changed (filesystem events, polling, SIGHUP).
//! - [`reload`]: taking a changed file into service, only once it is complete and valid.
//! - [`settings`]: layered configuration (defaults, file, `RECOMMENDATIONS__…`, flags).
//! - [`service`]: `Recommend` in both APIs, and their mapping to gRPC status codes.
//! - [`events`]: `CatalogEvents/Watch`, the catalog version and its changes.
//! - [`connections`]: accepting gRPC connections: a cap, and no client kept that stays silent.
//! - [`startup`]: [`Application`]: bind, serve with health and reflection, stop gracefully.
//! - [`healthcheck`]: the `healthcheck` subcommand.

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
pub mod watch;

pub use startup::{Application, StartError};
