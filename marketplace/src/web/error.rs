//! What a request can fail with, written as a page or (under `/api/`) JSON, never with internals.

use std::sync::Arc;

use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Depot, Request, Response, Writer, async_trait, writing::Json};
use serde_json::json;

use crate::web::pages::{self, ErrorPage, Layout, href};
use crate::web::{AppState, language, no_store, params::ParamError, params::Params};
use crate::{book::Book, book::MAX_RESULTS, i18n::LangChoice, recommendations::CallError};

pub type AppResult<T = ()> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    BadParameter(#[from] ParamError),
    /// A category without books: the page's empty state, a 404 in the JSON API.
    #[error("no books in category {0:?} yet")]
    NoBooks(Arc<str>),
    /// What the page showed (category, the parameters its links keep), the books last served.
    #[error("recommendations are temporarily unavailable")]
    Unavailable { category: Arc<str>, kept: Params, last_books: Vec<Book> },
    /// No such page (404), a method not allowed (405), or another status without a body.
    #[error("{}", .0.canonical_reason().unwrap_or("the request could not be completed"))]
    Http(StatusCode),
}

impl AppError {
    pub fn from_call(error: CallError, category: Arc<str>, kept: Params, books: Vec<Book>) -> Self {
        match error {
            CallError::NotFound => Self::NoBooks(category),
            _ => Self::Unavailable { category, kept, last_books: books },
        }
    }

    /// The status, and a stable code for JSON clients.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::NoBooks(_) => (StatusCode::NOT_FOUND, "no_books"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Http(StatusCode::NOT_FOUND) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Http(status @ StatusCode::METHOD_NOT_ALLOWED) => (*status, "method_not_allowed"),
            Self::Http(status) => (*status, "error"),
        }
    }

    /// `{"error": {"status", "code", "message"}}`, and a parameter's name, value, valid values.
    fn json(&self, res: &mut Response) {
        let (status, code) = self.status();
        let mut error =
            json!({ "status": status.as_u16(), "code": code, "message": self.to_string() });
        if let Self::BadParameter(param) = self {
            error["parameter"] = param.parameter().into();
            error["value"] = param.value().into();
            error["valid_values"] = param.valid_values().into();
        }
        no_store(res);
        res.render(Json(json!({ "error": error })));
    }

    /// The page; an unknown category's or unavailable one follows the catalog (live): it may mend.
    fn page(self, choice: LangChoice, state: &AppState, res: &mut Response) {
        let (t, categories) = (choice.lang.texts(), state.categories.borrow().clone());
        let status = self.status().0;
        let title = match &self {
            Self::BadParameter(_) => t.bad_request_title,
            Self::NoBooks(_) | Self::Http(StatusCode::NOT_FOUND) => t.not_found_title,
            Self::Unavailable { .. } => t.unavailable_title,
            Self::Http(StatusCode::METHOD_NOT_ALLOWED) => t.method_not_allowed_title,
            Self::Http(_) => t.other_error_title,
        };
        let (current, kept) = match &self {
            Self::Unavailable { category, kept, .. } => (Some(&**category), kept.clone()),
            _ => (None, Params::default()),
        };
        let layout = Layout::new(choice, &categories, current, &kept, title);
        let mut page = ErrorPage {
            action: (layout.home_href.clone(), t.back_home),
            layout,
            warning: false,
            message: t.other_error_body,
            value: None,
            categories: Vec::new(),
            valid: None,
            stale: None,
        };
        match self {
            Self::BadParameter(param) => {
                page.value = Some(param.value().to_owned());
                (page.message, page.valid) = match param {
                    ParamError::UnknownCategory(..) => {
                        page.categories = page.layout.categories.clone();
                        page.layout.live = true;
                        (t.bad_category, None)
                    }
                    ParamError::MalformedMaxResults(_) => {
                        let (min, max) = (MAX_RESULTS.start(), MAX_RESULTS.end());
                        let valid = t.valid_max_results.replace("{min}", &min.to_string());
                        (t.bad_max_results, Some(valid.replace("{max}", &max.to_string())))
                    }
                    ParamError::InvalidUserId(_) => {
                        let valid = t.valid_user_id.replace("{max}", &i32::MAX.to_string());
                        (t.bad_user_id, Some(valid))
                    }
                };
            }
            Self::NoBooks(_) => page.message = t.empty,
            Self::Unavailable { category, kept, last_books } => {
                let stale = !last_books.is_empty();
                page.message = if stale { t.stale_body } else { t.unavailable_body };
                (page.warning, page.layout.live) = (true, true);
                page.action = (href("/", Some(&category), &kept, choice.in_links()), t.try_again);
                let heading = categories.name(&category, choice.lang).to_owned();
                page.stale = stale.then_some((heading, last_books));
            }
            Self::Http(StatusCode::NOT_FOUND) => page.message = t.not_found_body,
            Self::Http(StatusCode::METHOD_NOT_ALLOWED) => page.message = t.method_not_allowed_body,
            Self::Http(_) => {}
        }
        pages::send(res, status, choice.lang, page);
    }
}

#[async_trait]
impl Writer for AppError {
    async fn write(self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        res.status_code(self.status().0);
        let Ok(state) = depot.get_typed::<Arc<AppState>>() else { return self.json(res) };
        if matches!(self, Self::Unavailable { .. }) {
            let retry_after = HeaderValue::from(state.retry_after_secs);
            res.headers_mut().insert(header::RETRY_AFTER, retry_after);
        }
        match req.uri().path().starts_with("/api/") {
            true => self.json(res),
            false => self.page(language(req), state, res),
        }
    }
}
