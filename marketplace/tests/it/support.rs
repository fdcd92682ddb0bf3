//! Test helpers: a fake Recommendations with scripted answers, a real Recommendations on a
//! temporary catalog, a real Marketplace on port 0, a resolver the tests set by hand, requests
//! through the Marketplace's service without a socket, and HTTP and SSE through reqwest.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use bookshop_common::serve::App;
use bookshop_proto::{
    BookRecommendation, RecommendationRequest, RecommendationResponse,
    recommendations_server::{Recommendations, RecommendationsServer},
};
use bookshop_testing::Spawned;
pub use bookshop_testing::eventually;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use marketplace::{
    Application,
    categories::{self, Api, Categories},
    metrics::Metrics,
    recommendations::{Client, balance::Resolve},
    settings::Settings,
    web::{AppState, service},
};
use salvo::{
    Service,
    test::{ResponseExt, TestClient},
};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use tonic_health::server::HealthReporter;

/// Where requests through a [`Service`] (no socket) are sent.
pub const BASE: &str = "http://127.0.0.1:5001";

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// What the fake Recommendations answers.
#[derive(Debug, Clone)]
pub enum Script {
    Books(Vec<BookRecommendation>),
    Fail(tonic::Code, &'static str),
    /// Nothing for this long, then no books.
    Sleep(Duration),
}

/// The tutorial's `Recommendations`, answering from a script and recording every request with
/// its `x-request-id`, `traceparent` and `grpc-timeout` ("" when absent).
#[derive(Debug, Clone)]
pub struct FakeRecommendations {
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<(RecommendationRequest, [String; 3])>>>,
}

impl FakeRecommendations {
    pub fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub fn requests(&self) -> Vec<RecommendationRequest> {
        self.requests.lock().unwrap().iter().map(|(request, _)| *request).collect()
    }

    pub fn last(&self) -> RecommendationRequest {
        self.requests().pop().expect("no request reached the fake")
    }

    /// The `x-request-id` and `traceparent` of the last request.
    pub fn last_context(&self) -> (String, String) {
        let [request_id, traceparent, _] = self.last_metadata();
        (request_id, traceparent)
    }

    pub fn last_deadline(&self) -> String {
        let [_, _, deadline] = self.last_metadata();
        deadline
    }

    fn last_metadata(&self) -> [String; 3] {
        self.requests.lock().unwrap().last().expect("no request reached the fake").1.clone()
    }
}

#[tonic::async_trait]
impl Recommendations for FakeRecommendations {
    async fn recommend(
        &self,
        request: Request<RecommendationRequest>,
    ) -> Result<Response<RecommendationResponse>, Status> {
        let text = |key| {
            request.metadata().get(key).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
        };
        let metadata = [text("x-request-id"), text("traceparent"), text("grpc-timeout")];
        self.requests.lock().unwrap().push((*request.get_ref(), metadata));
        let script = self.script.lock().unwrap().clone();
        match script {
            Script::Books(recommendations) => {
                Ok(Response::new(RecommendationResponse { recommendations }))
            }
            Script::Fail(code, message) => Err(Status::new(code, message)),
            Script::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Ok(Response::new(RecommendationResponse::default()))
            }
        }
    }
}

pub fn book(id: i32, title: &str, author: &str) -> BookRecommendation {
    BookRecommendation { id, title: title.into(), author: author.into() }
}

/// Three books of the tutorial's mystery shelf, the first two with authors.
pub fn three_books() -> Vec<BookRecommendation> {
    vec![
        book(1, "Мальтийский сокол", "Дэшил Хэммет"),
        book(2, "Убийство в Восточном экспрессе", "Агата Кристи"),
        book(3, "The Hound of the Baskervilles", ""),
    ]
}

/// "Book 1", "Book 2", … without authors.
pub fn numbered_books(n: i32) -> Vec<BookRecommendation> {
    (1..=n).map(|id| book(id, &format!("Book {id}"), "")).collect()
}

/// A fake Recommendations on `127.0.0.1:0` that speaks only the tutorial's API, with a health
/// service reporting SERVING; stopped when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub fake: FakeRecommendations,
    health: HealthReporter,
    _stop: tokio_util::sync::DropGuard,
}

