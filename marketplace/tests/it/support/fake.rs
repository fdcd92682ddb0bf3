//! A fake Recommendations: the tutorial's API only, answering from a script.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bookshop_proto::{
    BookRecommendation, RecommendationRequest, RecommendationResponse,
    recommendations_server::{Recommendations, RecommendationsServer},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use tonic_health::server::HealthReporter;

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
/// Each request, with its `x-request-id`, `traceparent` and `grpc-timeout`.
type Received = Vec<(RecommendationRequest, [String; 3])>;

#[derive(Debug, Clone)]
pub struct FakeRecommendations {
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Received>>,
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
