//! Building and running the service: bind first, then serve until a stop signal.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bookshop_common::{net::BindError, net::bind, serve::App, tls, tls::TlsFileError};
use bookshop_proto::catalog::catalog_events_server::CatalogEventsServer;
use bookshop_proto::catalog::catalog_server::CatalogServer;
use bookshop_proto::{FILE_DESCRIPTOR_SET, recommendations_server::RecommendationsServer};
use futures_util::TryFutureExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::catalog::{CatalogError, Store};
use crate::reload::{self, Reloader, Reports};
use crate::settings::{ENV_PREFIX, Settings, TlsSettings};
use crate::{connections, events::CatalogEventsService, metrics::Metrics};
use crate::{service::RecommendationService, watch::Watcher};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    #[error("cannot start without a valid catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("cannot set up server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Far above a real `Recommend` request: bigger requests and metadata are refused undecoded.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

type Grpc = RecommendationsServer<RecommendationService>;
type CatalogApi = CatalogServer<RecommendationService>;
type Events = CatalogEventsServer<CatalogEventsService>;

/// A bound, not yet serving, Recommendations.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    health_listener: Option<TcpListener>,
    metrics_listener: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    settings: Settings,
}

impl Application {
    /// Serves on `listener`, not `server.port` (tests bind `127.0.0.1:0`); binds the other ports.
    pub async fn with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartError> {
        let bind_if = async |port: Option<u16>, setting| match port {
            Some(port) => bind(&settings.server.host, port, ENV_PREFIX, setting).await.map(Some),
            None => Ok(None),
        };
        let health_listener = bind_if(settings.server.health_port, "server.health_port").await?;
        let metrics_port = settings.metrics.enabled.then_some(settings.metrics.port);
        let metrics_listener = bind_if(metrics_port, "metrics.port").await?;
        let tls = server_tls(&settings.tls)?;
        Ok(Application { listener, health_listener, metrics_listener, tls, settings })
    }

    /// With the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        address(&self.listener)
    }

    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().map(address)
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(address)
    }
}

impl App for Application {
    type Settings = Settings;
    type Error = StartError;
    const CURRENT_THREAD_ON_ONE: bool = true;

    async fn build(settings: Settings) -> Result<Application, StartError> {
        let listener =
            bind(&settings.server.host, settings.server.port, ENV_PREFIX, "server.port").await?;
        Self::with_listener(settings, listener).await
    }

    /// NOT_SERVING until the catalog is loaded. On stop, NOT_SERVING again, new connections are
    /// refused, `Watch` streams end, and calls get `server.shutdown_timeout_ms` to finish.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let local_addr = self.local_addr();
        let Application { listener, health_listener, metrics_listener, tls, settings } = self;
        let (server_settings, catalog) = (&settings.server, &settings.catalog);
        let stopping = CancellationToken::new();
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        let (store, metrics) = (Store::new(None), Arc::new(Metrics::default()));
        if let Some(listener) = health_listener {
            tracing::info!(address = %address(&listener), "health listener (plaintext gRPC health only)");
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let health_only = Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(incoming, stopping.clone().cancelled_owned())
                .inspect_err(|error| tracing::error!(%error, "the health listener failed"));
            tokio::spawn(health_only);
        }
        if let Some(listener) = metrics_listener {
            tracing::info!(address = %address(&listener), "metrics listener (GET /metrics)");
            tokio::spawn(crate::metrics::serve(listener, metrics.clone(), stopping.clone()));
        }

        let rules = settings.recommend.clone();
        let service =
            RecommendationService { store: store.clone(), rules, metrics: metrics.clone() };
        let reports = Reports::default();
        let events = CatalogEventsService {
            store: store.clone(),
            reports: reports.clone(),
            stopping: stopping.clone(),
        };
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let builder = tls.map_or(Ok(Server::builder()), |tls| Server::builder().tls_config(tls))?;
        let concurrency = server_settings.concurrency_limit_per_connection;
        let server = builder
            .timeout(server_settings.request_timeout)
            .concurrency_limit_per_connection(concurrency)
            .max_concurrent_streams(u32::try_from(concurrency).ok())
            .http2_max_header_list_size(MAX_REQUEST_BYTES as u32)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(Grpc::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(CatalogApi::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(Events::new(events))
            .serve_with_incoming_shutdown(
                connections::incoming(listener, server_settings, metrics.clone(), stopping.clone()),
                stopping.clone().cancelled_owned(),
            );
        let mut server = tokio::spawn(server);

        let (path, max_bytes, settle) = (catalog.path.clone(), catalog.max_bytes, catalog.settle);
        let mut reloader = Reloader::new(path, max_bytes, settle, store, reports, metrics);
        let loading =
            tokio::task::spawn_blocking(move || reloader.load_initial().map(|_| reloader));
        tokio::pin!(shutdown);
        let loaded = tokio::select! {
            loaded = loading => Some(loaded.map_err(StartError::from).and_then(|loaded| Ok(loaded?))),
            // A stop while the catalog loads is a stop like any other.
            () = &mut shutdown => None,
        };
        let reloader = match loaded {
            Some(Ok(reloader)) => reloader,
            outcome => {
                stopping.cancel();
                let _ = server.await;
                return outcome.map_or(Ok(()), |outcome| outcome.map(drop));
            }
        };
        let watcher =
            Watcher::new(&catalog.path, catalog.watch, catalog.debounce, catalog.poll_interval);
        let reloading = tokio::spawn(reload::run(reloader, watcher));
        set_health(&health, ServingStatus::Serving).await;
        // Only now: a catalog that cannot be loaded stops start-up before anything is served.
        let (tls, mutual_tls) = (settings.tls.enabled(), settings.tls.client_ca_path.is_some());
        tracing::info!(address = %local_addr, tls, mutual_tls, "Recommendations listening (gRPC)");

        tokio::select! {
            () = shutdown => {}
            // The server stopped by itself: report why.
            result = &mut server => return Ok(result??),
        }
        set_health(&health, ServingStatus::NotServing).await;
        reloading.abort();
        stopping.cancel();
        let grace = server_settings.shutdown_timeout;
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result??,
            Err(_) => {
                let grace_ms = bookshop_common::millis(grace);
                tracing::warn!(grace_ms, "in-flight calls did not finish in time; stopping anyway");
                server.abort();
            }
        }
        tracing::info!("Recommendations stopped");
        Ok(())
    }
}

/// Bound listeners have an address.
fn address(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The files read now, so that a missing one stops start-up with its name.
fn server_tls(tls: &TlsSettings) -> Result<Option<ServerTlsConfig>, TlsFileError> {
    let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) else { return Ok(None) };
    let identity =
        Identity::from_pem(tls::read("tls.cert_path", cert)?, tls::read("tls.key_path", key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca_path {
        config = config.client_ca_root(Certificate::from_pem(tls::read("tls.client_ca_path", ca)?));
    }
    Ok(Some(config))
}

/// The whole server (`""`, what Kubernetes' gRPC probe asks) and each service.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in ["", Grpc::NAME, CatalogApi::NAME, Events::NAME] {
        health.set_service_status(service, status).await;
    }
}
