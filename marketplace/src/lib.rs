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
//!   `MARKETPLACE__…`, flags), typed, and its checks.
//! - [`params`]: the request's parameters parsed into typed values (category, count, user id).
//! - [`user_cookie`]: the anonymous user id cookie, and when it is `Secure`.
//! - [`shelves`]: the categories of the catalog in service, their names and order.
//! - [`follow`]: one version stream from Recommendations keeps the shelves current.
//! - [`events`]: `GET /events`, the catalog's changes as Server-Sent Events for open pages.
//! - [`i18n`]: the page language (`?lang=`, `Accept-Language`) and the text in each language.
//! - [`balance`]: the Recommendations replicas: periodic resolution, power-of-two-choices
//!   picking, ejection of failing replicas.
//! - [`client`]: [`RecommendationsGateway`](client::RecommendationsGateway): every call with a
//!   deadline, one retry on another replica, and the one place connections are configured.
//! - [`last_served`]: the books last served per category, shown while Recommendations is
//!   unavailable.
//! - [`error`]: [`AppError`](error::AppError) and its two mappings, to a page and to JSON.
//! - [`pages`]: the sailfish templates (`templates/`) and the layout they share.
//! - [`cover`]: a book's cover, made from its title (a colour and the initials).
//! - [`assets`]: the stylesheet and icon, embedded in the binary.
//! - [`routes`]: the route table, the router, the handlers and the error catcher.
//! - [`request_id`]: request ids, returned to the client and passed on to Recommendations.
//! - [`metrics`]: the Prometheus metrics and their route.
//! - [`middleware`]: the access log and the security headers.
//! - [`startup`]: [`Application`]: bind, serve, stop gracefully.
//! - [`healthcheck`]: the client side of the `healthcheck` subcommand.

pub mod assets;
pub mod balance;
pub mod client;
pub mod cover;
pub mod error;
pub mod events;
pub mod follow;
pub mod healthcheck;
pub mod i18n;
pub mod last_served;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod params;
pub mod request_id;
pub mod routes;
pub mod settings;
pub mod shelves;
pub mod startup;
pub mod user_cookie;

pub use startup::{Application, StartError};
