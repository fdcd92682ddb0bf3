//! Everything a request can fail with, and its one [`Writer`]: an HTML page in the visitor's
//! language, or under `/api/` a JSON body. Neither shows internals: the cause of a failed call
//! was logged where it happened, and the visitor only learns that it is a passing problem.

use std::sync::Arc;

use salvo::{
    Depot, Request, Response, Writer, async_trait,
    http::{HeaderValue, StatusCode, header},
    writing::Json,
};
use serde_json::json;

use crate::{
    book::{Book, MAX_RESULTS},
    i18n::LangChoice,
    recommendations::CallError,
    web::{
        AppState, language,
        pages::{self, ErrorPage, Layout, href},
        params::{ParamError, Params},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    BadParameter(#[from] ParamError),
    /// A category without books: the page's empty state, a 404 in the JSON API.
    #[error("no books in category {0:?} yet")]
    NoBooks(Arc<str>),
    /// What the page showed (its category and the parameters it keeps in links), and the books
    /// last served for it.
    #[error("recommendations are temporarily unavailable")]
    Unavailable { category: Arc<str>, kept: Params, last_books: Vec<Book> },
    #[error("no such page")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request could not be completed")]
    Http(StatusCode),
}

impl AppError {
    pub fn from_call(
        error: CallError,
        category: &Arc<str>,
        kept: Params,
        last_books: Vec<Book>,
    ) -> AppError {
        match error {
            CallError::NotFound => AppError::NoBooks(category.clone()),
            _ => AppError::Unavailable { category: category.clone(), kept, last_books },
        }
    }

    pub fn from_status(status: StatusCode) -> AppError {
        match status {
            StatusCode::NOT_FOUND => AppError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
            other => AppError::Http(other),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadParameter(_) => StatusCode::BAD_REQUEST,
            AppError::NoBooks(_) | AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Http(status) => *status,
        }
    }

    /// Stable, for JSON clients.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadParameter(_) => "invalid_parameter",
            AppError::NoBooks(_) => "no_books",
            AppError::Unavailable { .. } => "unavailable",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Http(_) => "error",
        }
    }

    /// `{"error": {"status", "code", "message", and for a parameter "parameter", "value",
    /// "valid_values"}}`.
    fn json(&self, res: &mut Response) {
        let mut error = json!({ "status": self.status().as_u16(), "code": self.code(), "message": self.to_string() });
        if let AppError::BadParameter(param) = self {
            error["parameter"] = param.parameter().into();
            error["value"] = param.value().into();
            error["valid_values"] = param.valid_values().into();
        }
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.render(Json(json!({ "error": error })));
    }

    fn page(self, choice: LangChoice, state: &AppState, res: &mut Response) {
        let (status, t) = (self.status(), choice.lang.texts());
        let categories = state.categories.borrow().clone();
        let (title, message) = match &self {
            AppError::BadParameter(ParamError::UnknownCategory(..)) => {
                (t.bad_request_title, t.bad_category)
            }
            AppError::BadParameter(ParamError::MalformedMaxResults(_)) => {
                (t.bad_request_title, t.bad_max_results)
            }
            AppError::BadParameter(ParamError::InvalidUserId(_)) => {
                (t.bad_request_title, t.bad_user_id)
            }
            AppError::NoBooks(_) => (t.not_found_title, t.empty),
            AppError::Unavailable { last_books, .. } if !last_books.is_empty() => {
                (t.unavailable_title, t.stale_body)
            }
            AppError::Unavailable { .. } => (t.unavailable_title, t.unavailable_body),
            AppError::NotFound => (t.not_found_title, t.not_found_body),
            AppError::MethodNotAllowed => (t.method_not_allowed_title, t.method_not_allowed_body),
            AppError::Http(_) => (t.other_error_title, t.other_error_body),
        };
        let (current, kept) = match &self {
            AppError::Unavailable { category, kept, .. } => (Some(category.clone()), kept.clone()),
            _ => (None, Params::default()),
        };
        let layout = Layout::new(choice, &categories, current.as_deref(), &kept, title.to_owned());
        let (max, max_id) = (MAX_RESULTS.end().to_string(), i32::MAX.to_string());
        let mut page = ErrorPage {
            warning: false,
            message,
            value: None,
            categories: Vec::new(),
            valid: None,
            action: (layout.home_href.clone(), t.back_home),
            stale: None,
            layout,
        };
        match self {
            // A new catalog may mend these two: their pages follow it, and reload.
            AppError::BadParameter(param) => {
                page.value = Some(param.value().to_owned());
                page.valid = match &param {
                    ParamError::UnknownCategory(..) => {
                        page.categories = page.layout.categories.clone();
                        page.layout = page.layout.live();
                        None
                    }
                    ParamError::MalformedMaxResults(_) => {
                        Some(t.valid_max_results.replace("{min}", "1").replace("{max}", &max))
                    }
                    ParamError::InvalidUserId(_) => Some(t.valid_user_id.replace("{max}", &max_id)),
                };
            }
            AppError::Unavailable { category, kept, last_books } => {
                page.warning = true;
                page.layout = page.layout.live();
                page.action = (href("/", Some(&category), &kept, choice.in_links()), t.try_again);
                let heading = categories.name(&category, choice.lang).to_owned();
                page.stale = (!last_books.is_empty()).then_some((heading, last_books));
            }
            _ => {}
        }
        pages::send(res, status, choice.lang, page);
    }
}

#[async_trait]
impl Writer for AppError {
    async fn write(self, req: &mut Request, depot: &mut Depot, res: &mut Response) {
        let status = self.status();
        res.status_code(status);
        let Ok(state) = depot.get_typed::<Arc<AppState>>() else {
            return self.json(res);
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(state.retry_after_secs));
        }
        match req.uri().path().starts_with("/api/") {
            true => self.json(res),
            false => self.page(language(req), &state.clone(), res),
        }
    }
}
