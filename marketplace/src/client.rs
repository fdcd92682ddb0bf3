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

use bookshop_proto::{
    RecommendationRequest, SERVICE_NAME, recommendations_client::RecommendationsClient,
};
use serde::Serialize;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    balance::{Attempt, DnsResolver, MakeChannel, ReplicaPool, Resolve},
    observe::{self, Metrics},
    params::BookQuery,
    settings::RecommendationsSettings,
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
    #[error("cannot read {key} {path}: {source}")]
    TlsFile {
        /// The setting that names it.
        key: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration is not usable (for example a malformed certificate).
    #[error("invalid TLS configuration for Recommendations: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// The client side of TLS, from `recommendations.tls`, with its files read once.
#[derive(Debug, Clone)]
struct ClientTls {
    config: ClientTlsConfig,
}

impl ClientTls {
    fn load(settings: &RecommendationsSettings) -> Result<Option<ClientTls>, ChannelError> {
        let tls = &settings.tls;
        let Some(ca) = &tls.ca_path else {
            return Ok(None);
        };
        let read = |key: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ChannelError::TlsFile {
                key,
                path: path.display().to_string(),
                source,
            })
        };
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(
                "recommendations.tls.ca_path",
                ca,
            )?))
            .domain_name(settings.tls_server_name());
        if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
            config = config.identity(Identity::from_pem(
                read("recommendations.tls.cert_path", cert)?,
                read("recommendations.tls.key_path", key)?,
            ));
        }
        Ok(Some(ClientTls { config }))
    }
}

/// How a connection to one replica is made: TLS when configured, connect timeout, TCP_NODELAY,
/// keepalive. The one place connections are configured.
fn endpoint(
    settings: &RecommendationsSettings,
    tls: Option<&ClientTls>,
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
            .tls_config(tls.config.clone())
            .map_err(ChannelError::Tls)?;
    }
    Ok(endpoint
        .connect_timeout(settings.connect_timeout())
        .tcp_nodelay(true)
        // A dead connection (a vanished pod, a dropped NAT entry) is noticed without waiting for
        // a call to fail. While calls are in flight, HTTP/2 pings. While the connection is idle,
        // TCP keepalive probes, which the peer's kernel answers: gRPC's C core and Go servers
        // count HTTP/2 pings on a connection without calls as abuse (`permit_without_calls` is
        // off by default) and close it with GOAWAY "too_many_pings" after a few.
        .http2_keep_alive_interval(settings.keepalive())
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .tcp_keepalive(Some(settings.keepalive()))
        .tcp_keepalive_interval(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive_retries(Some(KEEPALIVE_PROBES)))
}

/// Makes the lazily connected channel of each replica: nothing is dialled until a call needs
/// it, so the Marketplace starts and serves while Recommendations is down, and after a failure
/// the next call dials again.
fn make_channel(settings: &RecommendationsSettings) -> Result<MakeChannel, ChannelError> {
    let tls = ClientTls::load(settings)?;
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
    /// The whole deadline in `grpc-timeout`'s milliseconds and as the header value (what nearly
    /// every first attempt sends), made once.
    deadline_header: (u64, MetadataValue<Ascii>),
    metrics: Arc<Metrics>,
}

impl RecommendationsGateway {
    /// A gateway over the replicas that `recommendations.host` (or `.addresses`) resolves to,
    /// re-resolved every `recommendations.resolve_interval_ms`. Must be called within a Tokio
    /// runtime (resolution runs in the background).
    pub fn new(settings: &RecommendationsSettings) -> Result<Self, ChannelError> {
        Self::with_resolver(settings, Box::new(DnsResolver::new(settings.targets())))
    }

