//! The way to Recommendations: a pool of lazily connected channels, one per replica (see
//! [`balance`](crate::balance)), a deadline on every call, one retry on another replica when a call
//! could not reach its replica, and one error type for everything that can go wrong on the way.
//!
//! `endpoint` is the only place a connection is configured (TLS, timeouts, keepalive).

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
use serde::Serialize;
use tonic::{
    Code, Request, Status, Streaming,
    metadata::MetadataKey,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::Instrument;

use crate::{
    balance::{Attempt, DnsResolver, MakeChannel, ReplicaPool, Resolve},
    metrics::{GrpcMethod, Metrics},
    params::BookQuery,
    request_id,
    settings::RecommendationsSettings,
    shelves::{Source, plain_version},
};

/// The seed's `Recommend`, as the metrics label it.
pub const RECOMMEND: GrpcMethod = GrpcMethod {
    service: SERVICE_NAME,
    method: "Recommend",
};

/// The catalog API's service (`bookshop.catalog.v1.Catalog`).
const CATALOG_SERVICE: &str = "bookshop.catalog.v1.Catalog";

/// `Recommend` by category key, as the metrics label it.
pub const CATALOG_RECOMMEND: GrpcMethod = GrpcMethod {
    service: CATALOG_SERVICE,
    method: "Recommend",
};

/// `ListCategories`, as the metrics label it.
pub const LIST_CATEGORIES: GrpcMethod = GrpcMethod {
    service: CATALOG_SERVICE,
    method: "ListCategories",
};

/// The health check, as the metrics label it.
pub const HEALTH_CHECK: GrpcMethod = GrpcMethod {
    service: "grpc.health.v1.Health",
    method: "Check",
};

/// Extra time the client-side guard gives a call beyond the deadline sent to the server, so the
/// server's own `DEADLINE_EXCEEDED` (or tonic's `CANCELLED`, which also covers a stuck connection
/// set-up) normally wins and the guard only catches calls that hang before tonic's deadline
/// starts counting: waiting for room in the channel's request buffer.
pub const GUARD_MARGIN: Duration = Duration::from_millis(200);

/// How long an HTTP/2 ping may go unanswered, and the gap between TCP keepalive probes, before a
/// connection counts as dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Unanswered TCP keepalive probes before the kernel drops an idle connection.
const KEEPALIVE_PROBES: u32 = 3;

/// A recommended book, as the pages and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Book {
    /// The catalog id.
    pub id: i32,
    /// The title.
    pub title: String,
    /// The author, when the catalog has one (the seed's catalog has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl Book {
    /// A book as the proto gives it: an empty author is none.
    fn new(id: i32, title: String, author: String) -> Book {
        Book {
            id,
            title,
            author: Some(author).filter(|a| !a.trim().is_empty()),
        }
    }
}

/// Books, and the catalog version they were drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommended {
    /// The books.
    pub books: Vec<Book>,
    /// The catalog version; `None` from a server that only speaks the seed's API.
    pub version: Option<String>,
}

/// Why a call to Recommendations gave no books.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The category has no books (Recommendations answered `NOT_FOUND`).
    #[error("no books in this category")]
    NotFound,
    /// No answer within the deadline plus [`GUARD_MARGIN`].
    #[error("no answer from Recommendations within {0:?}")]
    TimedOut(Duration),
    /// Any other failure: unreachable (`UNAVAILABLE`), deadline passed (`CANCELLED` from tonic's
    /// own timer, `DEADLINE_EXCEEDED` from the server), or an error on the server.
    #[error("Recommendations failed with {:?}: {}", .0.code(), .0.message())]
    Failed(Status),
    /// No replica address is known: the name has not resolved yet (or ever).
    #[error("no Recommendations replica is known (the address does not resolve)")]
    NoReplicas,
}

