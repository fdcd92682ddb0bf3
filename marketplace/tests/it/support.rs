//! Test helpers: a fake Recommendations with scripted answers, a real Recommendations on a
//! temporary catalog, a real Marketplace on port 0, a resolver the tests set by hand, requests
//! through the Marketplace's service without a socket, a minimal HTTP client, and polling
//! (`eventually`, from `bookshop_testing`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

pub use bookshop_testing::eventually;
use bookshop_common::{serve::App, testing::Spawned};
use bookshop_proto::{
    BookRecommendation, RecommendationRequest, RecommendationResponse,
    recommendations_server::{Recommendations, RecommendationsServer},
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use marketplace::{
    Application,
    balance::{Resolve, ResolveFuture},
    client::RecommendationsGateway,
    metrics::Metrics,
    routes::{AppState, service},
    settings::Settings,
    shelves::{Shelves, Source},
};
use salvo::{
    Service,
    test::{ResponseExt, TestClient},
};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::oneshot,
    task::JoinHandle,
};
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use tonic_health::{pb::health_check_response::ServingStatus, server::HealthReporter};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// What the fake Recommendations answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// These books, whatever is asked.
    Books(Vec<BookRecommendation>),
    /// This status.
    Fail(tonic::Code, &'static str),
    /// Nothing for this long, then the books.
    Sleep(Duration),
}

