//! `spawn_app` and friends: start the real service through the library and talk to it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub use bookshop_common::serve::App;
use bookshop_proto::{
    BookRecommendation, RecommendationRequest, recommendations_client::RecommendationsClient,
};
use bookshop_testing::Spawned;
pub use bookshop_testing::eventually;
use recommendations::{Application, StartError, settings::Settings};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long tests wait for something that should happen "soon" (a reload is served in well under
/// a second; the margin absorbs a loaded CI machine).
pub const SOON: Duration = Duration::from_secs(5);

pub const MYSTERY: i32 = 0;
pub const SCIENCE_FICTION: i32 = 1;
pub const SELF_HELP: i32 = 2;

/// A catalog with the given mystery titles (ids 1..), and one self-help book (id 1000).
pub fn catalog_with(mystery: &[impl AsRef<str>]) -> String {
    let mut text = String::from("[[self_help]]\nid = 1000\ntitle = \"Help\"\n");
    for (i, title) in mystery.iter().enumerate() {
        text.push_str(&format!(
            "\n[[mystery]]\nid = {}\ntitle = \"{}\"\nauthor = \"Author {}\"\n",
            i + 1,
            title.as_ref(),
            i + 1
        ));
    }
    text
}

/// The books one `Recommend` call through `client` returns.
pub async fn recommend(
    client: &mut RecommendationsClient<Channel>,
    user_id: i32,
    category: i32,
    max_results: i32,
) -> Result<Vec<BookRecommendation>, tonic::Status> {
    let response =
        client.recommend(RecommendationRequest { user_id, category, max_results }).await?;
    Ok(response.into_inner().recommendations)
}

/// The titles of `books`, in order.
pub fn titles_of(books: Vec<BookRecommendation>) -> Vec<String> {
    books.into_iter().map(|b| b.title).collect()
}

/// `expected` as owned, sorted titles, to compare with [`TestApp::mystery_titles`].
pub fn sorted(expected: &[impl AsRef<str>]) -> Vec<String> {
    let mut sorted: Vec<String> = expected.iter().map(|s| s.as_ref().to_owned()).collect();
    sorted.sort();
    sorted
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The plaintext health listener, when `server.health_port` is set.
    pub health_addr: Option<SocketAddr>,
    /// The metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    pub dir: TempDir,
    pub catalog: PathBuf,
    running: Spawned<StartError>,
}

/// Starts the service on a free port with `catalog` as its catalog, and waits until it is SERVING.
pub async fn spawn_app(catalog: &str) -> TestApp {
    spawn_app_with(catalog, |_| {}).await
}

pub async fn spawn_app_with(catalog: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, catalog).unwrap();
    let app = start(dir, path, configure).await;
    app.wait_until_serving().await;
    app
}

/// Builds the service on `127.0.0.1:0` with `configure`d settings, expecting it to fail.
pub async fn start_up_error(configure: impl FnOnce(&mut Settings)) -> StartError {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    configure(&mut settings);
    Application::build(settings).await.unwrap_err()
}

/// Starts the service on `127.0.0.1:0` without waiting for it to be ready (the catalog file
/// may not exist yet).
pub async fn start(
    dir: TempDir,
    catalog: PathBuf,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.metrics.port = 0;
    settings.catalog.path = catalog.clone();
    configure(&mut settings);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::with_listener(settings, listener).await.unwrap();
    TestApp {
        addr: app.local_addr(),
        health_addr: app.health_addr(),
        metrics_addr: app.metrics_addr(),
        dir,
        catalog,
        running: Spawned::new(|stop| app.run_until_stopped(stop)),
    }
}

/// A server still loading its catalog when this returns: the most books a catalog may hold, with
/// long titles, take a debug build seconds to load (with watching off).
pub async fn loading_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    let title = "A long title, so that the catalog takes a while to load ".repeat(2);
    let books = recommendations::catalog::MAX_BOOKS;
    let book = |id| format!("[[mystery]]\nid = {id}\ntitle = \"{title}{id}\"\n");
    std::fs::write(&path, (1..=books).map(book).collect::<String>()).unwrap();
    start(dir, path, |s| s.catalog.watch = recommendations::watch::WatchMode::Off).await
}

