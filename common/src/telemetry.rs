//! Distributed traces: spans exported over OTLP, configured by the standard `OTEL_*` variables.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! and then no layer is installed: [`enabled`] is false, the services make none of their
//! trace-only spans, and nothing is extracted or injected, so tracing costs nothing when off.
//!
//! When on, [`install`] gives the `tracing` layer that turns the services' spans into
//! OpenTelemetry spans, and a [`Traces`] guard whose [`Traces::shutdown`] flushes them at the end
//! of the serve path. Spans are exported in batches by the SDK's `BatchSpanProcessor` from a
//! thread of its own, through a bounded queue ([`TraceSettings::max_queue_size`]): a collector
//! that is down or slow costs a request nothing, spans that do not fit are dropped, and memory
//! stays bounded. Spans that could not be exported are counted in
//! `bookshop_trace_spans_not_exported_total` ([`register_metrics`]).
//!
//! [`continue_from`] makes a server span the child of the caller's W3C `traceparent` (and
//! `tracestate`), [`inject`] sends a client span's context on; both record the span's
//! `trace_id` and `span_id` fields, so the log lines inside the span carry them.

use std::{
    future::Future,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    propagation::TraceContextPropagator,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    },
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tracing_subscriber::{Layer, Registry as Spans, filter::Targets};

/// How spans leave the process (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), usually port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, the specification's default),
    /// usually port 4318.
    HttpProtobuf,
}

/// Where and how to export spans, when traces are on.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The URL spans are sent to: for HTTP the full URL (`…/v1/traces`).
    pub endpoint: String,
    /// gRPC or HTTP.
    pub protocol: Protocol,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// How long one export may take before it counts as failed (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub export_timeout: Duration,
    /// How often queued spans are exported (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// Spans queued for export at most; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
}

/// Why traces could not be set up: each names the variable and its value.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A variable has a value we cannot use.
    #[error("{variable}={value:?} is not valid: {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// The exporter could not be made for this endpoint.
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
}

fn invalid(variable: &'static str, value: &str, expected: &'static str) -> TelemetryError {
    TelemetryError::Invalid {
        variable,
        value: value.to_owned(),
        expected,
    }
}

/// Defaults of the variables we parse ourselves (the specification's).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SCHEDULE_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

impl TraceSettings {
    /// Reads the `OTEL_*` variables; `None` when traces are off. `service` is the default
    /// `service.name`.
    pub fn from_env(service: &str) -> Result<Option<TraceSettings>, TelemetryError> {
        Self::from_vars(service, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables from `var` (empty counts as unset, as
    /// the specification says).
    pub fn from_vars(
        service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TraceSettings>, TelemetryError> {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        // OTEL_SDK_DISABLED=true wins over everything else.
        if let Some(value) = var("OTEL_SDK_DISABLED") {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => return Err(invalid("OTEL_SDK_DISABLED", &value, "true or false")),
            }
        }
        if let Some(value) = var("OTEL_TRACES_EXPORTER") {
            match value.trim() {
                "none" => return Ok(None),
                "otlp" => {}
                _ => return Err(invalid("OTEL_TRACES_EXPORTER", &value, "otlp or none")),
            }
        }
        let protocol = match [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)))
        {
            None => Protocol::HttpProtobuf,
            Some((name, value)) => match value.trim() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                _ => return Err(invalid_protocol(name, &value)),
            },
        };
        // The signal's own endpoint is used as it is; the general one is a base URL, to which
        // HTTP adds the signal's path.
        let endpoint = if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            check_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim())?;
            url.trim().to_owned()
        } else if let Some(url) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", url.trim())?;
            let base = url.trim().trim_end_matches('/');
            match protocol {
                Protocol::Grpc => base.to_owned(),
                Protocol::HttpProtobuf => format!("{base}/v1/traces"),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(TraceSettings {
            endpoint,
            protocol,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned()),
            sampler: sampler(var("OTEL_TRACES_SAMPLER"), var("OTEL_TRACES_SAMPLER_ARG"))?,
            export_timeout: millis_var(&var, "OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_EXPORT_TIMEOUT)?,
            schedule_delay: millis_var(&var, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY)?,
            max_queue_size: match var("OTEL_BSP_MAX_QUEUE_SIZE") {
                None => DEFAULT_MAX_QUEUE_SIZE,
                Some(value) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&size| size > 0)
                    .ok_or_else(|| {
                        invalid("OTEL_BSP_MAX_QUEUE_SIZE", &value, "a whole number above 0")
                    })?,
            },
        }))
    }
}

fn invalid_protocol(variable: &'static str, value: &str) -> TelemetryError {
    invalid(
        variable,
        value,
        "grpc or http/protobuf (http/json is not supported)",
    )
}

