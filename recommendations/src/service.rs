//! `Recommend` in both APIs, the tutorial's (its `BookCategory` enum) and the catalog's (by key).

use std::{sync::Arc, time::Instant};

use bookshop_common::telemetry;
use bookshop_proto::catalog::{self as api, catalog_server};
use bookshop_proto::{BookCategory, BookRecommendation, recommendations_server::Recommendations};
use bookshop_proto::{MAX_PAGE_BOOKS, RecommendationRequest, RecommendationResponse};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::catalog::{Book, Catalog, Category, LANGUAGES, Store};
use crate::{metrics::Metrics, selection::pick, settings::RecommendSettings};

/// `RUST_LOG=info,recommendations::access=debug` logs every call, not only failed and slow ones.
pub const ACCESS_LOG_TARGET: &str = "recommendations::access";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecommendError {
    /// Not a category the catalog has (in the tutorial's API, outside the enum).
    #[error("Category not found")]
    CategoryNotFound,
    #[error("max_results must not be negative, got {0}")]
    NegativeMaxResults(i32),
    /// Only during start-up.
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

#[derive(Debug, Clone)]
pub struct RecommendationService {
    pub store: Store,
    pub rules: RecommendSettings,
    pub metrics: Arc<Metrics>,
}

struct Call<'a> {
    method: &'static str,
    category: &'a str,
    user_id: i32,
    max_results: i32,
}

impl RecommendationService {
    /// Both APIs: up to `max_results` books (0: default; capped) of `key`, `keep`'s first.
    pub fn recommend(
        &self,
        user_id: i32,
        key: Option<&str>,
        max_results: i32,
        keep: &[i32],
    ) -> Result<(Vec<Book>, Arc<Catalog>), RecommendError> {
        let count = match max_results {
            n if n < 0 => return Err(RecommendError::NegativeMaxResults(n)),
            0 => self.rules.default_max_results,
            n => n.unsigned_abs().min(self.rules.max_results_cap),
        } as usize;
        let key = key.ok_or(RecommendError::CategoryNotFound)?;
        let catalog = self.store.borrow().clone().ok_or(RecommendError::NotReady)?;
        let books = catalog.books(key);
        if books.is_empty() {
            return Err(RecommendError::CategoryNotFound);
        }
        let keep = &keep[..keep.len().min(MAX_PAGE_BOOKS)];
        let (selection, hash) = (self.rules.selection, catalog.content_hash());
        let drawn = pick(books, count + keep.len(), selection, user_id, key, hash);
        let kept = keep.iter().filter_map(|id| books.iter().find(|book| book.id == *id));
        let mut answer: Vec<Book> = Vec::with_capacity(count);
        for book in kept.chain(drawn) {
            if answer.len() < count && answer.iter().all(|chosen| chosen.id != book.id) {
                answer.push(book.clone());
            }
        }
        Ok((answer, catalog))
    }

