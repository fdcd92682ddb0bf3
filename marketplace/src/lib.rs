//! Bookshop's **Marketplace**: the tutorial's web app done properly. It shows recommended books
//! of a category, asking the Recommendations service over gRPC, as an HTML page (English or
//! Russian) and as JSON, and keeps open pages current when the catalog changes. `main.rs` only
//! parses the command line, so the tests drive the code the binary runs; docs/architecture.md
//! walks through a request and what happens when Recommendations is down, slow or failing.
//!
//! # Layout
//! From the bottom up; a module uses only those above it in this list.
//! - [`settings`], [`i18n`], [`book`], [`categories`]: the configuration, the languages and
//!   their texts, a book and its cover, the catalog's categories.
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
