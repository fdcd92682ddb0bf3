//! The Marketplace's integration tests, in one binary to keep link times down.
//!
//! - `routes`: every route through salvo's `TestClient` (no HTTP socket) in front of a fake
//!   Recommendations: status codes, escaping, headers, language, cookie, API, assets.
//! - `live`: a real Recommendations on a temporary catalog and a real Marketplace over sockets:
//!   catalog edits, Recommendations stopping, restarting and starting late, graceful shutdown,
//!   the `healthcheck` command.
//! - `replicas`: several real Recommendations replicas on different loopback addresses behind a
//!   resolver the test changes: spreading, a replica stopping, a replica added.
//! - `hostile`: slow and oversized requests on a real socket; arbitrary query strings.
//! - `observe`: request ids passed on to Recommendations; the metrics.
//! - `catalog_live`: the live catalog: categories from the catalog, `/events` with several
//!   replicas, reconnections, the stream limit, shutdown.
//! - `tls`: TLS and mutual TLS to a real Recommendations, with certificates made in the test.

#![allow(clippy::unwrap_used, clippy::print_stdout, unreachable_pub)]

mod browser;
mod catalog_live;
mod hostile;
mod live;
mod observe;
mod replicas;
mod routes;
mod support;
mod tls;
