//! Building and running the web app: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use salvo::{Server, conn::tcp::TcpAcceptor, fuse::FuseConfig};
use tokio::net::TcpListener;

use crate::{
    client::{ChannelError, RecommendationsGateway},
    routes::{AppState, service},
    settings::Settings,
};

/// Why the Marketplace could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address cannot be bound (in use, permission, bad host).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address from `server.host` and `server.port`.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Recommendations endpoint cannot be set up.
    #[error(transparent)]
    Recommendations(#[from] ChannelError),
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The largest request head (request line and headers) read, in bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// A bound, not yet serving, Marketplace.
#[derive(Debug)]
pub struct Application {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    shutdown_timeout: Duration,
    fuse: FuseConfig,
    max_connections: usize,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and sets up the lazy channel to
    /// Recommendations, which is not dialled until the first request needs it.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let gateway = RecommendationsGateway::new(&settings.recommendations)?;
        let address = settings.bind_address();
        let bind_error = |source| StartError::Bind {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let acceptor = TcpAcceptor::try_from(listener).map_err(bind_error)?;
        Ok(Application {
            acceptor,
            local_addr,
            state: Arc::new(AppState::new(&settings, gateway)),
            shutdown_timeout: settings.shutdown_timeout(),
            fuse: settings.fuse(),
            max_connections: settings.server.max_connections,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops gracefully: no new connections, and
    /// in-flight requests get `server.shutdown_timeout_ms` to finish.
    pub async fn run_until_stopped(
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
        let serving = server.try_serve(service(self.state));
        tokio::pin!(serving);
        tracing::info!(address = %self.local_addr, "Marketplace listening (HTTP)");

        tokio::select! {
            result = &mut serving => {
                // The server stopped by itself: report why.
                return result.map_err(StartError::Serve);
            }
            () = shutdown => {}
        }

        tracing::info!(
            grace_ms = u64::try_from(self.shutdown_timeout.as_millis()).unwrap_or(u64::MAX),
            "stopping: finishing in-flight requests"
        );
        handle.stop_graceful(Some(self.shutdown_timeout));
        serving.await.map_err(StartError::Serve)?;
        tracing::info!("Marketplace stopped");
        Ok(())
    }
}