/// The connection to Recommendations cannot be configured: a bad address (only possible with
/// one that slipped past the settings' checks) or a TLS file that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The URI is not valid.
    #[error("invalid Recommendations address {uri:?}: {source}")]
    Address {
        /// The URI.
        uri: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// A TLS file cannot be read.
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    /// The TLS configuration is not usable (for example a malformed certificate).
    #[error("invalid TLS configuration for Recommendations: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// The client side of TLS from `recommendations.tls`, with its files read now.
fn client_tls(settings: &RecommendationsSettings) -> Result<Option<ClientTlsConfig>, ChannelError> {
    let tls = &settings.tls;
    let Some(ca) = &tls.ca_path else {
        return Ok(None);
    };
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(tls::read(
            "recommendations.tls.ca_path",
            ca,
        )?))
        .domain_name(settings.tls_server_name());
    if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
        config = config.identity(Identity::from_pem(
            tls::read("recommendations.tls.cert_path", cert)?,
            tls::read("recommendations.tls.key_path", key)?,
        ));
    }
    Ok(Some(config))
}

/// How a connection to one replica is made: TLS when configured, connect timeout, TCP_NODELAY,
/// keepalive. The one place connections are configured.
fn endpoint(
    settings: &RecommendationsSettings,
    tls: Option<&ClientTlsConfig>,
    addr: SocketAddr,
) -> Result<Endpoint, ChannelError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{addr}");
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .and_then(|e| e.user_agent(concat!("bookshop-marketplace/", env!("CARGO_PKG_VERSION"))))
        .map_err(|source| ChannelError::Address { uri, source })?;
    if let Some(tls) = tls {
        // Replicas are dialled by address; the certificate is checked against the configured
        // name (`recommendations.tls.server_name`, else `recommendations.host`).
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(ChannelError::Tls)?;
    }
    Ok(endpoint
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        // A dead connection (a vanished pod, a dropped NAT entry) is noticed without waiting for
        // a call to fail. While calls are in flight, HTTP/2 pings. While the connection is idle,
        // TCP keepalive probes, which the peer's kernel answers: gRPC's C core and Go servers
        // count HTTP/2 pings on a connection without calls as abuse (`permit_without_calls` is
        // off by default) and close it with GOAWAY "too_many_pings" after a few.
        .http2_keep_alive_interval(settings.keepalive)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .tcp_keepalive(Some(settings.keepalive))
        .tcp_keepalive_interval(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive_retries(Some(KEEPALIVE_PROBES)))
}

/// Makes the lazily connected channel of each replica: nothing is dialled until a call needs
/// it, so the Marketplace starts and serves while Recommendations is down, and after a failure
/// the next call dials again.
fn make_channel(settings: &RecommendationsSettings) -> Result<MakeChannel, ChannelError> {
    let tls = client_tls(settings)?;
    // Check the configuration once, so the factory itself cannot fail.
    endpoint(
        settings,
        tls.as_ref(),
        SocketAddr::from(([127, 0, 0, 1], settings.port)),
    )?;
    let settings = settings.clone();
    Ok(Arc::new(move |addr| {
        match endpoint(&settings, tls.as_ref(), addr) {
            Ok(endpoint) => endpoint.connect_lazy(),
            // Unreachable after the check above: a SocketAddr always makes a valid URI.
            Err(_) => Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        }
    }))
}

/// The Marketplace's handle on Recommendations: the replica pool and the call deadline. Cheap to
/// clone; each call borrows a replica's channel, not a new connection.
#[derive(Debug, Clone)]
pub struct RecommendationsGateway {
    pool: ReplicaPool,
    deadline: Duration,
    metrics: Arc<Metrics>,
}

