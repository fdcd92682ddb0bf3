//! `recommendations healthcheck`: asks a running server's `grpc.health.v1` service whether it
//! is SERVING, for container health checks in images with no shell or curl.

use std::time::Duration;

use bookshop_common::{net::HostPort, settings::SettingsError};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::settings::Settings;

/// The subcommand: asks `addr`, or the local server that `settings` describe (its plaintext
/// health listener if it has one), and says what it answered.
pub async fn run(
    addr: Option<HostPort>,
    settings: &Result<Settings, SettingsError>,
    timeout: Duration,
) -> Result<String, String> {
    let addr = match (addr, settings) {
        (Some(addr), _) => addr.to_string(),
        (None, Ok(s)) if s.tls.enabled() && s.server.health_port.is_none() => {
            return Err(
                "recommendations healthcheck: TLS is on; set server.health_port (a \
                        plaintext health-only listener) and the check uses it"
                    .into(),
            );
        }
        (None, Ok(s)) => format!(
            "127.0.0.1:{}",
            s.server.health_port.unwrap_or(s.server.port)
        ),
        (None, Err(_)) => "127.0.0.1:50051".into(),
    };
    match check(&addr, timeout).await {
        Ok(ServingStatus::Serving) => Ok(format!("{addr}: SERVING")),
        Ok(status) => Err(format!("{addr}: {}", status.as_str_name())),
        Err(error) => Err(format!("{addr}: {error}")),
    }
}

/// Asks `addr` (`host:port`) for the whole server's status (`service = ""`).
pub async fn check(addr: &str, timeout: Duration) -> Result<ServingStatus, HealthcheckError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| HealthcheckError::Address(addr.to_owned(), e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(HealthcheckError::Connect)?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(HealthcheckError::Call)?;
    Ok(response.into_inner().status())
}

/// Why the health check got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// `--addr` is not a usable address.
    #[error("invalid address {0:?}: {1}")]
    Address(String, String),
    /// Nothing answers there.
    #[error("cannot connect: {0}")]
    Connect(tonic::transport::Error),
    /// The health call failed.
    #[error("health check failed: {0}")]
    Call(tonic::Status),
}
