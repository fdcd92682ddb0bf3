//! The way to Recommendations: one lazily connected gRPC channel for the whole process, a
//! deadline on every call, and one error type for everything that can go wrong on the way.
//!
//! [`connect`] is the only place a channel is made, so client-side load balancing
//! (`Channel::balance_channel`) or TLS can later replace it without touching the callers.

use std::time::{Duration, Instant};

use bookshop_proto::{
    RecommendationRequest, SERVICE_NAME, recommendations_client::RecommendationsClient,
};
use serde::Serialize;
use tonic::{
    Code, Request, Status,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{params::BookQuery, settings::RecommendationsSettings};

/// Extra time the client-side guard gives a call beyond the deadline sent to the server, so the
/// server's own `DEADLINE_EXCEEDED` (or tonic's) normally wins and the guard only catches calls
/// that hang before the deadline can start counting (a stuck connection set-up).
pub const GUARD_MARGIN: Duration = Duration::from_millis(200);

/// The HTTP/2 keepalive ping interval: a dead connection (a vanished pod, a dropped NAT entry) is
/// noticed within interval + timeout instead of at the next failed call.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// The endpoint could not be set up (only possible with an address that slipped past the
/// settings' checks).
#[derive(Debug, thiserror::Error)]
#[error("invalid Recommendations address {uri:?}: {source}")]
pub struct AddressError {
    uri: String,
    #[source]
    source: tonic::transport::Error,
}

/// Makes the process's channel to Recommendations. It connects lazily: nothing is dialled until
/// the first call, so the Marketplace starts and serves while Recommendations is down, and after
/// a failure the next call dials again (re-resolving the host name).
pub fn connect(settings: &RecommendationsSettings) -> Result<Channel, AddressError> {
    let uri = settings.uri();
    let endpoint = Endpoint::from_shared(uri.clone())
        .and_then(|e| e.user_agent(concat!("bookshop-marketplace/", env!("CARGO_PKG_VERSION"))))
        .map_err(|source| AddressError { uri, source })?;
    Ok(endpoint
        .connect_timeout(settings.connect_timeout())
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The Marketplace's handle on Recommendations: the generated client and the health client,
/// both on one channel. Cheap to clone; each call clones the clients, not the connection.
#[derive(Debug, Clone)]
pub struct RecommendationsGateway {
    client: RecommendationsClient<Channel>,
    health: HealthClient<Channel>,
    deadline: Duration,
    target: String,
}

impl RecommendationsGateway {
    /// A gateway on a new lazy channel (see [`connect`]).
    pub fn new(settings: &RecommendationsSettings) -> Result<Self, AddressError> {
        Ok(Self::with_channel(
            connect(settings)?,
            settings.timeout(),
            settings.uri(),
        ))
    }

    /// A gateway on an existing channel; `target` only names it in the logs.
    pub fn with_channel(channel: Channel, deadline: Duration, target: String) -> Self {
        RecommendationsGateway {
            client: RecommendationsClient::new(channel.clone()),
            health: HealthClient::new(channel),
            deadline,
            target,
        }
    }

    /// The deadline of one call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Asks for books. Failures other than `NOT_FOUND` are logged here, with their cause;
    /// callers only decide what the visitor sees.
    pub async fn recommend(&self, query: &BookQuery) -> Result<Vec<Book>, GatewayError> {
        let mut request = Request::new(RecommendationRequest {
            user_id: query.user_id,
            category: query.category as i32,
            max_results: i32::try_from(query.max_results).unwrap_or(i32::MAX),
        });
        request.set_timeout(self.deadline);
        let mut client = self.client.clone();
        let started = Instant::now();
        let result = self.guarded(client.recommend(request)).await;
        let elapsed_ms = millis(started.elapsed());
        match result {
            Ok(response) => {
                tracing::debug!(
                    category = query.category.key(),
                    books = response.get_ref().recommendations.len(),
                    elapsed_ms,
                    "Recommendations answered"
                );
                Ok(response
                    .into_inner()
                    .recommendations
                    .into_iter()
                    .map(|b| Book {
                        id: b.id,
                        title: b.title,
                        author: Some(b.author).filter(|a| !a.trim().is_empty()),
                    })
                    .collect())
            }
            Err(GatewayError::Failed(status)) if status.code() == Code::NotFound => {
                tracing::debug!(
                    category = query.category.key(),
                    message = status.message(),
                    "no books in the category"
                );
                Err(GatewayError::NotFound)
            }
            Err(error) => {
                let code = match &error {
                    GatewayError::Failed(status) => format!("{:?}", status.code()),
                    GatewayError::TimedOut(_) => "ClientGuardTimeout".to_owned(),
                    GatewayError::NotFound => "NotFound".to_owned(),
                };
                tracing::warn!(
                    target_uri = %self.target,
                    category = query.category.key(),
                    user_id = query.user_id,
                    code,
                    elapsed_ms,
                    deadline_ms = millis(self.deadline),
                    error = %error_chain(&error),
                    "Recommendations call failed"
                );
                Err(error)
            }
        }
    }

    /// Whether Recommendations answers its health check with `SERVING`, within the deadline.
    ///
    /// A server without a health service (`UNIMPLEMENTED`, such as the seed's Python
    /// Recommendations) answered, so it counts as ready.
    pub async fn ready(&self) -> bool {
        let mut request = Request::new(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        });
        request.set_timeout(self.deadline);
        let mut health = self.health.clone();
        match self.guarded(health.check(request)).await {
            Ok(response) => {
                let status = response.into_inner().status();
                if status != ServingStatus::Serving {
                    tracing::debug!(status = status.as_str_name(), "Recommendations not serving");
                }
                status == ServingStatus::Serving
            }
            Err(GatewayError::Failed(status)) if status.code() == Code::Unimplemented => true,
            Err(error) => {
                tracing::debug!(
                    error = %error_chain(&error),
                    target_uri = %self.target,
                    "Recommendations not ready"
                );
                false
            }
        }
    }

    /// Runs a call under the client-side guard (deadline + [`GUARD_MARGIN`]).
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, GatewayError> {
        let limit = self.deadline + GUARD_MARGIN;
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(status)) => Err(GatewayError::Failed(status)),
            Err(_) => Err(GatewayError::TimedOut(limit)),
        }
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