/// A `Recommendations` implementation that answers from a script and records every request.
#[derive(Debug, Clone)]
pub struct FakeRecommendations {
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<RecommendationRequest>>>,
    /// `x-request-id`, `traceparent` and `grpc-timeout` of each request ("" when absent).
    contexts: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl FakeRecommendations {
    pub fn set(&self, script: Script) {
        *self.script.lock().expect("script lock") = script;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<RecommendationRequest> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// The `x-request-id` and `traceparent` metadata of the last request ("" when absent).
    pub fn last_context(&self) -> (String, String) {
        let (request_id, traceparent, _) = self.last_metadata();
        (request_id, traceparent)
    }

    /// The `grpc-timeout` metadata of the last request ("" when absent).
    pub fn last_deadline(&self) -> String {
        self.last_metadata().2
    }

    fn last_metadata(&self) -> (String, String, String) {
        self.contexts
            .lock()
            .expect("contexts lock")
            .last()
            .cloned()
            .expect("no request reached the fake")
    }

    /// The last request received.
    pub fn last(&self) -> RecommendationRequest {
        self.requests().pop().expect("no request reached the fake")
    }
}

#[tonic::async_trait]
impl Recommendations for FakeRecommendations {
    async fn recommend(
        &self,
        request: Request<RecommendationRequest>,
    ) -> Result<Response<RecommendationResponse>, Status> {
        let text = |key: &str| {
            request
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let context = (
            text("x-request-id"),
            text("traceparent"),
            text("grpc-timeout"),
        );
        self.contexts.lock().expect("contexts lock").push(context);
        self.requests
            .lock()
            .expect("requests lock")
            .push(request.into_inner());
        let script = self.script.lock().expect("script lock").clone();
        match script {
            Script::Books(books) => Ok(Response::new(RecommendationResponse {
                recommendations: books,
            })),
            Script::Fail(code, message) => Err(Status::new(code, message)),
            Script::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Ok(Response::new(RecommendationResponse::default()))
            }
        }
    }
}

pub fn book(id: i32, title: &str, author: &str) -> BookRecommendation {
    BookRecommendation {
        id,
        title: title.into(),
        author: author.into(),
    }
}

/// Three books of the seed's mystery shelf, the first two with authors.
pub fn three_books() -> Vec<BookRecommendation> {
    vec![
        book(1, "Мальтийский сокол", "Дэшил Хэммет"),
        book(2, "Убийство в Восточном экспрессе", "Агата Кристи"),
        book(3, "The Hound of the Baskervilles", ""),
    ]
}

/// `n` books titled "Book 1", "Book 2", … without authors.
pub fn numbered_books(n: i32) -> Vec<BookRecommendation> {
    (1..=n)
        .map(|id| book(id, &format!("Book {id}"), ""))
        .collect()
}

/// A fake Recommendations server on `127.0.0.1:0`, with a health service reporting SERVING.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub fake: FakeRecommendations,
    pub health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl FakeServer {
    pub async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("fake address");
        let fake = FakeRecommendations {
            script: Arc::new(Mutex::new(script)),
            requests: Arc::default(),
            contexts: Arc::default(),
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<RecommendationsServer<FakeRecommendations>>()
            .await;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(RecommendationsServer::new(fake.clone()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            });
        FakeServer {
            addr,
            fake,
            health,
            stop: Some(stop),
            task: tokio::spawn(server),
        }
    }

    pub async fn set_not_serving(&self) {
        self.health
            .set_not_serving::<RecommendationsServer<FakeRecommendations>>()
            .await;
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

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

/// The Marketplace's service (no socket) in front of `settings`, knowing the seed's three
/// categories, as its catalog follower finds them at a server that only speaks the seed's API
/// (such as [`FakeServer`]).
pub fn service_for(settings: &Settings) -> Service {
    let metrics = Arc::new(Metrics::new());
    let gateway =
        RecommendationsGateway::new(&settings.recommendations, metrics.clone()).expect("gateway");
    let state = AppState::new(settings, gateway, metrics);
    state.shelves.replace(Shelves::seed(Source::Seed));
    service(Arc::new(state))
}

/// The Marketplace's service (no socket) and its state, in front of the replicas `resolver`
/// names, re-resolved every 100 ms, with a deadline of `deadline_ms`.
pub fn marketplace_with_deadline(
    resolver: &ManualResolver,
    deadline_ms: u64,
) -> (Service, Arc<AppState>) {
    let mut settings = settings_for(0, deadline_ms);
    settings.recommendations.resolve_interval = Duration::from_millis(100);
    let metrics = Arc::new(Metrics::new());
    let gateway = RecommendationsGateway::with_resolver(
        &settings.recommendations,
        Box::new(resolver.clone()),
        metrics.clone(),
    )
    .expect("gateway");
    let state = Arc::new(AppState::new(&settings, gateway, metrics));
    (service(state.clone()), state)
}

/// The origin of the URLs that requests through a [`Service`] (no socket) are sent to.
pub const BASE: &str = "http://127.0.0.1:5001";

/// One GET of `path` through `service` (no socket), with these request headers: the response
/// and its body.
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
    let body = res
        .take_string()
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    (res, body)
}

/// One GET of `path` through `service` (no socket): the response and its body.
pub async fn page(service: &Service, path: &str) -> (salvo::Response, String) {
    fetch(service, path, &[]).await
}

/// `html` without the page's own script tag (`/static/live.js`), so that checks for markup that
/// was let through unescaped see only what came from outside.
pub fn without_own_script(html: &str) -> String {
    let mut rest = html;
    let mut kept = String::with_capacity(html.len());
    const OWN: &str = "<script src=\"/static/live.js?v=";
    while let Some(start) = rest.find(OWN) {
        kept.push_str(&rest[..start]);
        let end = rest[start..]
            .find("</script>")
            .map_or(rest.len(), |end| start + end + "</script>".len());
        rest = &rest[end..];
    }
    kept.push_str(rest);
    kept
}

/// A header of `res`, when it is there and is text.
pub fn header<'a>(res: &'a salvo::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A fake server and the Marketplace service in front of it (deadline 500 ms).
pub async fn app(script: Script) -> (FakeServer, Service) {
    let server = FakeServer::start(script).await;
    let service = service_for(&settings_for(server.addr.port(), 500));
    (server, service)
}

/// A port on 127.0.0.1 that is bound but not listening: connections to it are refused, and no
/// other test can take it while the socket is kept. `listen` turns it into a listener later.
pub fn reserved_port() -> (TcpSocket, u16) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = socket.local_addr().expect("address").port();
    (socket, port)
}

/// A resolver whose answer the tests set by hand, to add and remove replicas, and which can be
/// slow to answer.
#[derive(Debug, Clone, Default)]
pub struct ManualResolver {
    addrs: Arc<Mutex<Vec<SocketAddr>>>,
    delay: Duration,
}

impl ManualResolver {
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        Self::slow(addrs, Duration::ZERO)
    }

    /// A resolver that takes `delay` to answer.
    pub fn slow(addrs: Vec<SocketAddr>, delay: Duration) -> Self {
        ManualResolver {
            addrs: Arc::new(Mutex::new(addrs)),
            delay,
        }
    }

    /// Changes the answer; the pool sees it at its next resolution.
    pub fn set(&self, addrs: Vec<SocketAddr>) {
        *self.addrs.lock().expect("resolver lock") = addrs;
    }
}

impl Resolve for ManualResolver {
    fn resolve(&self) -> ResolveFuture<'_> {
        let addrs = self.addrs.lock().expect("resolver lock").clone();
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(addrs)
        })
    }
}

/// A real Recommendations service (its library) with `catalog`.
pub struct RecommendationsProcess {
    pub addr: SocketAddr,
    running: Spawned<recommendations::StartError>,
}

impl RecommendationsProcess {
    /// On `127.0.0.1:0`.
    pub async fn start(catalog: &Path) -> RecommendationsProcess {
        Self::start_on(catalog, "127.0.0.1", 0).await
    }

    /// On `ip:port` (`127.0.0.2`, …: all of 127/8 is loopback on Linux; port 0 for any).
    pub async fn start_on(catalog: &Path, ip: &str, port: u16) -> RecommendationsProcess {
        let listener = TcpListener::bind((ip, port))
            .await
            .expect("bind Recommendations");
        Self::start_with(catalog, listener).await
    }

    /// On `listener`, and waits until it serves the catalog.
    pub async fn start_with(catalog: &Path, listener: TcpListener) -> RecommendationsProcess {
        let mut s = recommendations::settings::Settings::default();
        s.metrics.enabled = false;
        s.catalog.path = catalog.to_path_buf();
        let app = recommendations::Application::with_listener(s, listener)
            .await
            .expect("start Recommendations");
        let addr = app.local_addr();
        let running = Spawned::new(|stop| app.run_until_stopped(stop));
        wait_until_serving(addr).await;
        RecommendationsProcess { addr, running }
    }

