//! The routes that show books and categories: the home page, and the same as JSON.

use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Depot, Request, Response, handler, writing::Json};
use serde::Serialize;
use serde_json::json;

use crate::categories::{Categories, Category};
use crate::i18n::Lang;
use crate::recommendations::{CallError, Caller, Query};
use crate::web::error::{AppError, AppResult};
use crate::web::pages::{self, HomePage, Layout, href};
use crate::web::params::{Params, cookie_user_id, issue_cookie, more_results};
use crate::web::{AppState, language, no_store, state};
use crate::{book::Book, book::Cover};

impl AppState {
    /// What to ask for: the request's parameters, then the cookie's user id, then the defaults.
    fn query(
        &self,
        categories: &Categories,
        params: &Params,
        id: Option<i32>,
        lang: Lang,
    ) -> Query {
        let defaults = &self.home;
        let home_category = || categories.home(&defaults.category);
        Query {
            category: params.category.clone().unwrap_or_else(home_category),
            max_results: params.max_results.unwrap_or(defaults.max_results),
            user_id: params.user_id.or(id).unwrap_or(defaults.user_id),
            lang,
            keep: params.keep.clone(),
        }
    }
}

/// `GET /`: a visitor without a valid cookie gets one, for stable `per_user` picks.
#[handler]
pub async fn home(req: &Request, depot: &Depot, res: &mut Response) -> AppResult {
    let state = state(depot)?;
    let categories = state.categories.borrow().clone();
    let choice = language(req);
    let cookie = cookie_user_id(req);
    if cookie.is_none() {
        issue_cookie(req, res, state.secure_cookies, &state.trusted_proxies);
    }
    let params = Params::parse(req, &categories)?;
    let query = state.query(&categories, &params, cookie, choice.lang);
    let category = &query.category;
    // Links keep what the visitor chose, but the category, which each link sets.
    let kept = Params { category: None, ..params };
    let caller = depot.get_typed::<Caller>().cloned().unwrap_or_default();
    let books = match state.client.recommend(&query, categories.api, &caller).await {
        Ok(recommended) => recommended.books,
        Err(CallError::NotFound) => Vec::new(),
        Err(error) => {
            let last_books = state.last_served.last(category, query.max_results);
            return Err(AppError::from_call(error, category.clone(), kept, last_books));
        }
    };
    state.last_served.keep(category, &books);
    let total = categories.get(category).map_or(0, |c| c.books);
    let more = more_results(query.max_results, books.len(), state.home.max_results, total);
    let more_href = more.map(|n| {
        let more = Params { max_results: Some(n), ..kept.clone() };
        href("/", Some(category), &more, choice.in_links())
    });
    let title = categories.name(category, choice.lang);
    let mut layout = Layout::new(choice, &categories, Some(category), &kept, title);
    layout.live = true;
    layout.api_href = Some(href("/api/recommendations", Some(category), &kept, None));
    let (category, max_results) = (category.to_string(), query.max_results);
    let page = HomePage { layout, category, max_results, books, more_href };
    pages::send(res, StatusCode::OK, choice.lang, page);
    Ok(())
}

/// `GET /api/recommendations`: the home page's books, covers and version as JSON; sets no cookie.
#[handler]
pub async fn api_recommendations(req: &Request, depot: &Depot, res: &mut Response) -> AppResult {
    let state = state(depot)?;
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("Cookie, Accept-Language"));
    let categories = state.categories.borrow().clone();
    let params = Params::parse(req, &categories)?;
    let query = state.query(&categories, &params, cookie_user_id(req), language(req).lang);
    let caller = depot.get_typed::<Caller>().cloned().unwrap_or_default();
    let recommended = state.client.recommend(&query, categories.api, &caller).await;
    let category = &query.category;
    let recommended = recommended
        .map_err(|error| AppError::from_call(error, category.clone(), params, Vec::new()))?;
    let books = recommended.books.iter();
    let recommendations = books.map(|book| BookBody { cover: book.cover(), book }).collect();
    let version = recommended.version;
    no_store(res);
    res.render(Json(RecommendationsBody { category, version, recommendations }));
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

/// `GET /api/categories`: the navigation in the visitor's language, with its catalog version.
#[handler]
pub async fn api_categories(req: &Request, depot: &Depot, res: &mut Response) -> AppResult {
    let categories = state(depot)?.categories.borrow().clone();
    let lang = language(req).lang;
    let named = |c: &Category| json!({ "key": &*c.key, "name": c.name(lang), "books": c.books });
    let list: Vec<_> = categories.list.iter().map(named).collect();
    no_store(res);
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    let body = json!({ "version": categories.version, "lang": lang.tag(), "categories": list });
    res.render(Json(body));
    Ok(())
}