impl RecommendationsGateway {
    /// A gateway over the replicas that `recommendations.host` (or `.addresses`) resolves to,
    /// re-resolved every `recommendations.resolve_interval_ms`, counting its calls in
    /// `metrics`. Must be called within a Tokio runtime (resolution runs in the background).
    pub fn new(
        settings: &RecommendationsSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ChannelError> {
        let resolver = DnsResolver::new(settings.targets());
        Self::with_resolver(settings, Box::new(resolver), metrics)
    }

    /// A gateway whose replicas come from `resolver` (tests change the replica set with it).
    pub fn with_resolver(
        settings: &RecommendationsSettings,
        resolver: Box<dyn Resolve>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ChannelError> {
        Ok(RecommendationsGateway {
            pool: ReplicaPool::new(resolver, make_channel(settings)?, settings.resolve_interval),
            deadline: settings.timeout,
            metrics,
        })
    }

    /// The replica pool (for the metrics and tests).
    pub fn pool(&self) -> &ReplicaPool {
        &self.pool
    }

    /// Asks for books: by category key (`Catalog/Recommend`) from a server that speaks the
    /// catalog's API, with the seed's `Recommend` from one that only speaks the seed's. While
    /// that is not known yet (`Source::Pending`, the first moments after start), the seed's
    /// categories are asked for the seed's way, which every server answers, and any other by
    /// key. Failures other than `NOT_FOUND` are logged here, with their cause; callers only
    /// decide what the visitor sees.
    pub async fn recommend(
        &self,
        query: &BookQuery,
        source: Source,
    ) -> Result<Recommended, GatewayError> {
        let seed_category = BookCategory::from_key(&query.category);
        let result = match (source, seed_category) {
            (Source::Catalog, _) | (Source::Pending, None) => self.recommend_by_key(query).await,
            (Source::Seed | Source::Pending, Some(category)) => {
                self.recommend_seed(query, category).await
            }
            // The seed's API has no other category.
            (Source::Seed, None) => Err(GatewayError::NotFound),
        };
        match result {
            // `UNIMPLEMENTED`: a seed's server, which has no category but the seed's.
            Err(GatewayError::Failed(status))
                if matches!(status.code(), Code::NotFound | Code::Unimplemented) =>
            {
                Err(GatewayError::NotFound)
            }
            Err(error) => {
                tracing::warn!(
                    category = &*query.category,
                    user_id = query.user_id,
                    code = code_name(&error),
                    deadline_ms = millis(self.deadline),
                    error = %error_chain(&error),
                    "Recommendations call failed"
                );
                Err(error)
            }
            ok => ok,
        }
    }

    async fn recommend_by_key(&self, query: &BookQuery) -> Result<Recommended, GatewayError> {
        let message = RecommendRequest {
            user_id: query.user_id,
            category: query.category.to_string(),
            max_results: i32::try_from(query.max_results).unwrap_or(i32::MAX),
        };
        let response = self
            .call(CATALOG_RECOMMEND, |channel, request| {
                let message = message.clone();
                async move {
                    let mut client = CatalogClient::new(channel);
                    client.recommend(request.map(|()| message)).await
                }
            })
            .await?;
        Ok(Recommended {
            books: response
                .books
                .into_iter()
                .map(|b| Book::new(b.id, b.title, b.author))
                .collect(),
            version: Some(plain_version(response.version)),
        })
    }

    /// The seed's `Recommend`, for one of the seed's categories.
    async fn recommend_seed(
        &self,
        query: &BookQuery,
        category: BookCategory,
    ) -> Result<Recommended, GatewayError> {
        let message = RecommendationRequest {
            user_id: query.user_id,
            category: category as i32,
            max_results: i32::try_from(query.max_results).unwrap_or(i32::MAX),
        };
        let response = self
            .call(RECOMMEND, |channel, request| async move {
                let mut client = RecommendationsClient::new(channel);
                client.recommend(request.map(|()| message)).await
            })
            .await?;
        Ok(Recommended {
            books: response
                .recommendations
                .into_iter()
                .map(|b| Book::new(b.id, b.title, b.author))
                .collect(),
            version: None,
        })
    }

    /// The categories of the catalog, asked of the replica behind `channel` (the one whose
    /// version stream told of the change, so the list is of that version).
    pub async fn list_categories(
        &self,
        channel: Channel,
    ) -> Result<ListCategoriesResponse, GatewayError> {
        let mut request = Request::new(ListCategoriesRequest {});
        request.set_timeout(self.deadline);
        let started = Instant::now();
        let result = guarded(
            self.deadline,
            CatalogClient::new(channel).list_categories(request),
        )
        .await;
        let code = result.as_ref().map_or_else(code_name, |_| "OK");
        self.metrics
            .observe_call(LIST_CATEGORIES, code, started.elapsed().as_secs_f64());
        result.map(tonic::Response::into_inner)
    }

    /// Opens the catalog's version stream (`CatalogEvents/Watch`) on a replica: its channel (for
    /// [`list_categories`](Self::list_categories)) and the stream, whose first message is the
    /// version in service. Only the opening is under the deadline; the stream lasts as long as
    /// the replica does.
    pub async fn watch_catalog(
        &self,
    ) -> Result<(Channel, Streaming<CatalogVersion>), GatewayError> {
        let attempt = self
            .pool
            .attempt(None, self.deadline)
            .await
            .ok_or(GatewayError::NoReplicas)?;
        let channel = attempt.replica().channel();
        let opened = guarded(
            self.deadline,
            CatalogEventsClient::new(channel.clone()).watch(WatchRequest {}),
        )
        .await;
        match opened {
            Ok(response) => {
                attempt.succeeded();
                Ok((channel, response.into_inner()))
            }
            Err(error) => {
                report(&attempt, &error);
                Err(error)
            }
        }
    }

    /// Whether a replica of Recommendations answers its health check with `SERVING` within
    /// the deadline. A server without a health service (`UNIMPLEMENTED`, such as the seed's
    /// Python Recommendations) answered, so it counts as ready.
    pub async fn ready(&self) -> bool {
        let result = self
            .call(HEALTH_CHECK, |channel, request| async move {
                let check = HealthCheckRequest {
                    service: SERVICE_NAME.to_owned(),
                };
                HealthClient::new(channel)
                    .check(request.map(|()| check))
                    .await
            })
            .await;
        match result {
            Ok(response) => response.status() == ServingStatus::Serving,
            Err(GatewayError::Failed(status)) => status.code() == Code::Unimplemented,
            Err(_) => false,
        }
    }

    /// The one way a call goes out: a replica from the pool, the deadline that is left sent as
    /// `grpc-timeout` and kept by a guard, the request id passed on, the attempt counted and
    /// reported to the pool. A call that could not reach its replica (`UNAVAILABLE`) is tried
    /// once more on another replica within what is left of the deadline.
    async fn call<T, F>(
        &self,
        method: GrpcMethod,
        mut send: impl FnMut(Channel, Request<()>) -> F,
    ) -> Result<T, GatewayError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut excluded = None;
        let mut outcome = Err(GatewayError::NoReplicas);
        for try_number in 1..=MAX_TRIES {
            let left = self.deadline.saturating_sub(started.elapsed());
            let Some(attempt) = self.pool.attempt(excluded, left).await else {
                break;
            };
            // Choosing a replica may have waited for name resolution: what it took is spent.
            let left = self.deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                outcome = Err(GatewayError::TimedOut(self.deadline));
                break;
            }
            let span = attempt_span(method, try_number, attempt.replica().addr());
            let mut request = Request::new(());
            request.set_timeout(left);
            pass_context(&mut request, &span);
            let attempt_started = Instant::now();
            let result = guarded(left, send(attempt.replica().channel(), request))
                .instrument(span.clone())
                .await;
            let code = result.as_ref().map_or_else(code_name, |_| "OK");
            span.record("rpc.grpc.status_code", code);
            if code != "OK" {
                span.record("otel.status_code", "error");
            }
            let elapsed = attempt_started.elapsed();
            self.metrics
                .observe_call(method, code, elapsed.as_secs_f64());
            let error = match result {
                Ok(response) => {
                    attempt.succeeded();
                    return Ok(response.into_inner());
                }
                Err(error) => error,
            };
            report(&attempt, &error);
            let retry = unreached(&error) && try_number < MAX_TRIES && self.pool.len() > 1;
            tracing::debug!(
                replica = %attempt.replica().addr(),
                method = method.method,
                code,
                elapsed_ms = millis(elapsed),
                retry,
                error = %error_chain(&error),
                "attempt failed"
            );
            excluded = Some(attempt.replica().addr());
            outcome = Err(error);
            if !retry {
                break;
            }
            self.metrics.observe_retry();
        }
        outcome
    }
}

