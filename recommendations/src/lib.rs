//! Bookshop's **Recommendations**: the tutorial's gRPC API (`/Recommendations/Recommend`) and
//! Bookshop's own (`bookshop.catalog.v1`), answering from a hot-reloaded `catalog.toml`.
//! `main.rs` only parses the command line, so the tests drive the code the binary runs.
//!
//! # Layout
//! From the bottom up; a module uses only those before it: [`catalog`], [`selection`] (how books
//! are picked), [`changes`] (what a reload changed), [`metrics`], [`watch`] (when the file may
//! have changed), [`reload`] (taking it into service once complete and valid), [`settings`],
//! [`service`] (`Recommend` in both APIs), [`events`] (`CatalogEvents/Watch`), [`connections`]
//! (a cap; silent clients dropped), [`startup`] ([`Application`]), [`healthcheck`].

pub mod catalog;
pub mod changes;
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