    /// A gateway whose replicas come from `resolver` (tests change the replica set with it).
    pub fn with_resolver(
        settings: &RecommendationsSettings,
        resolver: Box<dyn Resolve>,
    ) -> Result<Self, ChannelError> {
        Ok(RecommendationsGateway {
            pool: ReplicaPool::new(
                resolver,
                make_channel(settings)?,
                settings.resolve_interval(),
            ),
            deadline: settings.timeout(),
            deadline_header: {
                let ms = call_timeout_ms(settings.timeout());
                (ms, grpc_timeout(ms))
            },
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// The deadline of one call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The replica pool (for logs and tests).
    pub fn pool(&self) -> &ReplicaPool {
        &self.pool
    }

    /// The process's metrics; the gateway counts its calls there.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks for books. A call that could not reach its replica (`UNAVAILABLE`) is retried once
    /// on another replica within what is left of the deadline. Failures other than `NOT_FOUND`
    /// are logged here, with their cause; callers only decide what the visitor sees.
    pub async fn recommend(&self, query: &BookQuery) -> Result<Vec<Book>, GatewayError> {
        let message = RecommendationRequest {
            user_id: query.user_id,
            category: query.category as i32,
            max_results: i32::try_from(query.max_results).unwrap_or(i32::MAX),
        };
        let started = Instant::now();
        let mut excluded = None;
        let mut last_error = None;
        for try_number in 1..=MAX_TRIES {
            let remaining = self.deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let Some(attempt) = self.pool.attempt(excluded, remaining).await else {
                break;
            };
            let replica = attempt.replica().addr();
            let mut request = Request::new(message);
            self.set_deadline(&mut request, remaining);
            pass_context(&mut request);
            let mut client = RecommendationsClient::new(attempt.replica().channel());
            let attempt_started = Instant::now();
            let result = guarded(remaining, client.recommend(request)).await;
            self.metrics.observe_call(
                SERVICE_NAME,
                observe::RECOMMEND,
                metric_code(&result),
                attempt_started.elapsed().as_secs_f64(),
            );
            let elapsed_ms = millis(started.elapsed());
            let error = match result {
                Ok(response) => {
                    attempt.succeeded();
                    tracing::debug!(
                        %replica,
                        category = query.category.key(),
                        books = response.get_ref().recommendations.len(),
                        elapsed_ms,
                        "Recommendations answered"
                    );
                    return Ok(response
                        .into_inner()
                        .recommendations
                        .into_iter()
                        .map(|b| Book {
                            id: b.id,
                            title: b.title,
                            author: Some(b.author).filter(|a| !a.trim().is_empty()),
                        })
                        .collect());
                }
                Err(GatewayError::Failed(status)) if status.code() == Code::NotFound => {
                    attempt.succeeded();
                    tracing::debug!(
                        %replica,
                        category = query.category.key(),
                        message = status.message(),
                        "no books in the category"
                    );
                    return Err(GatewayError::NotFound);
                }
                Err(error) => error,
            };
            let retry = unreached(&error) && try_number < MAX_TRIES && self.pool.len() > 1;
            report(&attempt, &error);
            tracing::warn!(
                %replica,
                category = query.category.key(),
                user_id = query.user_id,
                code = code_name(&error),
                elapsed_ms,
                deadline_ms = millis(self.deadline),
                retry,
                error = %error_chain(&error),
                "Recommendations call failed"
            );
            last_error = Some(error);
            if !retry {
                break;
            }
            self.metrics.observe_retry();
            excluded = Some(replica);
        }
        match last_error {
            Some(error) => Err(error),
            None => {
                tracing::warn!(
                    category = query.category.key(),
                    "no Recommendations replica to call (the address does not resolve)"
                );
                Err(GatewayError::NoReplicas)
            }
        }
    }

    /// Sends `remaining` as the call's deadline (see [`call_timeout_ms`]).
    fn set_deadline<T>(&self, request: &mut Request<T>, remaining: Duration) {
        let ms = call_timeout_ms(remaining);
        let value = if ms == self.deadline_header.0 {
            self.deadline_header.1.clone()
        } else {
            grpc_timeout(ms)
        };
        request.metadata_mut().insert(GRPC_TIMEOUT, value);
    }

    /// Whether a replica of Recommendations answers its health check with `SERVING`, within
    /// the deadline (a second replica is asked if the first cannot be reached).
    ///
    /// A server without a health service (`UNIMPLEMENTED`, such as the seed's Python
    /// Recommendations) answered, so it counts as ready.
    pub async fn ready(&self) -> bool {
        let started = Instant::now();
        let mut excluded = None;
        for _ in 1..=MAX_TRIES {
            let remaining = self.deadline.saturating_sub(started.elapsed());
            let Some(attempt) = self.pool.attempt(excluded, remaining).await else {
                return false;
            };
            let mut request = Request::new(HealthCheckRequest {
                service: SERVICE_NAME.to_owned(),
            });
            self.set_deadline(&mut request, remaining);
            pass_context(&mut request);
            let mut health = HealthClient::new(attempt.replica().channel());
            let attempt_started = Instant::now();
            let result = guarded(remaining, health.check(request)).await;
            self.metrics.observe_call(
                "grpc.health.v1.Health",
                "Check",
                metric_code(&result),
                attempt_started.elapsed().as_secs_f64(),
            );
            match result {
                Ok(response) => {
                    attempt.succeeded();
                    let status = response.into_inner().status();
                    if status != ServingStatus::Serving {
                        tracing::debug!(
                            status = status.as_str_name(),
                            "Recommendations not serving"
                        );
                    }
                    return status == ServingStatus::Serving;
                }
                Err(GatewayError::Failed(status)) if status.code() == Code::Unimplemented => {
                    attempt.succeeded();
                    return true;
                }
                Err(error) => {
                    report(&attempt, &error);
                    tracing::debug!(
                        replica = %attempt.replica().addr(),
                        error = %error_chain(&error),
                        "Recommendations not ready"
                    );
                    if !unreached(&error) {
                        return false;
                    }
                    excluded = Some(attempt.replica().addr());
                }
            }
        }
        false
    }
}

/// Adds the current request's id (and `traceparent`) to a call's metadata, so Recommendations
/// logs it. The values were made once for the request (see [`observe::RequestContext`]); each
/// attempt shares them.
fn pass_context<T>(request: &mut Request<T>) {
    observe::with_current(|context| {
        let metadata = request.metadata_mut();
        metadata.insert("x-request-id", context.request_id.clone());
        if let Some(traceparent) = &context.traceparent {
            metadata.insert("traceparent", traceparent.clone());
        }
    });
}

/// The deadline header of gRPC (tonic's `Request::set_timeout` writes the same header).
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The time left for an attempt as the call's deadline, in whole milliseconds: rounded, at least
/// one, at most the 8 digits gRPC allows (27 hours). tonic's `set_timeout` would send
/// microseconds, a value different on every call, which HTTP/2 can never send from its header
/// table; whole milliseconds make every first attempt send the same value (the configured
/// timeout), which after the first call costs one byte.
fn call_timeout_ms(remaining: Duration) -> u64 {
    let millis = (remaining.as_micros() + 500) / 1000;
    u64::try_from(millis)
        .unwrap_or(u64::MAX)
        .clamp(1, 99_999_999)
}

/// `grpc-timeout` for `ms` milliseconds: `<ms>m`.
fn grpc_timeout(ms: u64) -> MetadataValue<Ascii> {
    // Digits and a letter: always a valid value.
    MetadataValue::try_from(format!("{ms}m")).unwrap_or_else(|_| MetadataValue::from_static("1m"))
}

/// The name of an attempt's outcome, for metrics labels and logs: a gRPC code (`OK`,
/// `UNAVAILABLE`, …), `CLIENT_TIMEOUT` when our own guard gave up, `NO_REPLICAS`.
fn metric_code<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(error) => code_name(error),
    }
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

/// Whole milliseconds, as a number log collectors can compare (`u128` would be logged as text).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_deadlines_are_whole_milliseconds() {
        let us = Duration::from_micros;
        assert_eq!(call_timeout_ms(Duration::from_millis(1000) - us(3)), 1000);
        assert_eq!(call_timeout_ms(Duration::from_millis(1000) - us(700)), 999);
        assert_eq!(call_timeout_ms(us(200)), 1, "never zero");
        assert_eq!(call_timeout_ms(Duration::ZERO), 1);
        assert_eq!(call_timeout_ms(Duration::from_secs(200_000)), 99_999_999);
        assert_eq!(grpc_timeout(250).to_str().ok(), Some("250m"));
    }
}
