//! Building and running the web app: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bookshop_common::{
    net::{BindError, bind},
    serve::App,
};
use salvo::{Server, conn::tcp::TcpAcceptor, fuse::FuseConfig};
use tokio::net::TcpListener;

use crate::{
    client::{ChannelError, RecommendationsGateway},
    follow::follow,
    metrics::Metrics,
    routes::{AppState, service},
    settings::{ENV_PREFIX, Settings},
};

/// Why the Marketplace could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The address cannot be bound (in use, permission, bad host).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The Recommendations endpoint cannot be set up (a TLS file).
    #[error(transparent)]
    Recommendations(#[from] ChannelError),
}

/// The largest request head (request line and headers) read, in bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// A bound, not yet serving, Marketplace.
#[derive(Debug)]
pub struct Application {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    drain: Duration,
    shutdown_timeout: Duration,
    fuse: FuseConfig,
    max_connections: usize,
}

impl Application {
    /// The same, serving on `listener` instead of binding `server.port` (tests bind
    /// `127.0.0.1:0` themselves and hand it over).
    pub fn with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let metrics = Arc::new(Metrics::new());
        let gateway = RecommendationsGateway::new(&settings.recommendations, metrics.clone())?;
        let local_addr = listener.local_addr().map_err(StartError::Serve)?;
        let acceptor = TcpAcceptor::try_from(listener).map_err(StartError::Serve)?;
        Ok(Application {
            acceptor,
            local_addr,
            state: Arc::new(AppState::new(&settings, gateway, metrics)),
            drain: settings.server.drain,
            shutdown_timeout: settings.server.shutdown_timeout,
            fuse: settings.fuse(),
            max_connections: settings.server.max_connections,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl App for Application {
    type Settings = Settings;
    type Error = StartError;

    /// Binds `server.host:server.port` (port 0 picks a free port) and sets up the lazy
    /// channels to Recommendations, which are not dialled until the first request needs them.
    async fn build(settings: Settings) -> Result<Application, StartError> {
        let (host, port) = (&settings.server.host, settings.server.port);
        let listener = bind(host, port, ENV_PREFIX, "server.port").await?;
        Self::with_listener(settings, listener)
    }

    /// Serves until `shutdown` resolves, then stops gracefully: for `server.drain_ms` every
    /// answer closes its connection, then no new connections are accepted and in-flight
    /// requests get `server.shutdown_timeout_ms` to finish.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let mut server = Server::new(self.acceptor)
            .fuse_config(self.fuse)
            .max_connections(self.max_connections);
        // A request head (line and headers) larger than this is refused with 431; our URLs are
        // short, so 16 KiB leaves room for big cookies and nothing more.
        server.http1_mut().max_buf_size(MAX_REQUEST_HEAD_BYTES);
        let handle = server.handle();
        let state = self.state;
        let stopping = state.stopping.clone();
        // One version stream per process keeps the categories current for every page.
        tokio::spawn(follow(
            state.gateway.clone(),
            state.shelves.clone(),
            state.metrics.clone(),
            state.default_category.clone(),
            stopping.clone(),
        ));
        let serving = server.try_serve(service(state));
        tokio::pin!(serving);
        tracing::info!(address = %self.local_addr, "Marketplace listening (HTTP)");

        tokio::select! {
            result = &mut serving => {
                // The server stopped by itself: report why.
                return result.map_err(StartError::Serve);
            }
            () = shutdown => {}
        }

        // Go on serving for a moment, every answer closing its connection, so that requests
        // already on their way over kept-alive connections are answered, not dropped.
        tracing::info!(
            drain_ms = bookshop_common::millis(self.drain),
            grace_ms = bookshop_common::millis(self.shutdown_timeout),
            "stopping: closing connections after their next answer, then finishing in-flight \
             requests"
        );
        // Answers close their connections; event streams end, so browsers reconnect elsewhere.
        stopping.cancel();
        tokio::select! {
            result = &mut serving => return result.map_err(StartError::Serve),
            () = tokio::time::sleep(self.drain) => {}
        }
        handle.stop_graceful(Some(self.shutdown_timeout));
        serving.await.map_err(StartError::Serve)?;
        tracing::info!("Marketplace stopped");
        Ok(())
    }
}
