//! Prometheus metrics on a listener of their own (`metrics.port`): gRPC has no route for them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{convert::Infallible, sync::Arc};

use bookshop_common::metrics::{CONTENT_TYPE, GrpcCalls, Labels, register, render};
use bookshop_common::net::accept;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: GrpcCalls,
    books: Family<[(&'static str, String); 1], Gauge>,
    generation: Gauge,
    catalog: Family<[(&'static str, String); 1], Gauge>,
    last_success: Gauge,
    pub reloads: Family<Labels<1>, Counter>,
    pub read_errors: Counter,
    pub connections: Gauge,
    pub refused: Counter,
    pub silent: Family<Labels<1>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = bookshop_common::metrics::registry("recommendations");
        let r = &mut registry;
        Metrics {
            calls: GrpcCalls::register(r, "server", "RPCs answered"),
            books: register(r, "bookshop_catalog_books", "Books per category in service"),
            generation: register(r, "bookshop_catalog_generation", "Catalogs put in service"),
            catalog: register(r, "bookshop_catalog_info", "The catalog in service, by hash"),
            last_success: register(
                r,
                "bookshop_catalog_last_success_timestamp_seconds",
                "Unix time of the last successful catalog load",
            ),
            reloads: register(r, "bookshop_catalog_reloads", "Catalog reloads by result"),
            read_errors: register(r, "bookshop_catalog_read_errors", "Failed catalog reads"),
            connections: register(r, "bookshop_grpc_connections", "gRPC connections open now"),
            refused: register(r, "bookshop_grpc_connections_refused", "Connections over the cap"),
            silent: register(
                r,
                "bookshop_grpc_connections_closed_silent",
                "gRPC connections closed because the client stayed silent, by reason",
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn observe_call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let code = bookshop_proto::code_name(code);
        self.calls.observe((bookshop_proto::SERVICE_NAME, method), code, elapsed);
    }

    /// A catalog was put in service: only its series remain, so categories gone leave none behind.
    pub fn catalog_loaded(&self, catalog: &Catalog) {
        self.books.clear();
        for category in catalog.categories() {
            let books = i64::try_from(category.books.len()).unwrap_or(i64::MAX);
            self.books.get_or_create(&[("category", category.key.clone())]).set(books);
        }
        if self.generation.inc() > 0 {
            self.reloads.get_or_create(&[("result", "success")]).inc();
        }
        self.catalog.clear();
        self.catalog.get_or_create(&[("hash", catalog.short_hash())]).set(1);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.last_success.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// Serves `GET /metrics` (HTTP/1.1) on `listener` until `stopping` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stopping: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stopping.cancelled() => return,
            stream = accept(&listener, "metrics") => stream,
        };
        let metrics = metrics.clone();
        let service = service_fn(move |request: Request<_>| {
            let response = match (request.method(), request.uri().path()) {
                (&Method::GET, "/metrics") => Response::builder()
                    .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(Full::new(Bytes::from(metrics.render()))),
                _ => Response::builder().status(StatusCode::NOT_FOUND).body(Full::default()),
            };
            async move { Ok::<_, Infallible>(response.unwrap_or_default()) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(Some(Duration::from_secs(5)))
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(connection);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_reloads_and_the_catalog_appear_in_the_text() {
        let metrics = Metrics::default();
        metrics.observe_call("Recommend", tonic::Code::Ok, Duration::from_micros(300));
        metrics.observe_call("Recommend", tonic::Code::NotFound, Duration::from_micros(100));
        metrics.observe_call("Other", tonic::Code::Ok, Duration::from_micros(100));
        let catalog = Catalog::from_toml_str("[[mystery]]\nid = 1\ntitle = \"A\"\n", "c").unwrap();
        metrics.catalog_loaded(&catalog);
        metrics.catalog_loaded(&catalog);
        metrics.reloads.get_or_create(&[("result", "failure")]).inc();
        metrics.read_errors.inc();
        let text = metrics.render();
        for line in [
            "grpc_server_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"OK\"} 1",
            "grpc_server_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"NOT_FOUND\"} 1",
            "grpc_server_handling_seconds_bucket{le=\"0.0005\",grpc_service=\"Recommendations\",grpc_method=\"Recommend\"} 2",
            "grpc_server_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Other\",grpc_code=\"OK\"} 1",
            "grpc_server_handling_seconds_count{grpc_service=\"Recommendations\",grpc_method=\"Other\"} 1",
            "bookshop_catalog_books{category=\"mystery\"} 1",
            "bookshop_catalog_generation 2",
            "bookshop_catalog_reloads_total{result=\"success\"} 1",
            "bookshop_catalog_reloads_total{result=\"failure\"} 1",
            "bookshop_catalog_read_errors_total 1",
            "bookshop_build_info{service=\"recommendations\",version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            text.contains(&format!("bookshop_catalog_info{{hash=\"{}\"}} 1", catalog.short_hash()))
        );
    }
}
