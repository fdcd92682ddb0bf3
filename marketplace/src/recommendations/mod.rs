//! Calls to Recommendations: a deadline sent and guarded, balanced, retried elsewhere, observed.

pub mod balance;
mod connect;

use std::time::{Duration, Instant};
use std::{error::Error, net::SocketAddr, sync::Arc};

use bookshop_common::{millis, telemetry};
use bookshop_proto::catalog::catalog_client::CatalogClient;
use bookshop_proto::catalog::catalog_events_client::CatalogEventsClient;
use bookshop_proto::catalog::{CatalogVersion, ListCategoriesRequest, ListCategoriesResponse};
use bookshop_proto::catalog::{RecommendRequest, WatchRequest};
use bookshop_proto::recommendations_client::RecommendationsClient;
use bookshop_proto::{BookCategory, RecommendationRequest, SERVICE_NAME};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming, metadata::MetadataKey};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing::{Instrument, Span, field::Empty};

use crate::categories::{Api, plain_version};
use crate::i18n::Lang;
use crate::{book::Book, metrics::Method, metrics::Metrics, settings::RecommendationsSettings};
use balance::{Balancer, DnsResolver, Pool, Resolve};
pub use connect::ChannelError;

/// Over the deadline sent, so the server's `DEADLINE_EXCEEDED` wins; the guard ends queued calls.
pub const GUARD_MARGIN: Duration = Duration::from_millis(200);

const CATALOG: &str = "bookshop.catalog.v1.Catalog";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub category: Arc<str>,
    pub max_results: u32,
    pub user_id: i32,
    /// Titles and authors in it where the catalog gives them.
    pub lang: Lang,
    /// Books to answer first while the category has them.
    pub keep: Vec<i32>,
}

/// Who asks: the page's request id and `traceparent`, passed on for Recommendations' logs.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub request_id: String,
    pub traceparent: Option<String>,
}

/// Books, and the catalog version they came from (`None` from a tutorial's server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommended {
    pub books: Vec<Book>,
    pub version: Option<String>,
}

pub type CallResult<T> = Result<T, CallError>;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no books in this category")]
    NotFound,
    #[error("no answer from Recommendations within {0:?}")]
    TimedOut(Duration),
    /// Unreachable (`UNAVAILABLE`), out of time (`CANCELLED`, `DEADLINE_EXCEEDED`), or failed.
    #[error("Recommendations failed with {:?}: {}", .0.code(), .0.message())]
    Failed(#[source] Status),
    #[error("no Recommendations replica is known (the address does not resolve)")]
    NoReplicas,
}

impl CallError {
    /// For metrics and logs: a gRPC code's name, `CLIENT_TIMEOUT` (our guard) or `NO_REPLICAS`.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Failed(status) => bookshop_proto::code_name(status.code()),
            CallError::TimedOut(_) => "CLIENT_TIMEOUT",
            CallError::NotFound => "NOT_FOUND",
            CallError::NoReplicas => "NO_REPLICAS",
        }
    }
}

fn code_of<T>(result: &CallResult<T>) -> &'static str {
    result.as_ref().map_or_else(CallError::code, |_| "OK")
}

#[derive(Debug, Clone)]
pub struct Client {
    pub pool: Pool,
    deadline: Duration,
    metrics: Arc<Metrics>,
}