/// Plain `http://host:port…`: the exporter here has no TLS (a collector or agent next to the
/// service is the usual set-up).
fn check_endpoint(variable: &'static str, url: &str) -> Result<(), TelemetryError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        invalid(
            variable,
            url,
            "an http:// URL such as http://localhost:4317 (https is not supported)",
        )
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(variable, url, "an http:// URL with a host"));
    }
    Ok(())
}

fn millis_var(
    var: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, TelemetryError> {
    match var(variable) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| invalid(variable, &value, "a whole number of milliseconds")),
    }
}

/// `OTEL_TRACES_SAMPLER` and its argument (the ratio, default 1).
fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, TelemetryError> {
    let ratio = || match &arg {
        None => Ok(1.0),
        Some(value) => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .ok_or_else(|| {
                invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    value,
                    "a ratio from 0 to 1, such as 0.25",
                )
            }),
    };
    let Some(name) = name else {
        return Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    };
    let parent_based = |root| Ok(Sampler::ParentBased(Box::new(root)));
    match name.trim() {
        "always_on" => Ok(Sampler::AlwaysOn),
        "always_off" => Ok(Sampler::AlwaysOff),
        "traceidratio" => Ok(Sampler::TraceIdRatioBased(ratio()?)),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        _ => Err(invalid(
            "OTEL_TRACES_SAMPLER",
            &name,
            "always_on, always_off, traceidratio, parentbased_always_on, \
             parentbased_always_off or parentbased_traceidratio",
        )),
    }
}

/// Whether a trace layer is installed in this process.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are on: when false, the services skip their trace-only spans and every
/// function here returns at once.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Spans that never reached the collector, since the process started: the exporter failed or
/// timed out for their batch. One process has one exporter, so the counter is the process's.
static NOT_EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Registers `bookshop_trace_spans_not_exported_total` in a service's registry.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "bookshop_trace_spans_not_exported",
        "Spans the OTLP exporter failed to deliver (collector down, slow or refusing); \
         0 while traces are off",
        NOT_EXPORTED.clone(),
    );
}

/// The spans that become OpenTelemetry spans: the services' own. The exporter's own gRPC and
/// HTTP client (tonic, hyper, h2) stays out, or exporting would make spans to export.
fn own_spans() -> Targets {
    Targets::new()
        .with_target("marketplace", tracing::Level::TRACE)
        .with_target("recommendations", tracing::Level::TRACE)
        .with_target("bookshop_common", tracing::Level::TRACE)
}

/// The `tracing` layer that records spans, for the global subscriber.
pub type TraceLayer = Box<dyn Layer<Spans> + Send + Sync>;

/// Keeps the tracer provider; [`Traces::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports the spans still queued and stops the exporter, waiting at most `timeout`. Call
    /// it from outside the runtime, while the runtime still runs (the export runs on it).
    pub fn shutdown(self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(%error, "traces: could not export every span before stopping");
        }
    }
}

/// Sets up export as `settings` say and returns the layer to install and its guard. Must be
/// called inside the Tokio runtime the exporter is to run on (its connections live there).
pub fn install(settings: &TraceSettings) -> Result<(TraceLayer, Traces), TelemetryError> {
    let failed = |reason: String| TelemetryError::Exporter {
        endpoint: settings.endpoint.clone(),
        reason,
    };
    let exporter = match settings.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&settings.endpoint)
            .with_timeout(settings.export_timeout)
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(
                opentelemetry_http::hyper::HyperClient::with_default_connector(
                    settings.export_timeout,
                    None,
                ),
            )
            .with_endpoint(&settings.endpoint)
            .with_timeout(settings.export_timeout)
            .build(),
    }
    .map_err(|error| failed(error.to_string()))?;
    let exporter = Counting {
        inner: Arc::new(exporter),
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|error| failed(error.to_string()))?,
        timeout: settings.export_timeout,
    };
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(settings.max_queue_size)
                .with_scheduled_delay(settings.schedule_delay)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(settings.sampler.clone())
        .with_resource(
            Resource::builder_empty()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("bookshop");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(own_spans())
        .boxed();
    ENABLED.store(true, Ordering::Relaxed);
    Ok((layer, Traces { provider }))
}

