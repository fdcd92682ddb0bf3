//! Bookshop's **Marketplace**: recommended books of a category, asked of Recommendations over
//! gRPC, as an HTML page (English or Russian) and as JSON; open pages follow the catalog.
//! `main.rs` only parses the command line, so the tests drive the code the binary runs.
//!
//! # Layout
//! From the bottom up; a module uses only those above it in this list.
//! - [`settings`], [`i18n`], [`book`], [`categories`]: configuration, texts, books, categories.
//! - [`metrics`]: the Prometheus metrics.
//! - [`recommendations`]: the client: deadlines, one retry, balancing over the replicas.
//! - [`follow`]: one version stream from Recommendations keeps the categories current.
//! - [`last_served`]: the books last served, shown while Recommendations is unavailable.
//! - [`web`]: the routes, their handlers, the pages, the event streams and the errors.
//! - [`startup`]: [`Application`]: bind, serve, stop gracefully.
//! - [`healthcheck`]: the `healthcheck` subcommand.

pub mod book;
pub mod categories;
pub mod follow;
pub mod healthcheck;
pub mod i18n;
pub mod last_served;
pub mod metrics;
pub mod recommendations;
pub mod settings;
pub mod startup;
pub mod web;

pub use startup::{Application, StartError};
