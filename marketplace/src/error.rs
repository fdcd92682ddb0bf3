//! Everything a request can fail with, and the two mappings of it to a response: one to an HTML
//! page ([`render_page`]) and one to a JSON body ([`render_json`]).
//!
//! Neither shows internals: the cause of a Recommendations failure was logged by the gateway and
//! the visitor only learns that it is a passing problem.

use std::sync::Arc;

use salvo::{
    Response,
    http::{HeaderValue, StatusCode, header},
    writing::Json,
};
use serde::Serialize;

use crate::{
    client::{Book, GatewayError},
    i18n::LangChoice,
    pages::{self, Action, Chrome, ErrorPage, LinkQuery, StaleShelf},
    params::{MAX_RESULTS_RANGE, ParamError},
    shelves::Shelves,
};

/// Why a request could not be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A query parameter is unusable: 400.
    #[error(transparent)]
    BadParameter(#[from] ParamError),
    /// Recommendations has no books in the category: 404 in the API. The home page shows an
    /// empty state with 200 instead and never renders this as an error page.
    #[error("no books in category {0:?} yet")]
    NoBooks(Arc<str>),
    /// Recommendations is down, slow or failing: 503 with `Retry-After`.
    #[error("recommendations are temporarily unavailable")]
    Unavailable(#[source] GatewayError),
    /// No route for the path: 404.
    #[error("no such page")]
    NotFound,
    /// The path exists but not for the method: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Any other error status the HTTP layer produced.
    #[error("the request could not be completed")]
    Http(StatusCode),
}

impl AppError {
    /// A gateway failure as the visitor sees it: `NOT_FOUND` is "no books", anything else is
    /// "unavailable".
    pub fn from_gateway(error: GatewayError, category: &Arc<str>) -> AppError {
        match error {
            GatewayError::NotFound => AppError::NoBooks(category.clone()),
            other => AppError::Unavailable(other),
        }
    }

    /// An error status that reached the catcher.
    pub fn from_status(status: StatusCode) -> AppError {
        match status {
            StatusCode::NOT_FOUND => AppError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
            other => AppError::Http(other),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadParameter(_) => StatusCode::BAD_REQUEST,
            AppError::NoBooks(_) | AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Http(status) => *status,
        }
    }

    /// A stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadParameter(_) => "invalid_parameter",
            AppError::NoBooks(_) => "no_books",
            AppError::Unavailable(_) => "unavailable",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Http(_) => "error",
        }
    }
}

/// Where an error page is shown, for its navigation, its "try again" link and its books.
#[derive(Debug, Clone)]
pub struct PageContext<'a> {
    /// The page language.
    pub lang: LangChoice,
    /// The shop's categories, for the navigation.
    pub shelves: &'a Shelves,
    /// The category the visitor was looking at, if known.
    pub category: Option<&'a str>,
    /// The parameters the visitor set explicitly (kept in links).
    pub carry: LinkQuery<'a>,
    /// The books last served for the category, shown below a 503 notice as possibly out of
    /// date (see [`LastServed`](crate::last_served::LastServed)); empty when there are none.
    pub last_books: Vec<Book>,
}

