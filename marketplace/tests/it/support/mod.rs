//! Test helpers: a fake Recommendations with scripted answers ([`fake`]), a real
//! Recommendations on a temporary catalog, a real Marketplace on port 0, a resolver the tests
//! set by hand, requests through the Marketplace's service without a socket, and HTTP and SSE
//! through reqwest ([`http`]).

mod fake;
mod http;

pub use fake::*;
pub use http::*;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use bookshop_common::serve::App;
use bookshop_testing::Spawned;
pub use bookshop_testing::eventually;
use marketplace::{
    Application,
    categories::{self, Api, Categories},
    metrics::Metrics,
    recommendations::{Client, balance::Resolve},
    settings::{RecommendationsSettings, Settings},
    web::{AppState, service},
};
use salvo::{
    Service,
    test::{ResponseExt, TestClient},
};
use tokio::net::{TcpListener, TcpSocket};

/// Where requests through a [`Service`] (no socket) are sent.
pub const BASE: &str = "http://127.0.0.1:5001";

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Marketplace settings pointing at `port` on 127.0.0.1, with a short deadline.
pub fn settings_for(port: u16, timeout_ms: u64) -> Settings {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.shutdown_timeout = Duration::from_secs(5);
    settings.server.drain = Duration::from_millis(100);
    settings.recommendations.host = "127.0.0.1".into();
    settings.recommendations.port = port;
    settings.recommendations.timeout = Duration::from_millis(timeout_ms);
    settings.recommendations.connect_timeout = Duration::from_millis(300);
    settings
}

/// The Marketplace's state, not serving (tests drive its [`service`]), with its client made
/// by `connect`.
async fn state(
    settings: Settings,
    connect: impl FnOnce(&RecommendationsSettings, Arc<Metrics>) -> Client,
) -> Arc<AppState> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::with_client(settings, listener, |s, metrics| Ok(connect(s, metrics)));
    app.unwrap().state().clone()
}

/// The service (no socket) in front of `settings`, knowing the tutorial's three categories, as
/// its catalog follower finds them at a server that speaks only the tutorial's API.
pub async fn service_for(settings: &Settings) -> Service {
    let state = state(settings.clone(), |s, metrics| Client::new(s, metrics).unwrap()).await;
    categories::replace(&state.categories, Categories::tutorial(Api::Tutorial));
    service(state)
}

/// The service (no socket) and its state, in front of the replicas `resolver` names,
/// re-resolved every 100 ms, with a deadline of `deadline_ms`.
pub async fn marketplace_with_deadline(
    resolver: &ManualResolver,
    deadline_ms: u64,
) -> (Service, Arc<AppState>) {
    let mut settings = settings_for(0, deadline_ms);
    settings.recommendations.resolve_interval = Duration::from_millis(100);
    let resolver = Box::new(resolver.clone());
    let state =
        state(settings, |s, metrics| Client::with_resolver(s, resolver, metrics).unwrap()).await;
    (service(state.clone()), state)
}

/// A fake server and the Marketplace service in front of it (deadline 500 ms).
pub async fn app(script: Script) -> (FakeServer, Service) {
    let server = FakeServer::start(script).await;
    let service = service_for(&settings_for(server.addr.port(), 500)).await;
    (server, service)
}

