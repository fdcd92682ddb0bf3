//! The routes that show books and categories: the home page, and the same as JSON.

use std::sync::Arc;

use salvo::{
    Depot, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
    writing::Json,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    book::{Book, Cover},
    categories::Categories,
    recommendations::{CallError, Caller, Query},
    web::{
        AppState,
        error::AppError,
        language, no_store,
        pages::{self, HomePage, Layout, href},
        params::{Params, cookie_user_id, issue_cookie, more_results},
        state,
    },
};

impl AppState {
    /// What to ask for: the request's parameters, then the cookie's user id, then the defaults.
    fn query(
        &self,
        params: &Params,
        cookie_user_id: Option<i32>,
        categories: &Categories,
    ) -> Query {
        let defaults = &self.home;
        Query {
            category: params
                .category
                .clone()
                .unwrap_or_else(|| categories.home(&defaults.category)),
            max_results: params.max_results.unwrap_or(defaults.max_results),
            user_id: params.user_id.or(cookie_user_id).unwrap_or(defaults.user_id),
        }
    }
}

fn caller(depot: &Depot) -> Caller {
    depot.get_typed::<Caller>().cloned().unwrap_or_default()
}

/// `GET /`: a visitor without a valid cookie gets one, so that `per_user` selection shows them
/// their own picks.
#[handler]
pub async fn home(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AppError> {
    let state = state(depot)?;
    let categories = state.categories.borrow().clone();
    let choice = language(req);
    let cookie_user_id = cookie_user_id(req);
    if cookie_user_id.is_none() {
        issue_cookie(req, res, state.secure_cookies, &state.trusted_proxies);
    }
    let params = Params::parse(req, &categories)?;
    let query = state.query(&params, cookie_user_id, &categories);
    // Links keep what the visitor chose, but the category, which each link sets.
    let kept = Params { category: None, ..params };
    let books = match state.client.recommend(&query, categories.api, &caller(depot)).await {
        Ok(recommended) => recommended.books,
        Err(CallError::NotFound) => Vec::new(),
        Err(error) => {
            let last_books = state.last_served.last(&query.category, query.max_results);
            return Err(AppError::from_call(error, &query.category, kept, last_books));
        }
    };
    state.last_served.keep(&query.category, &books);
    let more = more_results(query.max_results, books.len(), state.home.max_results);
    let more_href = more.map(|n| {
        let more = Params { max_results: Some(n), ..kept.clone() };
        href("/", Some(&query.category), &more, choice.in_links())
    });
    let title = categories.name(&query.category, choice.lang).to_owned();
    let mut layout = Layout::new(choice, &categories, Some(&query.category), &kept, title).live();
    layout.api_href = Some(href("/api/recommendations", Some(&query.category), &kept, None));
    let (category, max_results) = (query.category.to_string(), query.max_results);
    pages::send(
        res,
        StatusCode::OK,
        choice.lang,
        HomePage { layout, category, max_results, books, more_href },
    );
    Ok(())
}

/// `GET /api/recommendations`: the home page's books as JSON, each with its cover (the live
/// script draws them with it), and the catalog version they came from. Reads the user id
/// cookie but never sets it.
#[handler]
pub async fn api_recommendations(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AppError> {
    let state = state(depot)?;
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("Cookie"));
    let categories = state.categories.borrow().clone();
    let params = Params::parse(req, &categories)?;
    let query = state.query(&params, cookie_user_id(req), &categories);
    let recommended = state.client.recommend(&query, categories.api, &caller(depot)).await;
    let recommended = recommended
        .map_err(|error| AppError::from_call(error, &query.category, params, Vec::new()))?;
    let recommendations =
        recommended.books.iter().map(|book| BookBody { cover: book.cover(), book }).collect();
    no_store(res);
    res.render(Json(RecommendationsBody {
        category: &query.category,
        version: recommended.version,
        recommendations,
    }));
    Ok(())
}

#[derive(Serialize)]
struct RecommendationsBody<'a> {
    category: &'a str,
    /// Absent from a server that speaks only the tutorial's API.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    recommendations: Vec<BookBody<'a>>,
}

#[derive(Serialize)]
struct BookBody<'a> {
    #[serde(flatten)]
    book: &'a Book,
    cover: Cover,
}

/// `GET /api/categories`: the navigation, named in the language of `?lang=` or
/// `Accept-Language`, with the catalog version it belongs to.
#[handler]
pub async fn api_categories(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AppError> {
    let categories: Arc<Categories> = state(depot)?.categories.borrow().clone();
    let lang = language(req).lang;
    let list: Vec<_> = categories
        .list
        .iter()
        .map(|category| json!({ "key": &*category.key, "name": category.name(lang) }))
        .collect();
    no_store(res);
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    res.render(Json(
        json!({ "version": categories.version, "lang": lang.tag(), "categories": list }),
    ));
    Ok(())
}
