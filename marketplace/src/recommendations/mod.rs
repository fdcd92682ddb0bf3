//! The way to Recommendations: every call with a deadline (sent as `grpc-timeout`, and kept by
//! a guard whatever happens), balanced over the replicas ([`balance`]), tried once more on
//! another replica when it could not reach its own, counted, traced, and logged when it fails.
//!
//! [`endpoint`] is the one place a connection is configured (TLS, timeouts, keepalive).

pub mod balance;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bookshop_common::{
    millis, telemetry,
    tls::{self, TlsFileError},
};
use bookshop_proto::{
    BookCategory, RecommendationRequest, SERVICE_NAME,
    catalog::{
        CatalogVersion, ListCategoriesRequest, ListCategoriesResponse, RecommendRequest,
        WatchRequest, catalog_client::CatalogClient, catalog_events_client::CatalogEventsClient,
    },
    recommendations_client::RecommendationsClient,
};
use tonic::{
    Code, Status, Streaming,
    metadata::MetadataKey,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::Instrument;

use crate::{
    book::Book,
    categories::{Api, plain_version},
    metrics::Metrics,
    settings::RecommendationsSettings,
};
use balance::{Balancer, DnsResolver, Pool, Resolve};

/// The guard's margin beyond the deadline sent, so that the server's `DEADLINE_EXCEEDED` (or
/// tonic's own timer) normally wins; the guard catches a call that waits before tonic's timer
/// starts (for a replica, or for room in the balancer's queue).
pub const GUARD_MARGIN: Duration = Duration::from_millis(200);

/// How long an HTTP/2 ping may go unanswered, and the gap between TCP keepalive probes.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

const CATALOG: &str = "bookshop.catalog.v1.Catalog";

/// A method as the metrics and spans name it: service and method.
pub type Method = (&'static str, &'static str);

/// A call's answer to come.
type Reply<T> = futures_util::future::BoxFuture<'static, Result<tonic::Response<T>, Status>>;

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub category: Arc<str>,
    pub max_results: u32,
    pub user_id: i32,
}

/// Who asks: the request id and the `traceparent` of the page, passed on as metadata so that
/// Recommendations logs them.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub request_id: String,
    pub traceparent: Option<String>,
}

/// Books, and the catalog version they came from (`None` from a server that only speaks the
/// tutorial's API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommended {
    pub books: Vec<Book>,
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The category has no books (`NOT_FOUND`).
    #[error("no books in this category")]
    NotFound,
    #[error("no answer from Recommendations within {0:?}")]
    TimedOut(Duration),
    /// Unreachable (`UNAVAILABLE`), out of time (`CANCELLED`, `DEADLINE_EXCEEDED`), or an
    /// error on the server.
    #[error("Recommendations failed with {:?}: {}", .0.code(), .0.message())]
    Failed(Status),
    /// No replica address is known: the name has not resolved yet.
    #[error("no Recommendations replica is known (the address does not resolve)")]
    NoReplicas,
}

impl CallError {
    /// For metrics labels and logs: a gRPC code's name, `CLIENT_TIMEOUT` when our own guard
    /// gave up, `NO_REPLICAS`.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Failed(status) => bookshop_proto::code_name(status.code()),
            CallError::TimedOut(_) => "CLIENT_TIMEOUT",
            CallError::NotFound => "NOT_FOUND",
            CallError::NoReplicas => "NO_REPLICAS",
        }
    }
}

/// A connection to Recommendations cannot be configured: a TLS file.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    #[error("invalid TLS configuration for Recommendations: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// The Marketplace's handle on Recommendations; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    pub pool: Pool,
    deadline: Duration,
    metrics: Arc<Metrics>,
}