impl Client {
    /// Over what `recommendations.host` (or `.addresses`) resolves to; within the runtime.
    pub fn new(
        settings: &RecommendationsSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Client, ChannelError> {
        Self::with_resolver(settings, Box::new(DnsResolver(settings.targets())), metrics)
    }

    pub fn with_resolver(
        settings: &RecommendationsSettings,
        resolver: Box<dyn Resolve>,
        metrics: Arc<Metrics>,
    ) -> Result<Client, ChannelError> {
        let pool = Pool::new(resolver, connect::channels(settings)?, settings.resolve_interval);
        Ok(Client { pool, deadline: settings.timeout, metrics })
    }

    /// Failures but `NOT_FOUND` are logged here, with their cause; callers decide what is shown.
    pub async fn recommend(
        &self,
        query: &Query,
        api: Api,
        caller: &Caller,
    ) -> CallResult<Recommended> {
        match self.ask(query, api, caller).await {
            // `UNIMPLEMENTED`: a tutorial's server, which has no category but its own.
            Err(CallError::Failed(status))
                if matches!(status.code(), Code::NotFound | Code::Unimplemented) =>
            {
                Err(CallError::NotFound)
            }
            Err(error) => {
                let (category, user_id, code) = (&*query.category, query.user_id, error.code());
                let (deadline_ms, cause) = (millis(self.deadline), &error as &dyn Error);
                let message = "Recommendations call failed";
                tracing::warn!(category, user_id, code, deadline_ms, error = cause, "{message}");
                Err(error)
            }
            ok => ok,
        }
    }

    /// By key, but the tutorial's way from its server and, while the API is unknown, for its keys.
    async fn ask(&self, query: &Query, api: Api, caller: &Caller) -> CallResult<Recommended> {
        let (user_id, category) = (query.user_id, query.category.to_string());
        let max_results = i32::try_from(query.max_results).unwrap_or(i32::MAX);
        match (api, BookCategory::from_key(&category)) {
            (Api::Catalog, _) | (Api::Unknown, None) => {
                let (lang, keep) = (query.lang.tag().to_owned(), query.keep.clone());
                let message = RecommendRequest { user_id, category, max_results, lang, keep };
                let send = |channel, request| async move {
                    CatalogClient::new(channel).recommend(request).await
                };
                let answer = self.call((CATALOG, "Recommend"), caller, message, send).await?;
                let books = answer.books.into_iter().map(|b| Book::new(b.id, b.title, b.author));
                let version = Some(plain_version(answer.version));
                Ok(Recommended { books: books.collect(), version })
            }
            (Api::Tutorial | Api::Unknown, Some(category)) => {
                let message =
                    RecommendationRequest { user_id, category: category as i32, max_results };
                let send = |channel, request| async move {
                    RecommendationsClient::new(channel).recommend(request).await
                };
                let answer = self.call((SERVICE_NAME, "Recommend"), caller, message, send).await?;
                let books = answer.recommendations.into_iter();
                let books = books.map(|b| Book::new(b.id, b.title, b.author)).collect();
                Ok(Recommended { books, version: None })
            }
            // The tutorial's API has no other category.
            (Api::Tutorial, None) => Err(CallError::NotFound),
        }
    }

    /// Whether a replica's health check says `SERVING` in time, or `UNIMPLEMENTED` (a tutorial's).
    pub async fn ready(&self) -> bool {
        let message = HealthCheckRequest { service: SERVICE_NAME.to_owned() };
        let check =
            |channel, request| async move { HealthClient::new(channel).check(request).await };
        let method = ("grpc.health.v1.Health", "Check");
        match self.call(method, &Caller::default(), message, check).await {
            Ok(answer) => answer.status() == ServingStatus::Serving,
            Err(CallError::Failed(status)) => status.code() == Code::Unimplemented,
            Err(_) => false,
        }
    }

    /// The version stream (the one in service first), its replica's channel; only opening is timed.
    pub async fn watch_catalog(&self) -> CallResult<(Channel, Streaming<CatalogVersion>)> {
        let channel = self.pool.pick().ok_or(CallError::NoReplicas)?;
        let mut events = CatalogEventsClient::new(channel.clone());
        let opened = guarded(self.deadline, events.watch(WatchRequest {})).await?;
        Ok((channel, opened.into_inner()))
    }

    /// Each replica known, and the catalog version it serves (`None`: it did not say in time).
    pub async fn versions(&self) -> Vec<(SocketAddr, Option<String>)> {
        let ask = |(addr, channel)| async move {
            let listed = self.list_categories(channel).await.ok();
            (addr, listed.map(|listed| plain_version(listed.version)))
        };
        futures_util::future::join_all(self.pool.channels().into_iter().map(ask)).await
    }

    pub async fn list_categories(&self, channel: Channel) -> CallResult<ListCategoriesResponse> {
        let mut request = Request::new(ListCategoriesRequest {});
        request.set_timeout(self.deadline);
        let started = Instant::now();
        let mut catalog = CatalogClient::new(channel);
        let result = guarded(self.deadline, catalog.list_categories(request)).await;
        let code = code_of(&result);
        self.metrics.calls.observe((CATALOG, "ListCategories"), code, started.elapsed());
        result.map(Response::into_inner)
    }

    /// Deadline sent and kept, ids passed on, counted, traced; `UNAVAILABLE` gets a try elsewhere.
    async fn call<M: Clone, T, F>(
        &self,
        method: Method,
        caller: &Caller,
        message: M,
        send: impl Fn(Balancer, Request<M>) -> F,
    ) -> CallResult<T>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut try_number = 1;
        loop {
            let left = self.deadline.saturating_sub(started.elapsed());
            let span = attempt_span(method, try_number);
            let mut request = Request::new(message.clone());
            request.set_timeout(left);
            pass_on(&mut request, caller, &span);
            let attempt = Instant::now();
            let sent = send(self.pool.service(), request);
            let result = guarded(left, sent).instrument(span.clone()).await;
            let code = code_of(&result);
            span.record("rpc.grpc.status_code", code);
            if code != "OK" {
                span.record("otel.status_code", "error");
            }
            self.metrics.calls.observe(method, code, attempt.elapsed());
            let Err(error) = result else { return result.map(Response::into_inner) };
            let unreached =
                matches!(&error, CallError::Failed(status) if status.code() == Code::Unavailable);
            let retry = unreached && try_number == 1 && self.pool.len() > 1 && !left.is_zero();
            let (elapsed_ms, cause) = (millis(attempt.elapsed()), &error as &dyn Error);
            let method = method.1;
            tracing::debug!(method, code, elapsed_ms, retry, error = cause, "attempt failed");
            if !retry {
                return Err(error);
            }
            self.metrics.retries.inc();
            try_number += 1;
        }
    }
}

/// The client span of one attempt while traces are on: a retry is a second span.
fn attempt_span(method: Method, try_number: i64) -> Span {
    if !telemetry::enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "call",
        trace_id = Empty,
        span_id = Empty,
        otel.kind = "client",
        otel.name = format_args!("{}/{}", method.0, method.1),
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = method.0,
        rpc.method = method.1,
        rpc.grpc.status_code = Empty,
        server.address = Empty,
        try_number,
    );
    telemetry::record_ids(&span);
    span
}

/// The request id, and the attempt's trace context (parent of the server's span), else the page's.
fn pass_on<M>(request: &mut Request<M>, caller: &Caller, span: &Span) {
    let metadata = request.metadata_mut();
    // Both were checked to be visible ASCII: valid metadata.
    if let Ok(id) = caller.request_id.parse() {
        metadata.insert("x-request-id", id);
    }
    if telemetry::enabled() {
        telemetry::inject(span, |key, value| {
            if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), value.parse()) {
                metadata.insert(key, value);
            }
        });
    } else if let Some(Ok(traceparent)) = caller.traceparent.as_deref().map(str::parse) {
        metadata.insert(telemetry::TRACEPARENT, traceparent);
    }
}

/// A call under the guard: `limit` + [`GUARD_MARGIN`].
async fn guarded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> CallResult<T> {
    let limit = limit + GUARD_MARGIN;
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(CallError::Failed),
        Err(_) => Err(CallError::TimedOut(limit)),
    }
}