    /// Stops it gracefully and waits until it has let go of its port.
    pub async fn stop(self) {
        self.running
            .stop(Duration::from_secs(10))
            .await
            .expect("Recommendations stopped cleanly");
    }
}

/// Waits until the Recommendations health service at `addr` (plaintext) reports SERVING: it
/// answers at once but serves books only once the catalog is loaded.
pub async fn wait_until_serving(addr: SocketAddr) {
    let serving = eventually(Duration::from_secs(10), async || {
        let status =
            recommendations::healthcheck::check(&addr.to_string(), Duration::from_millis(500))
                .await;
        matches!(status, Ok(ServingStatus::Serving))
    })
    .await;
    assert!(serving, "Recommendations at {addr} did not become SERVING");
}

/// Writes a catalog with these mystery titles, atomically (temporary file, then rename), as
/// editors do.
pub fn write_catalog(path: &Path, titles: &[&str]) {
    let mut text = String::new();
    for (i, title) in titles.iter().enumerate() {
        text.push_str(&format!(
            "[[mystery]]\nid = {}\ntitle = \"{title}\"\nauthor = \"Author {}\"\n\n",
            i + 1,
            i + 1
        ));
    }
    text.push_str("[[self_help]]\nid = 1000\ntitle = \"Help\"\n");
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write catalog");
    std::fs::rename(&tmp, path).expect("rename catalog");
}

/// A real Marketplace (its library) on `127.0.0.1:0`.
pub struct MarketplaceProcess {
    pub addr: SocketAddr,
    pub running: Spawned<marketplace::StartError>,
}

impl MarketplaceProcess {
    pub async fn start(settings: Settings) -> MarketplaceProcess {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind Marketplace");
        let app = Application::with_listener(settings, listener).expect("start Marketplace");
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

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 GET over a fresh connection.
pub async fn get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
    try_get(addr, path_and_query, headers)
        .await
        .unwrap_or_else(|error| panic!("GET {path_and_query}: {error}"))
}

/// One HTTP/1.1 GET over a fresh connection, or why it failed.
pub async fn try_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    KeptAlive::open(addr)
        .await?
        .get(path_and_query, headers)
        .await
}

/// An HTTP/1.1 connection kept open across requests, as browsers and proxies keep them.
pub struct KeptAlive {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl KeptAlive {
    pub async fn open(
        addr: SocketAddr,
    ) -> Result<KeptAlive, Box<dyn std::error::Error + Send + Sync>> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(KeptAlive { addr, sender })
    }

    /// One GET on this connection.
    pub async fn get(
        &mut self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let mut request = hyper::Request::get(path_and_query).header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request.body(Empty::<Bytes>::new())?)
            .await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec())?,
        })
    }
}

/// The book titles on a page, in order.
pub fn titles(html: &str) -> Vec<String> {
    html.split("<span class=\"book-title\">")
        .skip(1)
        .filter_map(|rest| rest.split_once("</span>").map(|(t, _)| t.to_owned()))
        .collect()
}

/// The covers on a page, in order: each one's colour class (`cover-N`) and its initials.
pub fn covers(html: &str) -> Vec<(String, String)> {
    html.split("<span class=\"cover ")
        .skip(1)
        .filter_map(|rest| {
            let (class, rest) = rest.split_once('"')?;
            let (_, rest) = rest.split_once('>')?;
            let (initials, _) = rest.split_once("</span>")?;
            Some((class.to_owned(), initials.to_owned()))
        })
        .collect()
}

/// A temporary directory with a catalog of these mystery titles.
pub fn catalog_dir(titles: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("catalog.toml");
    write_catalog(&path, titles);
    (dir, path)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub id: String,
    pub data: String,
}

/// An open `GET /events` stream, read as a browser's EventSource reads it.
pub struct EventStream {
    body: hyper::body::Incoming,
    buffer: String,
    /// The status and headers of the answer.
    pub status: u16,
    pub content_type: String,
}

impl EventStream {
    /// Opens `path_and_query` (`/events`, `/events?since=…`) with these headers.
    pub async fn open(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = hyper::Request::get(path_and_query).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new()).expect("request"))
            .await
            .expect("GET /events");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        EventStream {
            status: response.status().as_u16(),
            content_type,
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event (comments and `retry:` lines skipped), or `None` when the stream ended;
    /// panics after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.read_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {limit:?}"))
    }

    async fn read_event(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    name: String::new(),
                    id: String::new(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                        match field {
                            "event" => event.name = value,
                            "id" => event.id = value,
                            "data" => event.data = value,
                            _ => {}
                        }
                    }
                }
                if !event.name.is_empty() || !event.data.is_empty() {
                    return Some(event);
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Reads until the server ends the stream; panics after `limit`.
    pub async fn ended(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async { while self.read_event().await.is_some() {} })
            .await
            .is_ok()
    }
}