impl Client {
    /// Over the replicas that `recommendations.host` (or `.addresses`) resolves to. Must be
    /// called within the runtime (resolution runs in the background).
    pub fn new(
        settings: &RecommendationsSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Client, ChannelError> {
        Self::with_resolver(settings, Box::new(DnsResolver(settings.targets())), metrics)
    }

    /// Over the replicas `resolver` finds (tests change them with it).
    pub fn with_resolver(
        settings: &RecommendationsSettings,
        resolver: Box<dyn Resolve>,
        metrics: Arc<Metrics>,
    ) -> Result<Client, ChannelError> {
        let tls = client_tls(settings)?;
        // Checked once, so that making a replica's channel cannot fail.
        endpoint(settings, tls.as_ref(), SocketAddr::from(([127, 0, 0, 1], settings.port)))?;
        let settings_ = settings.clone();
        // Lazily connected: nothing is dialled until a call needs it, so the Marketplace starts
        // and serves while Recommendations is down, and after a failure the next call dials.
        let connect = move |addr| match endpoint(&settings_, tls.as_ref(), addr) {
            Ok(endpoint) => endpoint.connect_lazy(),
            Err(_) => Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        };
        let pool = Pool::new(resolver, connect, settings.resolve_interval);
        Ok(Client { pool, deadline: settings.timeout, metrics })
    }

    /// Books by key from a server that speaks the catalog's API, with the tutorial's
    /// `Recommend` from one that speaks only its own; while that is not known, the tutorial's
    /// categories the tutorial's way, which every server answers. Failures other than
    /// `NOT_FOUND` are logged here with their cause: callers only decide what the visitor sees.
    pub async fn recommend(
        &self,
        query: &Query,
        api: Api,
        caller: &Caller,
    ) -> Result<Recommended, CallError> {
        let max_results = i32::try_from(query.max_results).unwrap_or(i32::MAX);
        let result = match (api, BookCategory::from_key(&query.category)) {
            (Api::Catalog, _) | (Api::Unknown, None) => {
                let message = RecommendRequest {
                    user_id: query.user_id,
                    category: query.category.to_string(),
                    max_results,
                };
                let call = |channel, request: tonic::Request<()>| -> Reply<_> {
                    let message = message.clone();
                    Box::pin(async move {
                        CatalogClient::new(channel).recommend(request.map(|()| message)).await
                    })
                };
                self.call((CATALOG, "Recommend"), caller, call).await.map(|answer| Recommended {
                    books: answer
                        .books
                        .into_iter()
                        .map(|b| Book::new(b.id, b.title, b.author))
                        .collect(),
                    version: Some(plain_version(answer.version)),
                })
            }
            (Api::Tutorial | Api::Unknown, Some(category)) => {
                let message = RecommendationRequest {
                    user_id: query.user_id,
                    category: category as i32,
                    max_results,
                };
                let call = |channel, request: tonic::Request<()>| -> Reply<_> {
                    Box::pin(async move {
                        RecommendationsClient::new(channel)
                            .recommend(request.map(|()| message))
                            .await
                    })
                };
                self.call((SERVICE_NAME, "Recommend"), caller, call).await.map(|answer| {
                    Recommended {
                        books: answer
                            .recommendations
                            .into_iter()
                            .map(|b| Book::new(b.id, b.title, b.author))
                            .collect(),
                        version: None,
                    }
                })
            }
            // The tutorial's API has no other category.
            (Api::Tutorial, None) => Err(CallError::NotFound),
        };
        match result {
            // `UNIMPLEMENTED`: a tutorial's server, which has no category but its own.
            Err(CallError::Failed(status))
                if matches!(status.code(), Code::NotFound | Code::Unimplemented) =>
            {
                Err(CallError::NotFound)
            }
            Err(error) => {
                let (category, user_id, code) = (&*query.category, query.user_id, error.code());
                let (deadline_ms, chain) = (millis(self.deadline), error_chain(&error));
                tracing::warn!(
                    category,
                    user_id,
                    code,
                    deadline_ms,
                    error = chain,
                    "Recommendations call failed"
                );
                Err(error)
            }
            ok => ok,
        }
    }

    /// Whether a replica answers its health check with `SERVING` within the deadline. A server
    /// without a health service (the tutorial's) answered `UNIMPLEMENTED`: ready.
    pub async fn ready(&self) -> bool {
        let check = |channel, request: tonic::Request<()>| -> Reply<_> {
            let service = SERVICE_NAME.to_owned();
            Box::pin(async move {
                HealthClient::new(channel)
                    .check(request.map(|()| HealthCheckRequest { service }))
                    .await
            })
        };
        match self.call(("grpc.health.v1.Health", "Check"), &Caller::default(), check).await {
            Ok(answer) => answer.status() == ServingStatus::Serving,
            Err(CallError::Failed(status)) => status.code() == Code::Unimplemented,
            Err(_) => false,
        }
    }

    /// Opens the catalog's version stream on a replica: its channel (for
    /// [`list_categories`](Self::list_categories), so that the list is of the version the
    /// stream told of) and the stream, whose first message is the version in service. Only the
    /// opening is under the deadline.
    pub async fn watch_catalog(&self) -> Result<(Channel, Streaming<CatalogVersion>), CallError> {
        let channel = self.pool.pick().ok_or(CallError::NoReplicas)?;
        let opened = guarded(
            self.deadline,
            CatalogEventsClient::new(channel.clone()).watch(WatchRequest {}),
        )
        .await;
        Ok((channel, opened?.into_inner()))
    }

    pub async fn list_categories(
        &self,
        channel: Channel,
    ) -> Result<ListCategoriesResponse, CallError> {
        let mut request = tonic::Request::new(ListCategoriesRequest {});
        request.set_timeout(self.deadline);
        let started = Instant::now();
        let result =
            guarded(self.deadline, CatalogClient::new(channel).list_categories(request)).await;
        let code = result.as_ref().map_or_else(CallError::code, |_| "OK");
        self.metrics.observe_call(
            (CATALOG, "ListCategories"),
            code,
            started.elapsed().as_secs_f64(),
        );
        result.map(tonic::Response::into_inner)
    }

    /// The one way a call goes out: the deadline sent and kept, the caller's ids passed on, the
    /// attempt counted and traced; a call that could not reach its replica (`UNAVAILABLE`) is
    /// tried once more, on another replica (the balancer no longer offers the failed one),
    /// within what is left of the deadline.
    async fn call<T>(
        &self,
        method: Method,
        caller: &Caller,
        send: impl Fn(Balancer, tonic::Request<()>) -> Reply<T>,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let mut try_number = 1;
        loop {
            let left = self.deadline.saturating_sub(started.elapsed());
            let span = attempt_span(method, try_number);
            let mut request = tonic::Request::new(());
            request.set_timeout(left);
            pass_on(&mut request, caller, &span);
            let attempt = Instant::now();
            let result = guarded(left, send(self.pool.balancer.clone(), request))
                .instrument(span.clone())
                .await;
            let code = result.as_ref().map_or_else(CallError::code, |_| "OK");
            span.record("rpc.grpc.status_code", code);
            if code != "OK" {
                span.record("otel.status_code", "error");
            }
            self.metrics.observe_call(method, code, attempt.elapsed().as_secs_f64());
            let error = match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(error) => error,
            };
            let unreached =
                matches!(&error, CallError::Failed(status) if status.code() == Code::Unavailable);
            let retry = unreached && try_number == 1 && self.pool.len() > 1 && !left.is_zero();
            let (error_text, elapsed_ms) = (error_chain(&error), millis(attempt.elapsed()));
            tracing::debug!(
                method = method.1,
                code,
                elapsed_ms,
                retry,
                error = error_text,
                "attempt failed"
            );
            if !retry {
                return Err(error);
            }
            self.metrics.retries.inc();
            try_number += 1;
        }
    }
}

