//! Integration tests: the real server on 127.0.0.1:0, driven by a real tonic client.
//! One test binary with modules, to keep link times down.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod api;
mod cli;
mod connections;
mod events;
mod helpers;
mod hostile;
mod operations;
mod reload;
mod runtime;
mod schema;
mod tls;
