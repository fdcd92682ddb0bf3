//! Bookshop's **Marketplace**: recommended books of a category, asked of Recommendations over
//! gRPC, as an HTML page (English or Russian) and as JSON; open pages follow the catalog.
//! `main.rs` only parses the command line, so the tests drive the code the binary runs.
//!
//! # Layout
//! From the bottom up; a module uses only those before it: [`settings`], [`i18n`], [`book`],
//! [`categories`], [`metrics`], [`recommendations`] (the client: deadlines, a retry, balancing),
//! [`follow`] (the live catalog), [`last_served`] (shown while Recommendations is unavailable),
//! [`web`], [`startup`] ([`Application`]: bind, serve, stop gracefully), [`healthcheck`].

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