/// TLS from `recommendations.tls`, its files read now.
fn client_tls(settings: &RecommendationsSettings) -> Result<Option<ClientTlsConfig>, ChannelError> {
    let tls = &settings.tls;
    let Some(ca) = &tls.ca_path else {
        return Ok(None);
    };
    let ca = Certificate::from_pem(tls::read("recommendations.tls.ca_path", ca)?);
    let name = tls.server_name.clone().unwrap_or_else(|| settings.host.clone());
    let mut config = ClientTlsConfig::new().ca_certificate(ca).domain_name(name);
    if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
        let cert = tls::read("recommendations.tls.cert_path", cert)?;
        config = config
            .identity(Identity::from_pem(cert, tls::read("recommendations.tls.key_path", key)?));
    }
    Ok(Some(config))
}

/// How a connection to one replica is made; replicas are dialled by address, and with TLS the
/// certificate is checked against the configured name.
fn endpoint(
    settings: &RecommendationsSettings,
    tls: Option<&ClientTlsConfig>,
    addr: SocketAddr,
) -> Result<Endpoint, ChannelError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let user_agent = concat!("bookshop-marketplace/", env!("CARGO_PKG_VERSION"));
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .and_then(|endpoint| endpoint.user_agent(user_agent))
        .map_err(ChannelError::Tls)?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone()).map_err(ChannelError::Tls)?;
    }
    // A dead connection is noticed between calls: HTTP/2 pings while calls are in flight, TCP
    // keepalive probes while it is idle, as gRPC's C core and Go servers close a connection
    // that pings without calls (GOAWAY "too_many_pings").
    Ok(endpoint
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .tcp_keepalive(Some(settings.keepalive))
        .tcp_keepalive_interval(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive_retries(Some(3)))
}

/// The client span of one attempt while traces are on: a retry is a second span beside the
/// first.
fn attempt_span(method: Method, try_number: i64) -> tracing::Span {
    if !telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "call",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "client",
        otel.name = format_args!("{}/{}", method.0, method.1),
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = method.0,
        rpc.method = method.1,
        rpc.grpc.status_code = tracing::field::Empty,
        server.address = tracing::field::Empty,
        try_number,
    );
    telemetry::record_ids(&span);
    span
}

/// The caller's request id, and its trace context: with traces on, the attempt's (so that
/// Recommendations' span is its child), else the page's `traceparent`, passed through.
fn pass_on(request: &mut tonic::Request<()>, caller: &Caller, span: &tracing::Span) {
    let metadata = request.metadata_mut();
    // Both were checked to be visible ASCII: valid metadata.
    if let Ok(id) = caller.request_id.parse() {
        metadata.insert("x-request-id", id);
    }
    match (telemetry::enabled(), caller.traceparent.as_deref().map(str::parse)) {
        (false, Some(Ok(traceparent))) => {
            drop(metadata.insert(telemetry::TRACEPARENT, traceparent))
        }
        (false, _) => {}
        (true, _) => telemetry::inject(span, |key, value| {
            if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), value.parse()) {
                metadata.insert(key, value);
            }
        }),
    }
}

/// A call under the guard: `limit` + [`GUARD_MARGIN`].
async fn guarded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, CallError> {
    let limit = limit + GUARD_MARGIN;
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(CallError::Failed),
        Err(_) => Err(CallError::TimedOut(limit)),
    }
}

/// The error and its causes, `: `-separated ("… tcp connect error: Connection refused").
fn error_chain(error: &CallError) -> String {
    let mut text = error.to_string();
    let mut source = match error {
        CallError::Failed(status) => std::error::Error::source(status),
        _ => None,
    };
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
