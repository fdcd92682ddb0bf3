//! Building and running the service: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bookshop_proto::{FILE_DESCRIPTOR_SET, recommendations_server::RecommendationsServer};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    catalog::CatalogError,
    reload::{Reloader, WatchHandle, spawn_watcher},
    service::RecommendationService,
    settings::Settings,
    store::CatalogStore,
};

/// Why the service could not start or stopped abnormally.
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
    /// The catalog could not be loaded at start-up.
    #[error("cannot start without a valid catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The reflection service could not be built from the descriptors.
    #[error("cannot set up server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// A background task panicked.
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A bound, not yet serving, Recommendations service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: Settings,
}

type Service = RecommendationsServer<RecommendationService>;

impl Application {
    /// Binds the listener (port 0 picks a free port); nothing is served yet.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let address = settings.bind_address();
        let bind_error = |source| StartError::Bind {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Application {
            listener,
            local_addr,
            settings,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops gracefully.
    ///
    /// The health service answers at once but reports NOT_SERVING until the catalog is loaded;
    /// an invalid or missing catalog at start-up is an error. On shutdown, health turns
    /// NOT_SERVING, new connections are refused, and in-flight calls get
    /// `server.shutdown_timeout_ms` to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let settings = self.settings;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;

        let store = CatalogStore::default();
        let service = RecommendationService::new(store.clone(), settings.recommend.clone());
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server = Server::builder()
            .timeout(Duration::from_millis(settings.server.request_timeout_ms))
            .concurrency_limit_per_connection(settings.server.concurrency_limit_per_connection)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(Service::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        let mut server = tokio::spawn(server);
        tracing::info!(address = %self.local_addr, "Recommendations listening (gRPC)");

        let reloader = Arc::new(Reloader::new(
            settings.catalog.path.clone(),
            settings.catalog.max_bytes,
            store,
        ));
        let initial = {
            let reloader = reloader.clone();
            tokio::task::spawn_blocking(move || reloader.load_initial()).await
        };
        if let Err(error) = initial.map_err(StartError::from).and_then(|r| Ok(r?)) {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(error);
        }
        let watcher = spawn_watcher(reloader, settings.watch_options());
        set_health(&health, ServingStatus::Serving).await;
        tracing::info!("Recommendations ready");

        tokio::select! {
            () = shutdown => {}
            () = reload_on_hangup(&watcher) => {}
            result = &mut server => {
                // The server stopped by itself: report why.
                result??;
                return Ok(());
            }
        }

        set_health(&health, ServingStatus::NotServing).await;
        drop(watcher);
        let _ = stop_tx.send(());
        let grace = Duration::from_millis(settings.server.shutdown_timeout_ms);
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result??,
            Err(_) => {
                tracing::warn!(
                    grace_ms = settings.server.shutdown_timeout_ms,
                    "in-flight calls did not finish in time; stopping anyway"
                );
                server.abort();
            }
        }
        tracing::info!("Recommendations stopped");
        Ok(())
    }
}

/// Sets both the whole server (`""`, what Kubernetes' gRPC probe asks) and the `Recommendations`
/// service.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    match status {
        ServingStatus::Serving => health.set_serving::<Service>().await,
        _ => health.set_not_serving::<Service>().await,
    }
}

/// SIGHUP asks for a reload, the traditional way to tell a daemon to re-read its files.
/// Never resolves.
async fn reload_on_hangup(watcher: &WatchHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hangups) = signal(SignalKind::hangup()) {
            while hangups.recv().await.is_some() {
                tracing::info!("received SIGHUP, reloading the catalog");
                watcher.trigger();
            }
        }
    }
    let _ = watcher;
    std::future::pending::<()>().await;
}