/// The one mapping of an error to an HTML page: status, `Retry-After` for a 503, and a page in
/// the visitor's language with the navigation intact.
pub fn render_page(
    error: &AppError,
    ctx: PageContext<'_>,
    retry_after_secs: u32,
    res: &mut Response,
) {
    let t = ctx.lang.lang.texts();
    let has_last_books = !ctx.last_books.is_empty();
    let (title, message) = match error {
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
        AppError::Unavailable(_) if has_last_books => (t.unavailable_title, t.stale_body),
        AppError::Unavailable(_) => (t.unavailable_title, t.unavailable_body),
        AppError::NotFound => (t.not_found_title, t.not_found_body),
        AppError::MethodNotAllowed => (t.method_not_allowed_title, t.method_not_allowed_body),
        AppError::Http(_) => (t.other_error_title, t.other_error_body),
    };
    let param = match error {
        AppError::BadParameter(param) => Some(param),
        _ => None,
    };
    let unknown_category = matches!(param, Some(ParamError::UnknownCategory(..)));
    let unavailable = matches!(error, AppError::Unavailable(_));
    // A new catalog may mend these two: their pages follow it, and reload when it changes.
    let live = unknown_category || unavailable;
    let chrome = Chrome::error(ctx.lang, ctx.shelves, ctx.category, ctx.carry, title, live);
    // An unknown category: the categories there are, linked as the navigation links them.
    let categories = if unknown_category {
        chrome.categories.clone()
    } else {
        Vec::new()
    };
    let valid = match param {
        Some(ParamError::MalformedMaxResults(_)) => Some(
            t.valid_max_results
                .replace("{min}", &MAX_RESULTS_RANGE.start().to_string())
                .replace("{max}", &MAX_RESULTS_RANGE.end().to_string()),
        ),
        Some(ParamError::InvalidUserId(_)) => {
            Some(t.valid_user_id.replace("{max}", &i32::MAX.to_string()))
        }
        _ => None,
    };
    let action = if unavailable {
        Action {
            href: LinkQuery {
                category: ctx.category,
                lang: ctx.lang.in_links(),
                ..ctx.carry
            }
            .href("/"),
            label: t.try_again,
        }
    } else {
        Action {
            href: chrome.home_href.clone(),
            label: t.back_home,
        }
    };
    let stale = ctx
        .category
        .filter(|_| has_last_books)
        .map(|category| StaleShelf {
            heading: ctx.shelves.name(category, ctx.lang.lang).to_owned(),
            books: ctx.last_books,
        });
    let page = ErrorPage {
        chrome,
        warning: unavailable,
        message,
        value: param.map(|param| param.value().to_owned()),
        categories,
        valid,
        action,
        stale,
    };
    set_retry_after(error, retry_after_secs, res);
    pages::send(res, error.status(), ctx.lang.lang, page);
}

/// The JSON error body: `{"error": {"status", "code", "message", …}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// The HTTP status, repeated for clients that only keep the body.
    pub status: u16,
    /// A stable code (`invalid_parameter`, `no_books`, `unavailable`, `not_found`, …).
    pub code: &'static str,
    /// A human-readable English message.
    pub message: String,
    /// The parameter at fault (`invalid_parameter` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<&'static str>,
    /// The rejected value (`invalid_parameter` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What would have been accepted (`invalid_parameter` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_values: Option<Vec<String>>,
}

/// The one mapping of an error to a JSON response.
pub fn render_json(error: &AppError, retry_after_secs: u32, res: &mut Response) {
    let param = match error {
        AppError::BadParameter(param) => Some(param),
        _ => None,
    };
    let body = ErrorBody {
        error: ErrorDetail {
            status: error.status().as_u16(),
            code: error.code(),
            message: error.to_string(),
            parameter: param.map(ParamError::parameter),
            value: param.map(|p| p.value().to_owned()),
            valid_values: param.map(ParamError::valid_values),
        },
    };
    set_retry_after(error, retry_after_secs, res);
    res.status_code(error.status());
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.render(Json(body));
}

fn set_retry_after(error: &AppError, retry_after_secs: u32, res: &mut Response) {
    if matches!(error, AppError::Unavailable(_)) {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn not_found_from_recommendations_means_no_books_and_anything_else_unavailable() {
        let mystery: Arc<str> = "mystery".into();
        let no_books = AppError::from_gateway(GatewayError::NotFound, &mystery);
        assert!(matches!(no_books, AppError::NoBooks(category) if &*category == "mystery"));
        let failed = AppError::from_gateway(
            GatewayError::Failed(tonic::Status::internal("secret stack trace")),
            &mystery,
        );
        assert!(matches!(failed, AppError::Unavailable(_)));
        assert!(!failed.to_string().contains("secret"));
    }
}
