//! Building and running the web app: bind first, then serve until a stop signal.

use std::{net::SocketAddr, sync::Arc};

use bookshop_common::{millis, net::BindError, net::bind, serve::App};
use salvo::{Server, conn::tcp::TcpAcceptor, fuse::FuseConfig};
use tokio::net::TcpListener;

use crate::categories::{Api, Categories, LiveCategories};
use crate::recommendations::{ChannelError, Client};
use crate::settings::{ENV_PREFIX, RecommendationsSettings, Settings};
use crate::web::{AppState, events::EventStreams, service};
use crate::{follow::follow, metrics::Metrics};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Recommendations(#[from] ChannelError),
}

/// Our URLs are short: this leaves room for big cookies; a larger head is refused with 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// A bound, not yet serving, Marketplace.
#[derive(Debug)]
pub struct Application {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    settings: Settings,
}

impl Application {
    /// Serves on `listener` instead of binding `server.port` (tests bind `127.0.0.1:0`).
    pub fn with_listener(settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        Self::with_client(settings, listener, Client::new)
    }

    /// With the client `connect` makes (tests give it a resolver of their own).
    pub fn with_client(
        settings: Settings,
        listener: TcpListener,
        connect: impl FnOnce(&RecommendationsSettings, Arc<Metrics>) -> Result<Client, ChannelError>,
    ) -> Result<Self, StartError> {
        let (server, metrics) = (&settings.server, Arc::new(Metrics::default()));
        let client = connect(&settings.recommendations, metrics.clone())?;
        let local_addr = listener.local_addr().map_err(StartError::Serve)?;
        let acceptor = TcpAcceptor::try_from(listener).map_err(StartError::Serve)?;
        let state = Arc::new(AppState {
            client,
            categories: LiveCategories::new(Arc::new(Categories::tutorial(Api::Unknown))),
            last_served: Default::default(),
            metrics,
            home: settings.homepage.clone(),
            retry_after_secs: settings.recommendations.retry_after_secs,
            secure_cookies: server.secure_cookies,
            trusted_proxies: server.trusted_proxies.clone(),
            event_streams: EventStreams::new(server.max_event_streams, server.idle_timeout),
            stopping: Default::default(),
        });
        Ok(Application { acceptor, local_addr, state, settings })
    }

    /// With the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

impl App for Application {
    type Settings = Settings;
    type Error = StartError;

    async fn build(settings: Settings) -> Result<Application, StartError> {
        let server = &settings.server;
        let listener = bind(&server.host, server.port, ENV_PREFIX, "server.port").await?;
        Self::with_listener(settings, listener)
    }

    /// Stops gracefully: for `server.drain_ms` every answer closes its connection and event
    /// streams end; then in-flight requests get `server.shutdown_timeout_ms` to finish.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let (config, state) = (&self.settings.server, self.state);
        let fuse = FuseConfig::default()
            .with_http1_header_timeout(config.header_read_timeout)
            .with_connection_idle_timeout(config.idle_timeout)
            .with_write_stall_timeout(config.idle_timeout)
            .with_request_body_timeout(config.header_read_timeout);
        let mut server =
            Server::new(self.acceptor).fuse_config(fuse).max_connections(config.max_connections);
        server.http1_mut().max_buf_size(MAX_REQUEST_HEAD_BYTES);
        let handle = server.handle();
        let (client, live) = (state.client.clone(), state.categories.clone());
        let (metrics, home) = (state.metrics.clone(), state.home.clone());
        tokio::spawn(follow(client, live, metrics, home, state.stopping.clone()));
        let serving = server.try_serve(service(state.clone()));
        tokio::pin!(serving);
        tracing::info!(address = %self.local_addr, "Marketplace listening (HTTP)");

        tokio::select! {
            // The server stopped by itself: report why.
            result = &mut serving => return result.map_err(StartError::Serve),
            () = shutdown => {}
        }
        let (drain_ms, grace_ms) = (millis(config.drain), millis(config.shutdown_timeout));
        let message = "stopping: closing connections after their next answer, \
                       then finishing in-flight requests";
        tracing::info!(drain_ms, grace_ms, "{message}");
        state.stopping.cancel();
        tokio::select! {
            result = &mut serving => return result.map_err(StartError::Serve),
            () = tokio::time::sleep(config.drain) => {}
        }
        handle.stop_graceful(Some(config.shutdown_timeout));
        serving.await.map_err(StartError::Serve)?;
        tracing::info!("Marketplace stopped");
        Ok(())
    }
}