    /// Runs a call: metrics, a span while traces are on, an access line (`info` if failed or slow).
    fn observe<T>(
        &self,
        metadata: &MetadataMap,
        call: Call<'_>,
        answer: impl FnOnce() -> Result<(T, usize), RecommendError>,
    ) -> Result<Response<T>, Status> {
        let span = server_span(metadata, &call);
        let _inside = span.enter();
        let started = Instant::now();
        let result = answer();
        let elapsed = started.elapsed();
        let (code, books) = match &result {
            Ok((_, books)) => (tonic::Code::Ok, *books),
            Err(error) => (Status::from(error.clone()).code(), 0),
        };
        span.record("rpc.grpc.status_code", bookshop_proto::code_name(code));
        span.record("books", i64::try_from(books).unwrap_or(i64::MAX));
        if code != tonic::Code::Ok {
            span.record("otel.status_code", "error");
        }
        self.metrics.observe_call(call.method, code, elapsed);
        macro_rules! access {
            ($level:expr) => {
                tracing::event!(
                    target: ACCESS_LOG_TARGET,
                    $level,
                    request_id = loggable(metadata, REQUEST_ID_HEADER).unwrap_or("-"),
                    traceparent = loggable(metadata, telemetry::TRACEPARENT).unwrap_or("-"),
                    method = call.method,
                    category = call.category,
                    max_results = call.max_results,
                    user_id = call.user_id,
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
        result.map(|(answer, _)| Response::new(answer)).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Recommendations for RecommendationService {
    async fn recommend(
        &self,
        request: Request<RecommendationRequest>,
    ) -> Result<Response<RecommendationResponse>, Status> {
        let (metadata, _, RecommendationRequest { user_id, category, max_results }) =
            request.into_parts();
        // The enum's three values are the tutorial's keys; anything else is not found.
        let key = BookCategory::try_from(category).ok().map(BookCategory::key);
        let name = key.map_or_else(|| category.to_string(), str::to_owned);
        let call = Call { method: "Recommend", category: &name, user_id, max_results };
        self.observe(&metadata, call, || {
            let (books, _) = self.recommend(user_id, key, max_results, &[])?;
            let recommendations: Vec<_> = books.into_iter().map(BookRecommendation::from).collect();
            let count = recommendations.len();
            Ok((RecommendationResponse { recommendations }, count))
        })
    }
}

#[tonic::async_trait]
impl catalog_server::Catalog for RecommendationService {
    async fn list_categories(
        &self,
        request: Request<api::ListCategoriesRequest>,
    ) -> Result<Response<api::ListCategoriesResponse>, Status> {
        let call = Call { method: "ListCategories", category: "-", user_id: 0, max_results: 0 };
        self.observe(request.metadata(), call, || {
            let catalog = self.store.borrow().clone().ok_or(RecommendError::NotReady)?;
            let categories = catalog.categories().iter().map(api::Category::from).collect();
            Ok((api::ListCategoriesResponse { categories, version: catalog.version() }, 0))
        })
    }

    async fn recommend(
        &self,
        request: Request<api::RecommendRequest>,
    ) -> Result<Response<api::RecommendResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let api::RecommendRequest { user_id, category, max_results, lang, keep } = message;
        let logged = clipped(&category);
        let call = Call { method: "Catalog/Recommend", category: &logged, user_id, max_results };
        self.observe(&metadata, call, || {
            let (books, catalog) = self.recommend(user_id, Some(&category), max_results, &keep)?;
            let books: Vec<_> = books.iter().map(|book| api_book(book, &lang)).collect();
            let count = books.len();
            // The version of the snapshot the books came from, not of whatever is in service now.
            Ok((api::RecommendResponse { books, version: catalog.version() }, count))
        })
    }
}

impl From<Book> for BookRecommendation {
    fn from(book: Book) -> Self {
        Self { id: book.id, title: book.title, author: book.author.unwrap_or_default() }
    }
}

/// In the language tagged `lang`, where the catalog gives it.
fn api_book(book: &Book, lang: &str) -> api::Book {
    let (title, author) = book.in_language(lang);
    api::Book { id: book.id, title: title.to_owned(), author: author.unwrap_or_default().into() }
}

impl From<&Category> for api::Category {
    fn from(category: &Category) -> Self {
        let names = LANGUAGES.map(String::from).into_iter().zip(category.names.clone()).collect();
        let books = u32::try_from(category.books.len()).unwrap_or(u32::MAX);
        api::Category { key: category.key.clone(), names, books }
    }
}

/// A call's server span while traces are on, a child of the caller's `traceparent`.
fn server_span(metadata: &MetadataMap, call: &Call<'_>) -> tracing::Span {
    if !telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "call",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.kind = "server",
        otel.name = call.method,
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.method = call.method,
        category = call.category,
        rpc.grpc.status_code = tracing::field::Empty,
        books = tracing::field::Empty,
    );
    let header = |key| metadata.get(key).and_then(|value| value.to_str().ok());
    telemetry::continue_from(&span, header(telemetry::TRACEPARENT), header(telemetry::TRACESTATE));
    span
}

/// A category key as logged: one longer than any valid key is cut, saying how long it was.
fn clipped(key: &str) -> std::borrow::Cow<'_, str> {
    match key.char_indices().nth(bookshop_proto::MAX_CATEGORY_KEY_CHARS) {
        Some((end, _)) => format!("{}… (cut, {} bytes)", &key[..end], key.len()).into(),
        None => key.into(),
    }
}

/// A metadata value that may be logged as it is (anything else is left out of the log).
fn loggable<'a>(metadata: &'a MetadataMap, key: &str) -> Option<&'a str> {
    let value = metadata.get(key)?.to_str().ok()?;
    bookshop_common::loggable_id(value.as_bytes()).then_some(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn serving(text: &str) -> RecommendationService {
        let catalog = Catalog::from_toml_str(text, "t").unwrap();
        let store = Store::new(Some(Arc::new(catalog)));
        RecommendationService {
            store,
            rules: RecommendSettings::default(),
            metrics: Arc::default(),
        }
    }

    fn service(books_in_mystery: i32) -> RecommendationService {
        let mut text = String::from("[[self_help]]\nid = 1000\ntitle = \"S\"\n");
        for id in 1..=books_in_mystery {
            text.push_str(&format!("[[mystery]]\nid = {id}\ntitle = \"M{id}\"\n"));
        }
        serving(&text)
    }

    /// How many books the seed's API answers for the enum value `category`.
    fn ask(
        service: &RecommendationService,
        category: i32,
        max_results: i32,
    ) -> Result<usize, RecommendError> {
        let key = BookCategory::try_from(category).ok().map(BookCategory::key);
        service.recommend(1, key, max_results, &[]).map(|(books, _)| books.len())
    }

    /// What one call to `service` logs with the given level enabled.
    async fn log_of(request: Request<RecommendationRequest>, level: tracing::Level) -> String {
        let log = bookshop_testing::CapturedLines::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let _ = Recommendations::recommend(&service(3), request).await;
        log.text()
    }

    fn request(category: i32) -> Request<RecommendationRequest> {
        Request::new(RecommendationRequest { user_id: 1, category, max_results: 2 })
    }

    #[tokio::test]
    async fn the_access_line_carries_the_callers_request_id_and_traceparent() {
        const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut request = request(0);
        let metadata = request.metadata_mut();
        metadata.insert(REQUEST_ID_HEADER, "req-7".parse().unwrap());
        metadata.insert(telemetry::TRACEPARENT, TRACEPARENT.parse().unwrap());
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
        assert!(failed.contains("INFO") && failed.contains("code=\"NOT_FOUND\""), "{failed}");
    }

    #[tokio::test]
    async fn a_long_category_key_is_logged_cut() {
        let log = bookshop_testing::CapturedLines::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let ask = api::RecommendRequest { category: "k".repeat(16_384), ..Default::default() };
        let _ = catalog_server::Catalog::recommend(&service(3), Request::new(ask)).await;
        let text = log.text();
        assert!(text.contains("… (cut, 16384 bytes)") && text.len() < 1000, "{text}");
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
        assert_eq!(ask(&service(4), 0, -1), Err(RecommendError::NegativeMaxResults(-1)));
        let status = Status::from(RecommendError::NegativeMaxResults(-1));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_unknown_or_empty_category_is_not_found() {
        assert_eq!(ask(&service(4), 7, 3), Err(RecommendError::CategoryNotFound));
        assert_eq!(ask(&service(4), -1, 3), Err(RecommendError::CategoryNotFound));
        // science_fiction has no books in this catalog.
        assert_eq!(ask(&service(4), 1, 3), Err(RecommendError::CategoryNotFound));
        let status = Status::from(RecommendError::CategoryNotFound);
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::NotFound, "Category not found")
        );
    }

