//! Prometheus metrics: `Recommend` calls by status code with their latency, the catalog in
//! service (books per category, generation, content hash), reloads, and build info; served as
//! text on a small HTTP listener of their own (`metrics.port`, 9464 by default).

use std::{
    convert::Infallible,
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bookshop_common::metrics::{
    CONTENT_TYPE, LatencyFamily, latency_family, register, register_build_info, render,
};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::catalog::Catalog;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HashLabels {
    hash: String,
}

/// The service's metrics, registered in their own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: LatencyFamily<MethodLabels>,
    books: Family<CategoryLabels, Gauge>,
    generation: Gauge,
    catalog_hash: Family<HashLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    last_reload: Gauge,
    read_errors: Counter,
    connections: Gauge,
    refused: Counter,
    silent: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        register_build_info(&mut registry, "recommendations", env!("CARGO_PKG_VERSION"));
        bookshop_common::telemetry::register_metrics(&mut registry);
        let r = &mut registry;
        Metrics {
            calls: register(
                r,
                "grpc_server_handled",
                "RPCs completed on the server, by method and status code",
                Family::default(),
            ),
            latency: register(
                r,
                "grpc_server_handling_seconds",
                "Time to answer an RPC, in seconds",
                latency_family(),
            ),
            books: register(
                r,
                "bookshop_catalog_books",
                "Books per category in the catalog in service",
                Family::default(),
            ),
            generation: register(
                r,
                "bookshop_catalog_generation",
                "Catalogs put in service since start (1 after the first load)",
                Gauge::default(),
            ),
            catalog_hash: register(
                r,
                "bookshop_catalog_info",
                "The catalog in service, by short content hash (always 1)",
                Family::default(),
            ),
            reloads: register(
                r,
                "bookshop_catalog_reloads",
                "Catalog reloads by result: success (a new catalog in service) or failure \
                 (rejected; the last good one kept)",
                Family::default(),
            ),
            last_reload: register(
                r,
                "bookshop_catalog_last_success_timestamp_seconds",
                "Unix time of the last successful catalog load",
                Gauge::default(),
            ),
            read_errors: register(
                r,
                "bookshop_catalog_read_errors",
                "Reads of the catalog file that failed (missing, permissions, I/O); each is tried \
                 again after a backoff",
                Counter::default(),
            ),
            connections: register(
                r,
                "bookshop_grpc_connections",
                "gRPC connections open now",
                Gauge::default(),
            ),
            refused: register(
                r,
                "bookshop_grpc_connections_refused",
                "gRPC connections closed as soon as accepted, because server.max_connections were open",
                Counter::default(),
            ),
            silent: register(
                r,
                "bookshop_grpc_connections_closed_silent",
                "gRPC connections closed because the client stayed silent, by reason \
                 (handshake_timeout, idle_timeout)",
                Family::default(),
            ),
            registry,
        }
    }

    /// Counts one finished RPC.
    pub fn observe_call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let grpc_service = bookshop_proto::SERVICE_NAME;
        self.latency
            .get_or_create(&MethodLabels {
                grpc_service,
                grpc_method: method,
            })
            .observe(elapsed.as_secs_f64());
        self.calls
            .get_or_create(&CallLabels {
                grpc_service,
                grpc_method: method,
                grpc_code: bookshop_proto::code_name(code),
            })
            .inc();
    }

    /// A catalog was put in service (at start-up or by a reload).
    pub fn catalog_loaded(&self, catalog: &Catalog, reload: bool) {
        // Categories come and go with the catalog (at most MAX_CATEGORIES of them, so the
        // label stays bounded): the series of the catalog in service only.
        self.books.clear();
        for category in catalog.categories() {
            let count = i64::try_from(category.books.len()).unwrap_or(i64::MAX);
            self.books
                .get_or_create(&CategoryLabels {
                    category: category.key.clone(),
                })
                .set(count);
        }
        self.generation.inc();
        self.catalog_hash.clear();
        self.catalog_hash
            .get_or_create(&HashLabels {
                hash: catalog.short_hash(),
            })
            .set(1);
        if reload {
            self.reloads
                .get_or_create(&ResultLabels { result: "success" })
                .inc();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.last_reload.set(now);
    }

    /// A read of the catalog file failed; it will be tried again.
    pub fn read_failed(&self) {
        self.read_errors.inc();
    }

    /// The gRPC connections open now.
    pub fn open_connections(&self) -> usize {
        usize::try_from(self.connections.get()).unwrap_or(0)
    }

    /// A gRPC connection was accepted and is served.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// A served gRPC connection ended.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// A gRPC connection was refused: the cap was reached.
    pub fn connection_refused(&self) {
        self.refused.inc();
    }

    /// A gRPC connection was closed because its client stayed silent (`reason`).
    pub fn connection_timed_out(&self, reason: &'static str) {
        self.silent.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A reload was rejected (invalid or too large).
    pub fn reload_failed(&self) {
        self.reloads
            .get_or_create(&ResultLabels { result: "failure" })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// Serves `GET /metrics` (HTTP/1.1) on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Persistent errors (out of file descriptors) would spin: back off.
                    tracing::warn!(%error, "metrics listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(Some(Duration::from_secs(5)))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "metrics connection ended with an error");
            }
        });
    }
}

fn answer<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_reloads_and_the_catalog_appear_in_the_text() {
        let metrics = Metrics::new();
        metrics.observe_call("Recommend", tonic::Code::Ok, Duration::from_micros(300));
        metrics.observe_call(
            "Recommend",
            tonic::Code::NotFound,
            Duration::from_micros(100),
        );
        metrics.observe_call("Other", tonic::Code::Ok, Duration::from_micros(100));
        let catalog = Catalog::from_toml_str("[[mystery]]\nid = 1\ntitle = \"A\"\n", "c").unwrap();
        metrics.catalog_loaded(&catalog, false);
        metrics.catalog_loaded(&catalog, true);
        metrics.reload_failed();
        metrics.read_failed();
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
        assert!(text.contains(&format!(
            "bookshop_catalog_info{{hash=\"{}\"}} 1",
            catalog.short_hash()
        )));
    }
}
