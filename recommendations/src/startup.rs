//! Building and running the service: bind first, then serve until a stop signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bookshop_proto::{FILE_DESCRIPTOR_SET, recommendations_server::RecommendationsServer};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    catalog::CatalogError,
    metrics::Metrics,
    reload::{Reloader, WatchHandle, spawn_watcher},
    service::RecommendationService,
    settings::{Settings, TlsSettings},
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
    /// A TLS file cannot be read.
    #[error("cannot read {key} {path}: {source}")]
    TlsFile {
        /// The setting that names the file.
        key: &'static str,
        /// The file.
        path: String,
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

/// The largest `Recommend` request accepted, in bytes. A real one is under 20 bytes; anything
/// bigger (unknown fields stuffed in) is refused with `OUT_OF_RANGE` before it is decoded.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The largest header list (metadata) of a call, in bytes.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// A bound, not yet serving, Recommendations service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    health_listener: Option<(TcpListener, SocketAddr)>,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    tls: Option<ServerTlsConfig>,
    settings: Settings,
}

type Service = RecommendationsServer<RecommendationService>;

impl Application {
    /// Binds the listeners (port 0 picks a free port) and reads the TLS files; nothing is
    /// served yet.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let tls = server_tls(&settings.tls)?;
        let (listener, local_addr) = bind(&settings.bind_address()).await?;
        let health_listener = match settings.server.health_port {
            Some(port) => Some(bind(&settings.bind_address_for(port)).await?),
            None => None,
        };
        let metrics_listener = match settings.metrics.enabled {
            true => Some(bind(&settings.bind_address_for(settings.metrics.port)).await?),
            false => None,
        };
        Ok(Application {
            listener,
            local_addr,
            health_listener,
            metrics_listener,
            tls,
            settings,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext health listener's address, if `server.health_port` is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The metrics listener's address, if `metrics.enabled`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
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
        let metrics = Arc::new(Metrics::new());
        let service = RecommendationService::new(store.clone(), settings.recommend.clone())
            .with_metrics(metrics.clone());
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        if let Some((listener, addr)) = self.health_listener {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let health_only = Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
            tokio::spawn(async move {
                if let Err(error) = health_only.await {
                    tracing::error!(%error, "the health listener failed");
                }
            });
            tracing::info!(address = %addr, "health listener (plaintext gRPC health only)");
        }
        if let Some((listener, addr)) = self.metrics_listener {
            tokio::spawn(crate::metrics::serve(
                listener,
                metrics.clone(),
                stopped(stop_rx.clone()),
            ));
            tracing::info!(address = %addr, "metrics listener (GET /metrics)");
        }
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let server = builder
            .timeout(Duration::from_millis(settings.server.request_timeout_ms))
            .concurrency_limit_per_connection(settings.server.concurrency_limit_per_connection)
            .max_concurrent_streams(
                u32::try_from(settings.server.concurrency_limit_per_connection).ok(),
            )
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(Service::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
            .serve_with_incoming_shutdown(incoming, stopped(stop_rx));
        let mut server = tokio::spawn(server);
        tracing::info!(
            address = %self.local_addr,
            tls = settings.tls.enabled(),
            mutual_tls = settings.tls.client_ca_path.is_some(),
            "Recommendations listening (gRPC)"
        );

        let reloader = Arc::new(Reloader::new(
            settings.catalog.path.clone(),
            settings.catalog.max_bytes,
            store,
            metrics,
        ));
        let initial = {
            let reloader = reloader.clone();
            tokio::task::spawn_blocking(move || reloader.load_initial()).await
        };
        if let Err(error) = initial.map_err(StartError::from).and_then(|r| Ok(r?)) {
            let _ = stop_tx.send(true);
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
        let _ = stop_tx.send(true);
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

async fn bind(address: &str) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind {
        address: address.to_owned(),
        source,
    };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local_addr))
}

/// The server's TLS configuration from `[tls]`, the files read now so a missing file stops
/// start-up with its name.
fn server_tls(tls: &TlsSettings) -> Result<Option<ServerTlsConfig>, StartError> {
    let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) else {
        return Ok(None);
    };
    let read = |key: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| StartError::TlsFile {
            key,
            path: path.display().to_string(),
            source,
        })
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        read("tls.cert_path", cert)?,
        read("tls.key_path", key)?,
    ));
    if let Some(ca) = &tls.client_ca_path {
        config = config.client_ca_root(Certificate::from_pem(read("tls.client_ca_path", ca)?));
    }
    Ok(Some(config))
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
