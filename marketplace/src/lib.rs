//! Bookshop's **Marketplace**: the seed's web app done properly. It shows recommended books of a
//! category, asking the Recommendations service over gRPC, as an HTML page (English or Russian)
//! and as JSON.
//!
//! `main.rs` only parses the command line and calls into this library, so the tests drive the
//! same code the binary runs. `docs/architecture.md` walks through a request and what happens
//! when Recommendations is down, slow or failing.
//!
//! # Layout
//! - [`settings`]: layered configuration (defaults, file, `RECOMMENDATIONS_HOST`,
//!   `MARKETPLACE__…`, flags) and its checks.
//! - [`params`]: the request's parameters parsed into typed values (category, count, user id).
//! - [`i18n`]: the page language (`?lang=`, `Accept-Language`) and the text in each language.
//! - [`balance`]: the Recommendations replicas: periodic resolution, power-of-two-choices
//!   picking, ejection of failing replicas.
//! - [`client`]: [`RecommendationsGateway`](client::RecommendationsGateway): calls with deadlines,
//!   one retry on another replica, and the one place connections are configured.
//! - [`error`]: [`AppError`](error::AppError) and its two mappings, to a page and to JSON.
//! - [`json`]: JSON answers with `<`, `>` and `&` escaped, so quoted input is never markup.
//! - [`pages`]: the sailfish templates (`templates/`) and the layout they share.
//! - [`assets`]: the stylesheet and icon, embedded in the binary.
//! - [`routes`]: the router, the handlers and the error catcher.
//! - [`observe`]: request ids passed on to Recommendations, and the Prometheus metrics.
//! - [`middleware`]: the access log and the security headers.
//! - [`startup`]: [`Application`]: bind, serve, stop gracefully.
//! - [`healthcheck`]: the client side of the `healthcheck` subcommand.

pub mod assets;
pub mod balance;
pub mod client;
pub mod error;
pub mod healthcheck;
pub mod i18n;
pub mod json;
pub mod middleware;
pub mod observe;
pub mod pages;
pub mod params;
pub mod routes;
pub mod settings;
pub mod startup;

pub use startup::{Application, StartError};
