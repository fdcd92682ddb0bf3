//! Building and running the web app: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc};

use bookshop_common::{
    net::{BindError, bind},
    serve::App,
};
use salvo::{Server, conn::tcp::TcpAcceptor, fuse::FuseConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    categories::{Api, Categories, LiveCategories},
    follow::follow,
    last_served::LastServed,
    metrics::Metrics,
    recommendations::{ChannelError, Client},
    settings::{ENV_PREFIX, Settings},
    web::{AppState, events::EventStreams, service},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A TLS file of the connection to Recommendations.
    #[error(transparent)]
    Recommendations(#[from] ChannelError),
}

/// Our URLs are short: 16 KiB of request line and headers leaves room for big cookies, and a
/// larger head is refused with 431.
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
    /// Serves on `listener` instead of binding `server.port` (tests bind `127.0.0.1:0` and
    /// hand it over).
    pub fn with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let metrics = Arc::new(Metrics::default());
        Self::with_client(
            settings,
            listener,
            |settings| Client::new(settings, metrics.clone()),
            metrics.clone(),
        )
    }

    /// With the client `connect` makes (tests give it a resolver of their own).
    pub fn with_client(
        settings: Settings,
        listener: TcpListener,
        connect: impl FnOnce(&crate::settings::RecommendationsSettings) -> Result<Client, ChannelError>,
        metrics: Arc<Metrics>,
    ) -> Result<Application, StartError> {
        let client = connect(&settings.recommendations)?;
        let local_addr = listener.local_addr().map_err(StartError::Serve)?;
        let acceptor = TcpAcceptor::try_from(listener).map_err(StartError::Serve)?;
        let state = Arc::new(AppState {
            client,
            categories: LiveCategories::new(Arc::new(Categories::tutorial(Api::Unknown))),
            last_served: LastServed::default(),
            metrics,
            home: settings.homepage.clone(),
            retry_after_secs: settings.recommendations.retry_after_secs,
            secure_cookies: settings.server.secure_cookies,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            event_streams: EventStreams::new(settings.server.max_event_streams),
            stopping: CancellationToken::new(),
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

    /// Binds `server.host:server.port`; the channels to Recommendations are not dialled until
    /// the first request needs them.
    async fn build(settings: Settings) -> Result<Application, StartError> {
        let listener =
            bind(&settings.server.host, settings.server.port, ENV_PREFIX, "server.port").await?;
        Self::with_listener(settings, listener)
    }

    /// Serves until `shutdown`, then stops gracefully: for `server.drain_ms` every answer
    /// closes its connection and every event stream ends, then no new connection is accepted
    /// and in-flight requests get `server.shutdown_timeout_ms` to finish.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let server_settings = &self.settings.server;
        let fuse = FuseConfig::default()
            .with_http1_header_timeout(server_settings.header_read_timeout)
            .with_connection_idle_timeout(server_settings.idle_timeout)
            .with_write_stall_timeout(server_settings.idle_timeout)
            .with_request_body_timeout(server_settings.header_read_timeout);
        let mut server = Server::new(self.acceptor)
            .fuse_config(fuse)
            .max_connections(server_settings.max_connections);
        server.http1_mut().max_buf_size(MAX_REQUEST_HEAD_BYTES);
        let handle = server.handle();
        let state = self.state;
        let home = self.settings.homepage.category.as_str().into();
        let following = follow(
            state.client.clone(),
            state.categories.clone(),
            state.metrics.clone(),
            home,
            state.stopping.clone(),
        );
        tokio::spawn(following);
        let serving = server.try_serve(service(state.clone()));
        tokio::pin!(serving);
        tracing::info!(address = %self.local_addr, "Marketplace listening (HTTP)");

        tokio::select! {
            // The server stopped by itself: report why.
            result = &mut serving => return result.map_err(StartError::Serve),
            () = shutdown => {}
        }
        let (drain, grace) = (server_settings.drain, server_settings.shutdown_timeout);
        let (drain_ms, grace_ms) = (bookshop_common::millis(drain), bookshop_common::millis(grace));
        tracing::info!(
            drain_ms,
            grace_ms,
            "stopping: closing connections after their next answer, then finishing in-flight requests"
        );
        state.stopping.cancel();
        tokio::select! {
            result = &mut serving => return result.map_err(StartError::Serve),
            () = tokio::time::sleep(drain) => {}
        }
        handle.stop_graceful(Some(grace));
        serving.await.map_err(StartError::Serve)?;
        tracing::info!("Marketplace stopped");
        Ok(())
    }
}
