//! Distributed traces end to end: a real Marketplace and a real Recommendations export their
//! spans over OTLP/gRPC to a receiver in this test (the collector's `TraceService` on
//! 127.0.0.1:0); and the HTTP exporter, to an OTLP/HTTP receiver.
//!
//! A test binary of its own, so a process of its own: the trace layer is part of the global
//! subscriber, installed once here (by the first test, which runs its scenarios in turn as they
//! share that one exporter), and the other tests' processes never have it. The second test
//! keeps its span on a subscriber of its own thread.

#![allow(clippy::unwrap_used, unreachable_pub)]

#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bookshop_common::{
    logging::{self, LogFormat},
    serve::App,
    telemetry,
};
use bookshop_testing::{CapturedLines, Spawned, otlp_http_receiver};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use prost::Message;
use support::{
    ManualResolver, MarketplaceProcess, catalog_dir, eventually, get, marketplace_with_deadline,
    reserved_port, settings_for, wait_until_serving, write_catalog,
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::server::TcpIncoming;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// An OTLP receiver: keeps every span it is sent.
#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Serves on `listener` until `stop` fires.
    fn serve(&self, listener: TcpListener, stop: oneshot::Receiver<()>) {
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stop.await;
                },
            ),
        );
    }
}

/// A string attribute of `span`.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn number(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        Value::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real Recommendations with its metrics listener (the support's has none).
struct Recommendations {
    addr: SocketAddr,
    metrics: SocketAddr,
    running: Spawned<recommendations::StartError>,
}

impl Recommendations {
    async fn start(catalog: &std::path::Path) -> Recommendations {
        let mut settings = recommendations::settings::Settings::default();
        settings.server.host = "127.0.0.1".into();
        settings.metrics.port = 0;
        settings.catalog.path = catalog.to_path_buf();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = recommendations::Application::with_listener(settings, listener).await.unwrap();
        let addr = app.local_addr();
        let metrics = app.metrics_addr().unwrap();
        let running = Spawned::new(|stop| app.run_until_stopped(stop));
        wait_until_serving(addr).await;
        Recommendations { addr, metrics, running }
    }
}

