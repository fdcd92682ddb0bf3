//! Building and running the service: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc};

use bookshop_common::{
    net::{BindError, bind},
    runtime::OneThread,
    serve::App,
    tls::{self, TlsFileError},
};
use bookshop_proto::{
    FILE_DESCRIPTOR_SET,
    catalog::{catalog_events_server::CatalogEventsServer, catalog_server::CatalogServer},
    recommendations_server::RecommendationsServer,
};
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    catalog::CatalogError,
    connections,
    events::CatalogEventsService,
    metrics::Metrics,
    reload::Reloader,
    service::RecommendationService,
    settings::{ENV_PREFIX, Settings, TlsSettings},
    store::CatalogStore,
    watch::{WatchHandle, spawn_watcher},
};

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener cannot be bound (in use, permission, bad host).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A TLS file cannot be read.
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
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

/// The largest `Recommend` request accepted, in bytes. A real one is under 20 bytes; anything
/// bigger (unknown fields stuffed in) is refused before it is decoded.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The largest header list (metadata) of a call, in bytes.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// A bound, not yet serving, Recommendations service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    health_listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    settings: Settings,
}

type Grpc = RecommendationsServer<RecommendationService>;
type Events = CatalogEventsServer<CatalogEventsService>;
type CatalogApi = CatalogServer<RecommendationService>;

impl Application {
    /// The same, serving gRPC on `listener` instead of binding `server.port` (tests bind
    /// `127.0.0.1:0` themselves and hand it over).
    pub async fn with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let tls = server_tls(&settings.tls)?;
        let health_listener = match settings.server.health_port {
            Some(port) => Some(bind_port(&settings, port, "server.health_port").await?),
            None => None,
        };
        let metrics_listener = match settings.metrics.enabled {
            true => Some(bind_port(&settings, settings.metrics.port, "metrics.port").await?),
            false => None,
        };
        Ok(Application {
            listener,
            health_listener,
            metrics_listener,
            tls,
            settings,
        })
    }

    /// The gRPC listener's address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        address(&self.listener)
    }

    /// The plaintext health listener's address, if `server.health_port` is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().map(address)
    }

    /// The metrics listener's address, if `metrics.enabled`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(address)
    }
}

impl App for Application {
    type Settings = Settings;
    type Error = StartError;
    /// Many small calls in flight: on one thread, their answers are written together
    /// ([`runtime`](bookshop_common::runtime) says why, with the numbers).
    const ONE_THREAD: OneThread = OneThread::CurrentThread;

    /// Binds the listeners (port 0 picks a free port) and reads the TLS files; nothing is
    /// served yet.
    async fn build(settings: Settings) -> Result<Application, StartError> {
        let listener = bind_port(&settings, settings.server.port, "server.port").await?;
        Self::with_listener(settings, listener).await
    }

    /// Serves until `shutdown` resolves, then stops gracefully.
    ///
    /// The health service answers at once but reports NOT_SERVING until the catalog is loaded;
    /// an invalid or missing catalog at start-up is an error. On shutdown, health turns
    /// NOT_SERVING, new connections are refused, and in-flight calls get
    /// `server.shutdown_timeout_ms` to finish.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let local_addr = self.local_addr();
        let settings = self.settings;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        let store = CatalogStore::default();
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = watch::channel(false);

        if let Some(listener) = self.health_listener {
            tracing::info!(address = %address(&listener), "health listener (plaintext gRPC health only)");
            let health_only = Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(
                    incoming(listener),
                    connections::stopped(stopped.clone()),
                );
            tokio::spawn(async move {
                if let Err(error) = health_only.await {
                    tracing::error!(%error, "the health listener failed");
                }
            });
        }
        if let Some(listener) = self.metrics_listener {
            tracing::info!(address = %address(&listener), "metrics listener (GET /metrics)");
            tokio::spawn(crate::metrics::serve(
                listener,
                metrics.clone(),
                connections::stopped(stopped.clone()),
            ));
        }

        let service =
            RecommendationService::new(store.clone(), settings.recommend.clone(), metrics.clone());
        let limits = connections::Limits {
            max_connections: settings.server.max_connections,
            handshake_timeout: settings.server.handshake_timeout,
            idle_timeout: settings.server.idle_timeout,
        };
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let server = builder
            .timeout(settings.server.request_timeout)
            .concurrency_limit_per_connection(settings.server.concurrency_limit_per_connection)
            .max_concurrent_streams(
                u32::try_from(settings.server.concurrency_limit_per_connection).ok(),
            )
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(Grpc::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(CatalogApi::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(Events::new(CatalogEventsService::new(
                store.clone(),
                stopped.clone(),
            )))
            .serve_with_incoming_shutdown(
                connections::incoming(self.listener, limits, metrics.clone(), stopped.clone()),
                connections::stopped(stopped),
            );
        let mut server = tokio::spawn(server);
        tracing::info!(
            address = %local_addr,
            tls = settings.tls.enabled(),
            mutual_tls = settings.tls.client_ca_path.is_some(),
            "Recommendations listening (gRPC)"
        );

        let reloader = Arc::new(Reloader::new(
            settings.catalog.path.clone(),
            settings.catalog.max_bytes,
            settings.catalog.settle,
            store,
            metrics,
        ));
        let initial = {
            let reloader = reloader.clone();
            tokio::task::spawn_blocking(move || reloader.load_initial()).await
        };
        if let Err(error) = initial.map_err(StartError::from).and_then(|r| Ok(r?)) {
            let _ = stop.send(true);
            let _ = server.await;
            return Err(error);
        }
        let watcher = spawn_watcher(reloader, settings.catalog.watch_options());
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
        let _ = stop.send(true);
        let grace = settings.server.shutdown_timeout;
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result??,
            Err(_) => {
                tracing::warn!(
                    grace_ms = bookshop_common::millis(grace),
                    "in-flight calls did not finish in time; stopping anyway"
                );
                server.abort();
            }
        }
        tracing::info!("Recommendations stopped");
        Ok(())
    }
}

/// Binds `port` on `server.host`; `setting` names the port's key in the error.
async fn bind_port(
    settings: &Settings,
    port: u16,
    setting: &'static str,
) -> Result<TcpListener, BindError> {
    bind(&settings.server.host, port, ENV_PREFIX, setting).await
}

fn address(listener: &TcpListener) -> SocketAddr {
    // Bound listeners have an address (checked by `bind`).
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Server reflection over the Recommendations and health protos, so grpcurl works without them.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The server's TLS configuration from `[tls]`, the files read now so a missing file stops
/// start-up with its name.
fn server_tls(settings: &TlsSettings) -> Result<Option<ServerTlsConfig>, TlsFileError> {
    let (Some(cert), Some(key)) = (&settings.cert_path, &settings.key_path) else {
        return Ok(None);
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        tls::read("tls.cert_path", cert)?,
        tls::read("tls.key_path", key)?,
    ));
    if let Some(ca) = &settings.client_ca_path {
        config = config.client_ca_root(Certificate::from_pem(tls::read("tls.client_ca_path", ca)?));
    }
    Ok(Some(config))
}

/// Sets the whole server (`""`, what Kubernetes' gRPC probe asks), the `Recommendations`
/// service and `bookshop.catalog.v1`'s `Catalog` and `CatalogEvents`.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    match status {
        ServingStatus::Serving => {
            health.set_serving::<Grpc>().await;
            health.set_serving::<CatalogApi>().await;
            health.set_serving::<Events>().await;
        }
        _ => {
            health.set_not_serving::<Grpc>().await;
            health.set_not_serving::<CatalogApi>().await;
            health.set_not_serving::<Events>().await;
        }
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