/// A client connected to the server at `addr`.
pub async fn connect(addr: SocketAddr) -> RecommendationsClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    RecommendationsClient::new(channel)
}

impl TestApp {
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> RecommendationsClient<Channel> {
        RecommendationsClient::new(self.channel().await)
    }

    /// Books returned for one `Recommend` call, on a new connection.
    pub async fn books(
        &self,
        user_id: i32,
        category: i32,
        max_results: i32,
    ) -> Result<Vec<BookRecommendation>, tonic::Status> {
        recommend(&mut self.client().await, user_id, category, max_results).await
    }

    /// Titles returned for one `Recommend` call for user 1.
    pub async fn titles(
        &self,
        category: i32,
        max_results: i32,
    ) -> Result<Vec<String>, tonic::Status> {
        Ok(titles_of(self.books(1, category, max_results).await?))
    }

    /// Sorted titles of all mystery books (asks for up to 50).
    pub async fn mystery_titles(&self) -> Vec<String> {
        let mut titles = self.titles(MYSTERY, 50).await.unwrap();
        titles.sort();
        titles
    }

    /// Polls until the mystery titles are exactly `expected` (in any order), or panics after
    /// [`SOON`].
    pub async fn wait_for_titles(&self, expected: &[impl AsRef<str>]) {
        let expected = sorted(expected);
        let mut last = Vec::new();
        let done = eventually(SOON, async || {
            last = self.mystery_titles().await;
            last == expected
        })
        .await;
        assert!(done, "expected {expected:?}, still serving {last:?}");
    }

    /// Polls for `period` and panics, with `why`, if the mystery titles are ever other than
    /// `expected` (in any order).
    pub async fn assert_keeps_serving(&self, expected: &[&str], period: Duration, why: &str) {
        let expected = sorted(expected);
        let mut last = Vec::new();
        let changed = eventually(period, async || {
            last = self.mystery_titles().await;
            last != expected
        })
        .await;
        assert!(!changed, "{why}: expected {expected:?}, served {last:?}");
    }

    /// Changes the catalog file with `write` (such as [`save_by_rename`] or
    /// [`write_in_place`]) to these mystery titles, and waits until they are served.
    pub async fn edit_catalog(&self, write: fn(&Path, &str), mystery: &[impl AsRef<str>]) {
        write(&self.catalog, &catalog_with(mystery));
        self.wait_for_titles(mystery).await;
    }

    pub async fn health(&self, service: &str) -> Result<ServingStatus, tonic::Status> {
        let channel = match self.health_addr {
            Some(addr) => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?,
            None => self.channel().await,
        };
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest { service: service.into() })
            .await?;
        Ok(response.into_inner().status())
    }

    /// Waits for the catalog to load, which [`loading_app`]'s takes seconds to.
    pub async fn wait_until_serving(&self) {
        let serving = async || matches!(self.health("").await, Ok(ServingStatus::Serving));
        let done = eventually(Duration::from_secs(30), serving).await;
        assert!(done, "the service did not become SERVING");
    }

    /// `GET /metrics` from the metrics listener, as text.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics_addr.expect("metrics are enabled");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// The value of the metric line that starts with `prefix` (name and labels), or 0.
    pub async fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends the stop signal and returns how the server ended.
    pub async fn stop(self) -> Result<(), StartError> {
        self.running.stop(SOON).await
    }

    /// Waits for the server task to end on its own (for start-up failures).
    pub async fn ended(self) -> Result<(), StartError> {
        self.running.ended(SOON).await
    }
}

/// Replaces `path` the way editors and `sed -i` do: write a temporary file, rename it over.
pub fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes `path` in place (same inode), as `echo > file` or a bind-mounted file's host edit.
pub fn write_in_place(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}
