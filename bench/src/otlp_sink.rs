//! `bench-tool otlp-sink`: a minimal OTLP/gRPC trace receiver, so that `bench/callgrind.sh
//! --traces` measures the services exporting their spans to a real local collector.
//!
//! It implements the collector's `TraceService` (the `opentelemetry-proto` types, as the
//! Marketplace's traces test does), answers every export with success and keeps nothing but a
//! count of spans per `service.name`. On SIGTERM or Ctrl-C it prints the counts, one line per
//! service (`SERVICE SPANS`), and exits.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::Context;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    resource::v1::Resource,
};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};

/// Spans received, by the `service.name` of their resource.
pub type Counts = BTreeMap<String, u64>;

/// The receiver: counts the spans of every export request.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    counts: Arc<Mutex<Counts>>,
}

impl Sink {
    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, request: &ExportTraceServiceRequest) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for resource in &request.resource_spans {
            let spans: usize = resource.scope_spans.iter().map(|s| s.spans.len()).sum();
            *counts
                .entry(service_name(resource.resource.as_ref()))
                .or_default() += spans as u64;
        }
    }
}

/// The resource's `service.name`, or `unknown`.
fn service_name(resource: Option<&Resource>) -> String {
    resource
        .into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map_or_else(
            || "unknown".to_owned(),
            |value| match value {
                Value::StringValue(name) => name.clone(),
                other => format!("{other:?}"),
            },
        )
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Binds `addr`, then serves `sink` until SIGTERM or Ctrl-C.
pub async fn serve(addr: SocketAddr, sink: Sink) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {addr}"))?;
    Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener),
            bookshop_common::shutdown::signal(),
        )
        .await
        .context("the OTLP sink failed")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry_proto::tonic::{
        common::v1::{AnyValue, KeyValue},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;

    fn resource_spans(service: Option<&str>, spans: usize) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|name| KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(name.into())),
                        }),
                        ..KeyValue::default()
                    })
                    .into_iter()
                    .collect(),
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); spans],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }
    }

    #[tokio::test]
    async fn counts_spans_per_service() {
        let sink = Sink::default();
        let request =
            |resource_spans| tonic::Request::new(ExportTraceServiceRequest { resource_spans });
        sink.export(request(vec![
            resource_spans(Some("marketplace"), 3),
            resource_spans(Some("recommendations"), 2),
        ]))
        .await
        .unwrap();
        sink.export(request(vec![
            resource_spans(Some("marketplace"), 1),
            resource_spans(None, 4),
        ]))
        .await
        .unwrap();
        let expected: Counts = [("marketplace", 4), ("recommendations", 2), ("unknown", 4)]
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n))
            .collect();
        assert_eq!(sink.counts(), expected);
    }
}