    #[test]
    fn without_a_catalog_the_service_is_unavailable() {
        let service = RecommendationService {
            store: Store::new(None),
            rules: RecommendSettings::default(),
            metrics: Arc::default(),
        };
        assert_eq!(ask(&service, 0, 3), Err(RecommendError::NotReady));
        assert_eq!(Status::from(RecommendError::NotReady).code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn answers_carry_id_title_and_author() {
        // The tutorial's API answers the book's own title, whatever the languages it has.
        let service =
            serving("[[mystery]]\nid = 5\ntitle = \"T\"\nauthor = \"A\"\nen = { title = \"E\" }\n");
        let request = Request::new(RecommendationRequest::default());
        let response = Recommendations::recommend(&service, request).await.unwrap();
        assert_eq!(
            response.into_inner().recommendations,
            vec![BookRecommendation { id: 5, title: "T".into(), author: "A".into() }]
        );
    }

    #[tokio::test]
    async fn the_catalog_api_lists_categories_and_recommends_by_key() {
        use bookshop_proto::catalog::catalog_server::Catalog as _;
        let text = "[[poetry]]\nid = 1\ntitle = \"P\"\n\n[[mystery]]\nid = 2\ntitle = \"M\"\nen = { title = \"Mystery\" }\n\n[categories.poetry]\nru = \"Поэзия\"\n";
        let service = serving(text);
        let listed = service
            .list_categories(Request::new(api::ListCategoriesRequest {}))
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<&str> = listed.categories.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["poetry", "mystery"]);
        assert_eq!(listed.categories[0].names["en"], "Poetry");
        assert_eq!(listed.categories[0].names["ru"], "Поэзия");
        assert_eq!(listed.categories[1].names["ru"], "Детективы");
        assert_eq!(listed.version.len(), 16);
        let ask = |category: &str| api::RecommendRequest {
            user_id: 1,
            category: category.into(),
            ..Default::default()
        };
        let recommend =
            |request| catalog_server::Catalog::recommend(&service, Request::new(request));
        let poetry = recommend(ask("poetry")).await.unwrap();
        assert_eq!(poetry.into_inner().books[0].title, "P");
        let english = api::RecommendRequest { lang: "en".into(), ..ask("mystery") };
        assert_eq!(recommend(english).await.unwrap().into_inner().books[0].title, "Mystery");
        let missing = recommend(ask("history")).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        // The seed's API has no enum value for poetry, and its three keep working.
        assert_eq!(super::tests::ask(&service, 0, 0), Ok(1));
        assert_eq!(super::tests::ask(&service, 1, 0), Err(RecommendError::CategoryNotFound));
    }
}
