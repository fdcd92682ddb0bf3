//! `bench-tool otlp-sink`: an OTLP/gRPC trace receiver for `bench/callgrind.sh --traces`, so
//! that the services export their spans to a real collector. It answers every export with
//! success, counts the spans per `service.name`, and answers gRPC health checks.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest as Export, ExportTraceServiceResponse as Exported,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value::Value},
};
use tonic::{Request, Response, Status, transport::Server};

/// Spans received, by the `service.name` of their resource.
#[derive(Debug, Clone, Default)]
struct Sink(Arc<Mutex<BTreeMap<String, usize>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(&self, export: Request<Export>) -> Result<Response<Exported>, Status> {
        let mut counts = crate::lock(&self.0);
        for spans in export.into_inner().resource_spans {
            let mut attributes = spans.resource.into_iter().flat_map(|r| r.attributes);
            let name = attributes.find(|kv| kv.key == "service.name");
            let name = match name.and_then(|kv| kv.value) {
                Some(AnyValue { value: Some(Value::StringValue(name)) }) => name,
                _ => "unknown".to_owned(),
            };
            let count: usize = spans.scope_spans.iter().map(|s| s.spans.len()).sum();
            *counts.entry(name).or_default() += count;
        }
        Ok(Response::new(Exported::default()))
    }
}

/// Serves on `addr` until SIGTERM or Ctrl-C; the counts then.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, usize>> {
    let (sink, stop) = (Sink::default(), crate::stop_signal()?);
    let (_, health) = tonic_health::server::health_reporter();
    let server = Server::builder().add_service(health);
    let server = server.add_service(TraceServiceServer::new(sink.clone()));
    server.serve_with_shutdown(addr, stop).await?;
    Ok(crate::lock(&sink.0).clone())
}