/// The browser's trace: the page must continue it.
const BROWSER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_SPAN: &str = "00f067aa0ba902b7";
const BROWSER_STATE: &str = "shop=b1,edge=7f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_one_trace_across_both_services_and_a_down_collector_costs_nothing() {
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector: SocketAddr = listener.local_addr().unwrap();
    let (stop_receiver, stopped) = oneshot::channel();
    receiver.serve(listener, stopped);

    let endpoint = format!("http://{collector}");
    let traces = telemetry::install_with("marketplace", |name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
        "OTEL_SERVICE_NAME" => Some("bookshop-test".into()),
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("500".into()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".into()),
        _ => None,
    });
    let _traces = traces.unwrap().unwrap();
    let layer = _traces.layer();
    let lines = CapturedLines::default();
    let writer = lines.clone();
    logging::subscriber(
        Some(layer),
        EnvFilter::new("info,recommendations::access=debug,marketplace::access=debug"),
        LogFormat::Json,
        move || writer.clone(),
        false,
    )
    .init();

    let (dir, catalog) = catalog_dir(&["Dune", "Emma"]);
    let recommendations = Recommendations::start(&catalog).await;
    let marketplace =
        MarketplaceProcess::start(settings_for(recommendations.addr.port(), 2000)).await;

    // One page, from a browser that sent its own traceparent.
    let traceparent = format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01");
    let page = get(
        marketplace.addr,
        "/?category=mystery",
        &[("traceparent", &traceparent), ("tracestate", BROWSER_STATE)],
    )
    .await;
    assert_eq!(page.status, 200);

    let in_trace = |spans: &[Span]| -> Vec<Span> {
        spans.iter().filter(|s| hex(&s.trace_id) == BROWSER_TRACE).cloned().collect()
    };
    let exported = eventually(Duration::from_secs(10), async || {
        let spans = in_trace(&receiver.spans());
        spans.iter().any(|s| s.kind == SpanKind::Server as i32 && text(s, "rpc.method").is_some())
            && spans
                .iter()
                .any(|s| s.kind == SpanKind::Server as i32 && text(s, "http.route").is_some())
    })
    .await;
    let spans = in_trace(&receiver.spans());
    assert!(exported, "the page's spans did not arrive: {spans:#?}");

    // The Marketplace's server span continues the browser's span, with route and status.
    let page_span = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && text(s, "http.route").is_some())
        .unwrap();
    assert_eq!(hex(&page_span.parent_span_id), BROWSER_SPAN);
    assert_eq!(page_span.name, "GET /");
    assert_eq!(text(page_span, "http.route").as_deref(), Some("/"));
    assert_eq!(number(page_span, "http.response.status_code"), Some(200), "{page_span:#?}");

    // Its call to Recommendations is a client span under it, and Recommendations' server span
    // is the child of that attempt.
    let call_span = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32 && s.parent_span_id == page_span.span_id)
        .unwrap_or_else(|| panic!("no client span under the page's: {spans:#?}"));
    // Named service/method (the catalog API's, or the seed's until the Marketplace has learnt
    // which one Recommendations speaks).
    let called = format!(
        "{}/{}",
        text(call_span, "rpc.service").unwrap(),
        text(call_span, "rpc.method").unwrap()
    );
    assert_eq!(call_span.name, called);
    assert!(called.ends_with("/Recommend"), "{called}");
    assert_eq!(text(call_span, "rpc.grpc.status_code").as_deref(), Some("OK"));
    assert_eq!(number(call_span, "try_number"), Some(1));
    let served = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && s.parent_span_id == call_span.span_id)
        .unwrap_or_else(|| panic!("no Recommendations span under the call: {spans:#?}"));
    assert_eq!(Some(&served.name), text(served, "rpc.method").as_ref());
    assert!(served.name.ends_with("Recommend"), "{served:#?}");
    assert_eq!(text(served, "category").as_deref(), Some("mystery"));
    assert_eq!(text(served, "rpc.grpc.status_code").as_deref(), Some("OK"));
    assert_eq!(number(served, "books"), Some(2));
    // The browser's tracestate went along, into Recommendations too.
    for span in [page_span, call_span, served] {
        assert_eq!(span.trace_state, BROWSER_STATE, "{span:#?}");
    }

    // The log lines of both services carry the trace and span ids of their spans.
    let logged = eventually(Duration::from_secs(5), async || {
        let text = lines.text();
        text.lines().any(|line| {
            line.contains("recommendations::access")
                && line.contains(BROWSER_TRACE)
                && line.contains(&hex(&served.span_id))
        }) && text.lines().any(|line| {
            line.contains("marketplace::access")
                && line.contains(BROWSER_TRACE)
                && line.contains(&hex(&page_span.span_id))
        })
    })
    .await;
    assert!(logged, "no access lines with the trace ids:\n{}", lines.text());

    // A catalog reload has its own span: its result and the books now in service.
    write_catalog(&catalog, &["Dune", "Emma", "Ulysses"]);
    let reloaded = eventually(Duration::from_secs(10), async || {
        receiver.spans().iter().any(|s| {
            s.name == "catalog reload"
                && s.parent_span_id.is_empty()
                && text(s, "result").as_deref() == Some("loaded")
                && number(s, "books") == Some(4)
        })
    })
    .await;
    assert!(reloaded, "no reload span: {:#?}", receiver.spans());

    // A retry is visible: with one replica refusing connections, an attempt that failed with
    // UNAVAILABLE and the retry on the other replica are two client spans under one parent.
    let (_refusing, refused_port) = reserved_port();
    let resolver = ManualResolver::new(vec![
        recommendations.addr,
        SocketAddr::from(([127, 0, 0, 1], refused_port)),
    ]);
    let (shop, _state) = marketplace_with_deadline(&resolver, 2000).await;
    let retried = eventually(Duration::from_secs(10), async || {
        let (res, _) = support::page(&shop, "/?category=mystery").await;
        assert_eq!(res.status_code.map(|s| s.as_u16()), Some(200));
        let spans = receiver.spans();
        spans.iter().any(|retry| {
            number(retry, "try_number") == Some(2)
                && spans.iter().any(|first| {
                    number(first, "try_number") == Some(1)
                        && first.trace_id == retry.trace_id
                        && first.parent_span_id == retry.parent_span_id
                        && text(first, "rpc.grpc.status_code").as_deref() == Some("UNAVAILABLE")
                        && first.status.as_ref().map(|s| s.code) == Some(StatusCode::Error as i32)
                        && text(first, "server.address")
                            == Some(format!("127.0.0.1:{refused_port}"))
                })
        })
    })
    .await;
    assert!(retried, "no retry in the spans: {:#?}", receiver.spans());

    // With the collector gone, pages are served as before, and the spans that cannot be
    // exported are counted.
    // Each service's /metrics has the counter (one process here, so one count), from 0.
    let metrics_urls = [marketplace.addr, recommendations.metrics];
    let not_exported = async |addr| {
        let metrics = get(addr, "/metrics", &[]).await.body;
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(
                    "bookshop_trace_spans_not_exported_total{reason=\"export_failed\"} ",
                )
            })
            .map(|n| n.trim().parse::<u64>().unwrap())
            .unwrap_or_else(|| panic!("no lost-span counter at {addr}:\n{metrics}"))
    };
    for addr in metrics_urls {
        assert_eq!(not_exported(addr).await, 0);
    }
    stop_receiver.send(()).unwrap();
    let counted = eventually(Duration::from_secs(10), async || {
        let page = get(marketplace.addr, "/?category=mystery", &[]).await;
        assert_eq!(page.status, 200);
        not_exported(marketplace.addr).await > 0
    })
    .await;
    assert!(counted, "spans not exported were not counted");
    assert!(not_exported(recommendations.metrics).await > 0);

    marketplace.running.stop(Duration::from_secs(10)).await.unwrap();
    recommendations.running.stop(Duration::from_secs(10)).await.unwrap();
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_is_the_default_protocol_and_stopping_flushes_the_queue() {
    let (collector, received) = otlp_http_receiver().await;
    // As the variables set it, and with exports every minute: only the flush sends the span.
    let traces = telemetry::install_with("recommendations", |name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(format!("http://{collector}")),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("60000".into()),
        _ => None,
    });
    let traces = traces.unwrap().unwrap();
    let layer = traces.layer();
    // This thread's own subscriber: the other test's global one never sees this span.
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!(target: "recommendations::test", "flushed").in_scope(|| {});
    });
    assert!(received.lock().unwrap().is_empty());

    tokio::task::spawn_blocking(move || traces.shutdown(Duration::from_secs(5))).await.unwrap();
    let received: Vec<ExportTraceServiceRequest> = (received.lock().unwrap().iter())
        .map(|(path, body)| {
            assert_eq!(path, "/v1/traces");
            ExportTraceServiceRequest::decode(body.clone()).unwrap()
        })
        .collect();
    let resource_spans: Vec<_> = received.iter().flat_map(|r| &r.resource_spans).collect();
    let names: Vec<&str> = resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["flushed"]);
    // The service name defaults to the service's.
    let service_name = resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(service_name, Some(Value::StringValue("recommendations".into())));
}
