//! `recommendations healthcheck`: is the server's `grpc.health.v1` SERVING (images have no curl).

use std::time::Duration;

use bookshop_common::{net::HostPort, settings::SettingsError};
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::settings::Settings;

/// Asks `addr`, or the local server (its health listener if any), for the whole server's status.
pub async fn run(
    addr: Option<HostPort>,
    settings: &Result<Settings, SettingsError>,
    timeout: Duration,
) -> Result<String, String> {
    let addr = match (addr, settings) {
        (Some(addr), _) => addr.to_string(),
        (None, Ok(s)) if s.tls.enabled() && s.server.health_port.is_none() => {
            let hint = "TLS is on; set server.health_port (a plaintext health-only listener) and the check uses it";
            return Err(format!("recommendations healthcheck: {hint}"));
        }
        (None, Ok(s)) => format!("127.0.0.1:{}", s.server.health_port.unwrap_or(s.server.port)),
        (None, Err(_)) => "127.0.0.1:50051".into(),
    };
    let status = async {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"));
        let endpoint = endpoint.map_err(|e| format!("invalid address: {e}"))?;
        let channel = endpoint.connect_timeout(timeout).timeout(timeout).connect().await;
        let channel = channel.map_err(|e| format!("cannot connect: {e}"))?;
        let check = HealthClient::new(channel).check(HealthCheckRequest::default()).await;
        let response = check.map_err(|e| format!("health check failed: {e}"))?;
        Ok::<_, String>(response.into_inner().status())
    };
    match status.await {
        Ok(ServingStatus::Serving) => Ok(format!("{addr}: SERVING")),
        Ok(status) => Err(format!("{addr}: {}", status.as_str_name())),
        Err(error) => Err(format!("{addr}: {error}")),
    }
}