impl FakeServer {
    pub async fn start(script: Script) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake =
            FakeRecommendations { script: Arc::new(Mutex::new(script)), requests: Arc::default() };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RecommendationsServer<FakeRecommendations>>().await;
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(RecommendationsServer::new(fake.clone()))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        FakeServer { addr, fake, health, _stop: stop.drop_guard() }
    }

    pub async fn set_not_serving(&self) {
        self.health.set_not_serving::<RecommendationsServer<FakeRecommendations>>().await;
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

/// The Marketplace's state, not serving (tests drive its [`service`]), with its client made
/// by `connect`.
async fn state(
    settings: Settings,
    connect: impl FnOnce(&Settings, Arc<Metrics>) -> Client,
) -> Arc<AppState> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let app = Application::with_client(
        settings.clone(),
        listener,
        |_| Ok(connect(&settings, metrics.clone())),
        metrics.clone(),
    );
    app.unwrap().state().clone()
}

/// The service (no socket) in front of `settings`, knowing the tutorial's three categories, as
/// its catalog follower finds them at a server that speaks only the tutorial's API.
pub async fn service_for(settings: &Settings) -> Service {
    let state =
        state(settings.clone(), |s, metrics| Client::new(&s.recommendations, metrics).unwrap())
            .await;
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
    let state = state(settings, |s, metrics| {
        Client::with_resolver(&s.recommendations, resolver, metrics).unwrap()
    })
    .await;
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

    async fn of(response: reqwest::Response) -> reqwest::Result<Reply> {
        let headers = response.headers().iter();
        let headers = headers
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Ok(Reply { status: response.status().as_u16(), headers, body: response.text().await? })
    }
}

/// One GET over a connection of its own.
pub async fn get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
    let reply = try_get(addr, path_and_query, headers).await;
    reply.unwrap_or_else(|error| panic!("GET {path_and_query}: {error}"))
}

pub async fn try_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Result<Reply> {
    Reply::of(KeptAlive::open().send(addr, path_and_query, headers).await?).await
}

/// A client whose HTTP/1.1 connection is kept open across requests, as browsers keep them.
pub struct KeptAlive(reqwest::Client);

impl KeptAlive {
    pub fn open() -> KeptAlive {
        KeptAlive(
            reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).build().unwrap(),
        )
    }

    pub async fn get(&self, addr: SocketAddr, path_and_query: &str) -> reqwest::Result<Reply> {
        Reply::of(self.send(addr, path_and_query, &[]).await?).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let request = headers.iter().fold(
            self.0.get(format!("http://{addr}{path_and_query}")),
            |request, (name, value)| request.header(*name, *value),
        );
        request.send().await
    }
}

/// The book titles on a page, in order.
pub fn titles(html: &str) -> Vec<String> {
    let titles = html.split("<span class=\"book-title\">").skip(1);
    titles
        .filter_map(|rest| rest.split_once("</span>").map(|(title, _)| title.to_owned()))
        .collect()
}

/// The covers on a page, in order: each one's colour class (`cover-N`) and its initials.
pub fn covers(html: &str) -> Vec<(String, String)> {
    let cover = |rest: &str| {
        let (class, rest) = rest.split_once('"')?;
        let (initials, _) = rest.split_once('>')?.1.split_once("</span>")?;
        Some((class.to_owned(), initials.to_owned()))
    };
    html.split("<span class=\"cover ").skip(1).filter_map(cover).collect()
}

/// An open `GET /events` stream, read as a browser's EventSource reads it (comments and
/// `retry:` skipped).
pub struct EventStream {
    pub status: u16,
    pub content_type: String,
    events: std::pin::Pin<Box<dyn Stream<Item = eventsource_stream::Event> + Send>>,
}

impl EventStream {
    pub async fn open(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Self {
        let response =
            KeptAlive::open().send(addr, path_and_query, headers).await.expect("GET /events");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status().as_u16();
        let events = response
            .bytes_stream()
            .eventsource()
            .filter_map(|event| std::future::ready(event.ok()));
        let events = events.boxed();
        EventStream { status, content_type, events }
    }

    /// The next event, or `None` when the stream ended; panics after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<eventsource_stream::Event> {
        let next = tokio::time::timeout(limit, self.events.next()).await;
        next.unwrap_or_else(|_| panic!("no event within {limit:?}"))
    }

    /// Reads until the server ends the stream; false after `limit`.
    pub async fn ended(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async { while self.events.next().await.is_some() {} })
            .await
            .is_ok()
    }
}