/// The client span of one attempt of a call, while traces are on (else no span at all): its
/// method, its try (a retry is a second span beside the first, under the same parent), the
/// replica it went to and the code it got.
fn attempt_span(method: GrpcMethod, try_number: u32, replica: SocketAddr) -> tracing::Span {
    if !telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "call",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "client",
        otel.name = format_args!("{}/{}", method.service, method.method),
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = method.service,
        rpc.method = method.method,
        rpc.grpc.status_code = tracing::field::Empty,
        server.address = %replica,
        // As i64: OpenTelemetry's integer attributes (a u32 would be recorded as text).
        try_number = i64::from(try_number),
    );
    telemetry::record_ids(&span);
    span
}

/// Adds the current request's id and trace context to a call's metadata, so Recommendations
/// logs them: with traces on, the context of the attempt's `span` (so Recommendations' span is
/// its child), else the client's own `traceparent`, passed through.
fn pass_context<T>(request: &mut Request<T>, span: &tracing::Span) {
    request_id::with_current(|context| {
        let metadata = request.metadata_mut();
        // Both were checked to be visible ASCII: always valid metadata.
        if let Ok(id) = context.request_id.parse() {
            metadata.insert("x-request-id", id);
        }
        if telemetry::enabled() {
            return;
        }
        if let Some(Ok(traceparent)) = context.traceparent.as_deref().map(str::parse) {
            metadata.insert("traceparent", traceparent);
        }
    });
    telemetry::inject(span, |key, value| {
        let key = MetadataKey::from_bytes(key.as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            request.metadata_mut().insert(key, value);
        }
    });
}