/// One GET of `path` through `service` (no socket), with these headers: the response and body.
pub async fn fetch(
    service: &Service,
    path: &str,
    headers: &[(&'static str, &str)],
) -> (salvo::Response, String) {
    let mut request = TestClient::get(format!("{BASE}{path}"));
    for (name, value) in headers {
        request = request.add_header(*name, *value, true);
    }
    let mut res = request.send(service).await;
    let body = res.take_string().await.unwrap_or_else(|error| panic!("GET {path}: {error}"));
    (res, body)
}

pub async fn page(service: &Service, path: &str) -> (salvo::Response, String) {
    fetch(service, path, &[]).await
}

/// `html` without the page's own script tag, so that checks for markup let through unescaped
/// see only what came from outside.
pub fn without_own_script(html: &str) -> String {
    let (start, end) = ("<script src=\"/static/live.js?v=", "</script>");
    let tags = html
        .split(start)
        .skip(1)
        .filter_map(|rest| Some(format!("{start}{}{end}", rest.split_once(end)?.0)));
    tags.fold(html.to_owned(), |html, tag| html.replace(&tag, ""))
}

pub fn header<'a>(res: &'a salvo::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A port on 127.0.0.1 bound but not listening: connections are refused, and no other test
/// can take it while the socket is kept.
pub fn reserved_port() -> (TcpSocket, u16) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// A resolver whose answer the tests set by hand, and which can be slow to answer.
#[derive(Debug, Clone, Default)]
pub struct ManualResolver {
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    delay: Duration,
}

impl ManualResolver {
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        Self::slow(addrs, Duration::ZERO)
    }

    pub fn slow(addrs: Vec<SocketAddr>, delay: Duration) -> Self {
        ManualResolver { addrs: Arc::new(Mutex::new(addrs)), delay }
    }

    /// The pool sees it at its next resolution.
    pub fn set(&self, addrs: Vec<SocketAddr>) {
        *self.addrs.lock().unwrap() = addrs;
    }
}

impl Resolve for ManualResolver {
    fn resolve(&self) -> futures_util::future::BoxFuture<'_, std::io::Result<Vec<SocketAddr>>> {
        let addrs = self.addrs.lock().unwrap().clone();
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            Ok(addrs)
        })
    }
}

/// A real Recommendations (its library) with `catalog`, serving.
pub struct RecommendationsProcess {
    pub addr: SocketAddr,
    running: Spawned<recommendations::StartError>,
}

impl RecommendationsProcess {
    pub async fn start(catalog: &Path) -> RecommendationsProcess {
        Self::start_on(catalog, "127.0.0.1", 0).await
    }

    /// On `ip:port` (`127.0.0.2`…: all of 127/8 is loopback on Linux).
    pub async fn start_on(catalog: &Path, ip: &str, port: u16) -> RecommendationsProcess {
        Self::start_with(catalog, TcpListener::bind((ip, port)).await.unwrap()).await
    }

    pub async fn start_with(catalog: &Path, listener: TcpListener) -> RecommendationsProcess {
        let mut settings = recommendations::settings::Settings::default();
        settings.metrics.enabled = false;
        settings.catalog.path = catalog.to_path_buf();
        let app = recommendations::Application::with_listener(settings, listener).await.unwrap();
        let addr = app.local_addr();
        let running = Spawned::new(|stop| app.run_until_stopped(stop));
        wait_until_serving(addr).await;
        RecommendationsProcess { addr, running }
    }

    /// Stops it gracefully and waits until it has let go of its port.
    pub async fn stop(self) {
        self.running.stop(Duration::from_secs(10)).await.expect("Recommendations stopped cleanly");
    }
}

/// Health answers at once, but books come once the catalog is loaded.
pub async fn wait_until_serving(addr: SocketAddr) {
    let serving = eventually(Duration::from_secs(10), async || {
        let settings = Ok(recommendations::settings::Settings::default());
        let addr = Some(addr.to_string().parse().unwrap());
        recommendations::healthcheck::run(addr, &settings, Duration::from_millis(500)).await.is_ok()
    });
    assert!(serving.await, "Recommendations at {addr} did not become SERVING");
}

/// A catalog with these mystery titles and one self-help book, saved by rename as editors do.
pub fn write_catalog(path: &Path, titles: &[&str]) {
    let books = titles.iter().enumerate().map(|(i, title)| {
        format!(
            "[[mystery]]\nid = {}\ntitle = \"{title}\"\nauthor = \"Author {}\"\n\n",
            i + 1,
            i + 1
        )
    });
    let text: String =
        books.chain(["[[self_help]]\nid = 1000\ntitle = \"Help\"\n".to_owned()]).collect();
    std::fs::write(path.with_extension("toml.tmp"), text).unwrap();
    std::fs::rename(path.with_extension("toml.tmp"), path).unwrap();
}

pub fn catalog_dir(titles: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    write_catalog(&path, titles);
    (dir, path)
}

/// A real Marketplace (its library) on `127.0.0.1:0`.
pub struct MarketplaceProcess {
    pub addr: SocketAddr,
    pub running: Spawned<marketplace::StartError>,
}

impl MarketplaceProcess {
    pub async fn start(settings: Settings) -> MarketplaceProcess {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Application::with_listener(settings, listener).unwrap();
        MarketplaceProcess {
            addr: app.local_addr(),
            running: Spawned::new(|stop| app.run_until_stopped(stop)),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        get(self.addr, path_and_query, &[]).await
    }
}