/// The OTLP exporter, counting the spans it failed to export, and running each export on the
/// Tokio runtime (the batch processor's thread has none; the gRPC and HTTP clients need one).
#[derive(Debug)]
struct Counting<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl<E: SpanExporter + 'static> SpanExporter for Counting<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let spans = batch.len() as u64;
        let inner = self.inner.clone();
        let timeout = self.timeout;
        let export = self.runtime.spawn(async move {
            match tokio::time::timeout(timeout, inner.export(batch)).await {
                Ok(result) => result,
                Err(_) => Err(OTelSdkError::Timeout(timeout)),
            }
        });
        async move {
            let result = export
                .await
                .unwrap_or_else(|error| Err(OTelSdkError::InternalFailure(error.to_string())));
            if let Err(error) = &result {
                // The first failure after a success is logged; the counter has the rest.
                if NOT_EXPORTED.inc_by(spans) == 0 || !FAILING.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, spans, "traces: cannot export spans to the collector");
                }
            } else {
                FAILING.store(false, Ordering::Relaxed);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, before the first export: the exporter is not shared yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// Whether the last export failed (so that a collector that stays down is logged once).
static FAILING: AtomicBool = AtomicBool::new(false);

/// Makes `span` the child of the remote span named by a W3C `traceparent` (and its
/// `tracestate`), if any and well-formed, and records its `trace_id` and `span_id` fields. Call
/// it before the span is first entered. Does nothing while traces are off.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&TraceHeaders {
        traceparent,
        tracestate,
    });
    // Only a span that is disabled (filtered out) or already started refuses; neither is ours.
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(span, parent);
    record_ids(span);
}

/// The W3C trace context headers (or gRPC metadata) of an incoming request.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// Records the `trace_id` and `span_id` fields of `span` (a span made while traces are on,
/// with both fields declared empty), so that the lines logged inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    if !enabled() {
        return;
    }
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(span);
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
        span.record("span_id", tracing::field::display(span_context.span_id()));
    }
}

/// Names `span` once it has started (`otel.name` is only read until then): a server span is
/// named after its route, known only once the request has been routed. Does nothing while
/// traces are off.
pub fn rename(span: &tracing::Span, name: String) {
    if !enabled() {
        return;
    }
    tracing_opentelemetry::OpenTelemetrySpanExt::context(span)
        .span()
        .update_name(name);
}

/// Sends the context of `span` on: calls `set` with `traceparent` (and `tracestate` when there
/// is one). Does nothing while traces are off.
pub fn inject(span: &tracing::Span, set: impl FnMut(&str, String)) {
    if !enabled() {
        return;
    }
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(span);
    TraceContextPropagator::new().inject_context(&context, &mut Setter(set));
}

struct TraceHeaders<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

struct Setter<F>(F);

impl<F: FnMut(&str, String)> Injector for Setter<F> {
    fn set(&mut self, key: &str, value: String) {
        (self.0)(key, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceSettings::from_vars("marketplace", |name| vars.get(name).cloned())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        settings(vars).unwrap_err().to_string()
    }

    #[test]
    fn traces_are_off_without_an_endpoint() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(settings(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        assert!(
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sdk_disabled_wins_and_exporter_none_turns_traces_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])
                .unwrap()
                .is_none()
        );
        assert!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .is_none()
        );
        assert!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "false")])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn the_general_endpoint_gets_the_signal_path_for_http_only() {
        let grpc = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(grpc.endpoint, "http://jaeger:4317");
        assert_eq!(grpc.protocol, Protocol::Grpc);
        let http = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(http.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        let own = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint, "http://jaeger:4318/x");
    }

    #[test]
    fn the_service_name_defaults_to_the_services_and_the_sampler_to_parent_based() {
        let defaults = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(defaults.service_name, "marketplace");
        assert_eq!(
            format!("{:?}", defaults.sampler),
            format!("{:?}", Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        let set = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SERVICE_NAME", "shop-web"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(set.service_name, "shop-web");
        assert_eq!(
            format!("{:?}", set.sampler),
            format!(
                "{:?}",
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.25)))
            )
        );
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_value() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        for (vars, variable, value) in [
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
                "sometimes",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "1.5",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4317",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:4318")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://c:4318",
            ),
            (
                vec![endpoint, ("OTEL_SDK_DISABLED", "yes")],
                "OTEL_SDK_DISABLED",
                "yes",
            ),
            (
                vec![endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "0",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "10s",
            ),
        ] {
            let message = error(&vars);
            assert!(
                message.contains(variable) && message.contains(&format!("{value:?}")),
                "{message}"
            );
        }
    }

    #[test]
    fn stopping_with_a_silent_collector_waits_no_longer_than_asked() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Takes connections (into the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let settings = TraceSettings {
            endpoint: format!("http://{}", silent.local_addr().unwrap()),
            protocol: Protocol::Grpc,
            service_name: "test".into(),
            sampler: Sampler::AlwaysOn,
            export_timeout: Duration::from_secs(30),
            schedule_delay: Duration::from_secs(60),
            max_queue_size: 16,
        };
        let (layer, traces) = {
            let _inside = runtime.enter();
            install(&settings).unwrap()
        };
        let subscriber =
            tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("waiting").in_scope(|| {});
        });
        let started = std::time::Instant::now();
        traces.shutdown(Duration::from_millis(500));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    }
}
