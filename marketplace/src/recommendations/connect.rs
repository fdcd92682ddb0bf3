//! How a connection to a replica is made: the one place for TLS, timeouts and keepalive.

use std::{net::SocketAddr, time::Duration};

use bookshop_common::tls::{self, TlsFileError};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::settings::RecommendationsSettings;

/// How long an HTTP/2 ping may go unanswered, and the gap between TCP keepalive probes.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    #[error("invalid TLS configuration for Recommendations: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// A replica's channel, lazily connected: we serve while Recommendations is down; calls redial.
pub(super) fn channels(
    settings: &RecommendationsSettings,
) -> Result<impl Fn(SocketAddr) -> Channel + Send + Sync + 'static, ChannelError> {
    let (tls, settings) = (client_tls(settings)?, settings.clone());
    // Checked once, so that making a replica's channel cannot fail.
    endpoint(&settings, tls.as_ref(), SocketAddr::from(([127, 0, 0, 1], settings.port)))?;
    Ok(move |addr| match endpoint(&settings, tls.as_ref(), addr) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(_) => Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
    })
}

/// TLS from `recommendations.tls`, its files read now.
fn client_tls(settings: &RecommendationsSettings) -> Result<Option<ClientTlsConfig>, ChannelError> {
    let tls = &settings.tls;
    let Some(ca) = &tls.ca_path else { return Ok(None) };
    let ca = Certificate::from_pem(tls::read("recommendations.tls.ca_path", ca)?);
    let name = tls.server_name.clone().unwrap_or_else(|| settings.host.clone());
    let mut config = ClientTlsConfig::new().ca_certificate(ca).domain_name(name);
    if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
        let cert = tls::read("recommendations.tls.cert_path", cert)?;
        let key = tls::read("recommendations.tls.key_path", key)?;
        config = config.identity(Identity::from_pem(cert, key));
    }
    Ok(Some(config))
}

/// Replicas are dialled by address; with TLS, the certificate is checked against the name.
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
    // Pings only with calls in flight, TCP keepalive when idle: servers GOAWAY pings without calls.
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
