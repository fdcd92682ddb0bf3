//! The `Recommend` RPC: request rules, selection, and the one mapping of errors to `Status`.

use std::{sync::Arc, time::Instant};

use bookshop_proto::{
    BookCategory, BookRecommendation, RecommendationRequest, RecommendationResponse,
    recommendations_server::Recommendations,
};
use tonic::{Request, Response, Status};

use crate::{
    metrics::Metrics,
    selection::{Selection, pick},
    settings::RecommendSettings,
    store::CatalogStore,
};

/// Why a `Recommend` call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecommendError {
    /// The category is outside the enum, or the catalog has no books in it (as the seed).
    #[error("Category not found")]
    CategoryNotFound,
    /// `max_results` is negative.
    #[error("max_results must not be negative, got {0}")]
    NegativeMaxResults(i32),
    /// No catalog has been loaded yet (only during start-up).
    #[error("the catalog is not loaded yet")]
    NotReady,
}

impl From<RecommendError> for Status {
    fn from(error: RecommendError) -> Status {
        let message = error.to_string();
        match error {
            RecommendError::CategoryNotFound => Status::not_found(message),
            RecommendError::NegativeMaxResults(_) => Status::invalid_argument(message),
            RecommendError::NotReady => Status::unavailable(message),
        }
    }
}

/// The service: a catalog snapshot per call, and the `[recommend]` rules.
#[derive(Debug, Clone)]
pub struct RecommendationService {
    store: CatalogStore,
    rules: RecommendSettings,
    metrics: Arc<Metrics>,
}

impl RecommendationService {
    /// A service answering from `store` under `rules`, counting its calls in `metrics`.
    pub fn new(store: CatalogStore, rules: RecommendSettings, metrics: Arc<Metrics>) -> Self {
        RecommendationService {
            store,
            rules,
            metrics,
        }
    }