/// Tries per call: the first, and one retry on another replica.
const MAX_TRIES: u32 = 2;

/// The call never reached the service (refused, reset, GOAWAY, not ready): safe to retry
/// elsewhere.
fn unreached(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Failed(status) if status.code() == Code::Unavailable)
}

/// Tells the pool how the attempt went: unreachable or out of time means the replica is
/// unhealthy; any other answer (even an error status) means it answered.
fn report(attempt: &Attempt, error: &GatewayError) {
    let unhealthy = match error {
        GatewayError::Failed(status) => matches!(
            status.code(),
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded
        ),
        GatewayError::TimedOut(_) => true,
        GatewayError::NotFound | GatewayError::NoReplicas => false,
    };
    if unhealthy {
        attempt.failed();
    } else {
        attempt.succeeded();
    }
}

/// The name of an outcome, for metrics labels and logs: a gRPC code (`UNAVAILABLE`, …),
/// `CLIENT_TIMEOUT` when our own guard gave up, `NO_REPLICAS`.
fn code_name(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::Failed(status) => bookshop_proto::code_name(status.code()),
        GatewayError::TimedOut(_) => "CLIENT_TIMEOUT",
        GatewayError::NotFound => "NOT_FOUND",
        GatewayError::NoReplicas => "NO_REPLICAS",
    }
}

/// Runs a call under the client-side guard (`limit` + [`GUARD_MARGIN`]).
async fn guarded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, GatewayError> {
    let limit = limit + GUARD_MARGIN;
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(status)) => Err(GatewayError::Failed(status)),
        Err(_) => Err(GatewayError::TimedOut(limit)),
    }
}

/// The error and what caused it, `: `-separated ("… tcp connect error: Connection refused").
fn error_chain(error: &GatewayError) -> String {
    let mut text = error.to_string();
    let mut source = match error {
        GatewayError::Failed(status) => std::error::Error::source(status),
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