    /// The RPC's logic, without transport concerns.
    pub fn recommend(
        &self,
        request: &RecommendationRequest,
    ) -> Result<RecommendationResponse, RecommendError> {
        let count = match request.max_results {
            n if n < 0 => return Err(RecommendError::NegativeMaxResults(n)),
            0 => self.rules.default_max_results,
            n => n.unsigned_abs().min(self.rules.max_results_cap),
        } as usize;
        let category = BookCategory::try_from(request.category)
            .map_err(|_| RecommendError::CategoryNotFound)?;
        // One snapshot for the whole call: a concurrent reload never mixes two catalogs.
        let catalog = self.store.current().ok_or(RecommendError::NotReady)?;
        let books = catalog.books(category);
        if books.is_empty() {
            return Err(RecommendError::CategoryNotFound);
        }
        let picked = pick(
            books,
            count,
            self.rules.selection,
            request.user_id,
            category,
            catalog.content_hash(),
        );
        Ok(RecommendationResponse {
            recommendations: picked
                .into_iter()
                .map(|book| BookRecommendation {
                    id: book.id,
                    title: book.title.clone(),
                    author: book.author.clone().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// The selection mode in use.
    pub fn selection(&self) -> Selection {
        self.rules.selection
    }
}

#[tonic::async_trait]
impl Recommendations for RecommendationService {
    async fn recommend(
        &self,
        request: Request<RecommendationRequest>,
    ) -> Result<Response<RecommendationResponse>, Status> {
        let started = Instant::now();
        let (metadata, _, message) = request.into_parts();
        let result = RecommendationService::recommend(self, &message);
        let elapsed = started.elapsed();
        let (code, books) = match &result {
            Ok(response) => (tonic::Code::Ok, response.recommendations.len()),
            Err(error) => (Status::from(error.clone()).code(), 0),
        };
        self.metrics.observe_call("Recommend", code, elapsed);
        // One access line per call, carrying the caller's request id so that a request can be
        // followed from the Marketplace's log into this one. Answered calls are logged at
        // `debug` (writing a line per call would cost a third of a call's time); failures and
        // slow calls at `info`. (The fields are only evaluated when the line is logged.)
        macro_rules! access {
            ($level:expr) => {
                tracing::event!(
                    target: ACCESS_LOG_TARGET,
                    $level,
                    request_id = metadata_text(&metadata, REQUEST_ID_HEADER).unwrap_or("-"),
                    traceparent = metadata_text(&metadata, TRACEPARENT_HEADER).unwrap_or("-"),
                    method = "Recommend",
                    category = message.category,
                    max_results = message.max_results,
                    user_id = message.user_id,
                    code = bookshop_proto::code_name(code),
                    books,
                    latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    error = result.as_ref().err().map(tracing::field::display),
                )
            };
        }
        if code != tonic::Code::Ok || elapsed >= bookshop_common::logging::SLOW {
            access!(tracing::Level::INFO);
        } else {
            access!(tracing::Level::DEBUG);
        }
        result.map(Response::new).map_err(Status::from)
    }
}

/// The `tracing` target of the access lines: `RUST_LOG=info,recommendations::access=debug` logs
/// every call, not only failed and slow ones.
pub const ACCESS_LOG_TARGET: &str = "recommendations::access";

/// The metadata key that carries a request id from the caller (the Marketplace sends it).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The W3C trace context header, passed through by the Marketplace when its caller sent one.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A metadata value as text, if present and [loggable](bookshop_common::loggable_id) (anything
/// else is left out of the log rather than logged).
fn metadata_text<'a>(metadata: &'a tonic::metadata::MetadataMap, key: &str) -> Option<&'a str> {
    let value = metadata.get(key)?.to_str().ok()?;
    bookshop_common::loggable_id(value.as_bytes()).then_some(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::catalog::Catalog;

    fn service(books_in_mystery: i32) -> RecommendationService {
        let mut text = String::from("[[self_help]]\nid = 1000\ntitle = \"S\"\n");
        for id in 1..=books_in_mystery {
            text.push_str(&format!("[[mystery]]\nid = {id}\ntitle = \"M{id}\"\n"));
        }
        let store = CatalogStore::default();
        store.replace(Arc::new(Catalog::from_toml_str(&text, "t").unwrap()));
        RecommendationService::new(store, RecommendSettings::default(), Arc::default())
    }

    fn ask(
        service: &RecommendationService,
        category: i32,
        max_results: i32,
    ) -> Result<usize, RecommendError> {
        service
            .recommend(&RecommendationRequest {
                user_id: 1,
                category,
                max_results,
            })
            .map(|r| r.recommendations.len())
    }

    /// Everything a `tracing` subscriber writes, for tests that read the log.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What one call to `service` logs with the given level enabled.
    async fn log_of(request: Request<RecommendationRequest>, level: tracing::Level) -> String {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let _ = Recommendations::recommend(&service(3), request).await;
        String::from_utf8(log.0.lock().unwrap().clone()).unwrap()
    }

    fn request(category: i32) -> Request<RecommendationRequest> {
        Request::new(RecommendationRequest {
            user_id: 1,
            category,
            max_results: 2,
        })
    }

    #[tokio::test]
    async fn the_access_line_carries_the_callers_request_id_and_traceparent() {
        const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut request = request(0);
        let metadata = request.metadata_mut();
        metadata.insert(REQUEST_ID_HEADER, "req-7".parse().unwrap());
        metadata.insert(TRACEPARENT_HEADER, TRACEPARENT.parse().unwrap());
        let text = log_of(request, tracing::Level::DEBUG).await;
        let line = text
            .lines()
            .find(|l| l.contains(ACCESS_LOG_TARGET))
            .unwrap_or_else(|| panic!("no access line in {text:?}"));
        for field in [
            "DEBUG".to_owned(),
            "request_id=\"req-7\"".to_owned(),
            format!("traceparent=\"{TRACEPARENT}\""),
            "code=\"OK\"".to_owned(),
            "books=2".to_owned(),
        ] {
            assert!(line.contains(&field), "{field} missing in {line}");
        }
    }

    #[tokio::test]
    async fn by_default_only_failed_calls_are_logged() {
        let answered = log_of(request(0), tracing::Level::INFO).await;
        assert!(!answered.contains(ACCESS_LOG_TARGET), "{answered}");
        let failed = log_of(request(7), tracing::Level::INFO).await;
        assert!(
            failed.contains("INFO") && failed.contains("code=\"NOT_FOUND\""),
            "{failed}"
        );
    }

    #[test]
    fn zero_max_results_means_the_default_of_three() {
        assert_eq!(ask(&service(10), 0, 0), Ok(3));
    }

    #[test]
    fn max_results_is_capped_at_fifty_and_at_the_category_size() {
        assert_eq!(ask(&service(80), 0, 1000), Ok(50));
        assert_eq!(ask(&service(80), 0, i32::MAX), Ok(50));
        assert_eq!(ask(&service(4), 0, 10), Ok(4));
        assert_eq!(ask(&service(4), 0, 2), Ok(2));
    }

    #[test]
    fn negative_max_results_is_invalid() {
        assert_eq!(
            ask(&service(4), 0, -1),
            Err(RecommendError::NegativeMaxResults(-1))
        );
        let status = Status::from(RecommendError::NegativeMaxResults(-1));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_unknown_or_empty_category_is_not_found() {
        assert_eq!(
            ask(&service(4), 7, 3),
            Err(RecommendError::CategoryNotFound)
        );
        assert_eq!(
            ask(&service(4), -1, 3),
            Err(RecommendError::CategoryNotFound)
        );
        // science_fiction has no books in this catalog.
        assert_eq!(
            ask(&service(4), 1, 3),
            Err(RecommendError::CategoryNotFound)
        );
        let status = Status::from(RecommendError::CategoryNotFound);
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::NotFound, "Category not found")
        );
    }

    #[test]
    fn without_a_catalog_the_service_is_unavailable() {
        let service = RecommendationService::new(
            CatalogStore::default(),
            RecommendSettings::default(),
            Arc::default(),
        );
        assert_eq!(ask(&service, 0, 3), Err(RecommendError::NotReady));
        assert_eq!(
            Status::from(RecommendError::NotReady).code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn answers_carry_id_title_and_author() {
        let store = CatalogStore::default();
        let text = "[[mystery]]\nid = 5\ntitle = \"T\"\nauthor = \"A\"\n";
        store.replace(Arc::new(Catalog::from_toml_str(text, "t").unwrap()));
        let service =
            RecommendationService::new(store, RecommendSettings::default(), Arc::default());
        let response = service
            .recommend(&RecommendationRequest::default())
            .unwrap();
        assert_eq!(
            response.recommendations,
            vec![BookRecommendation {
                id: 5,
                title: "T".into(),
                author: "A".into()
            }]
        );
    }
}
