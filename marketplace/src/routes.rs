//! The routes and their handlers. [`router`] and [`service`] are plain functions of the state,
//! so tests drive them through salvo's `TestClient` without a socket.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the home page: books of a category (`?category=`, `?max_results=`, `?user_id=`, `?lang=`) |
//! | `GET /api/recommendations` | the same as JSON |
//! | `GET /api/categories` | the categories, named in the visitor's language, as JSON |
//! | `GET /events` | the catalog's changes, as Server-Sent Events (see [`events`](crate::events)) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when Recommendations answers its health check, 503 otherwise |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /static/{name}`, `GET /favicon.ico` | the embedded assets |
//!
//! Every `GET` route answers `HEAD` too. [`ROUTES`] lists them once: the router is built from
//! it, and the metrics and the access log label requests with its entries.

use std::sync::Arc;

use ipnet::IpNet;
use salvo::{
    Handler, Request, Response, Router, Service,
    catcher::Catcher,
    handler,
    http::{HeaderValue, StatusCode, header},
    writing::{Json, Text},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    assets::{self, Asset},
    client::{Book, GatewayError, RecommendationsGateway},
    cover::Cover,
    error::{AppError, PageContext, render_json, render_page},
    events::{EventStreams, EventsHandler},
    i18n::{LangChoice, negotiate},
    last_served::LastServed,
    metrics::{Metrics, MetricsHandler},
    middleware,
    pages::{self, HomePage, LinkQuery},
    params::{self, BookQuery, Explicit, ParamError},
    request_id,
    settings::Settings,
    shelves::{LiveShelves, Shelves},
    user_cookie::{self, SecureCookies},
};

/// A route of the Marketplace: its path, and whether it is a probe, which the access log
/// keeps at `debug` so that a Kubernetes probe every few seconds does not drown the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path pattern, as the router matches it and the metrics label it.
    pub path: &'static str,
    /// Logged at `debug`.
    pub probe: bool,
}

const fn route(path: &'static str, probe: bool) -> Route {
    Route { path, probe }
}

/// `GET /`
pub const HOME: Route = route("/", false);
/// `GET /api/recommendations`
pub const API: Route = route("/api/recommendations", false);
/// `GET /api/categories`
pub const CATEGORIES: Route = route("/api/categories", false);
/// `GET /events`
pub const EVENTS: Route = route("/events", false);
/// `GET /healthz`
pub const HEALTHZ: Route = route("/healthz", true);
/// `GET /readyz`
pub const READYZ: Route = route("/readyz", true);
/// `GET /metrics`
pub const METRICS: Route = route("/metrics", true);
/// `GET /static/{name}`
pub const STATIC: Route = route("/static/{name}", false);
/// `GET /favicon.ico`
pub const FAVICON: Route = route("/favicon.ico", false);

/// Every route.
pub const ROUTES: [Route; 9] = [
    HOME, API, CATEGORIES, EVENTS, HEALTHZ, READYZ, METRICS, STATIC, FAVICON,
];

/// What a request matched, for the metrics and the access log: one of [`ROUTES`], or `None`
/// when nothing matched (never the raw path, so metrics labels stay few).
pub fn route_label(req: &Request) -> Option<Route> {
    let matched = req.matched_path();
    ROUTES
        .into_iter()
        .find(|route| route.path.trim_start_matches('/') == matched)
        .filter(|route| route.path != "/" || !matched.is_empty() || req.uri().path() == "/")
}

/// What the handlers share: the gateway to Recommendations, the categories, the books it last
/// served, the metrics, the event streams and the home page defaults.
#[derive(Debug)]
pub struct AppState {
    /// The pool of channels to the Recommendations replicas.
    pub gateway: RecommendationsGateway,
    /// The categories of the catalog in service (see [`follow`](crate::follow)).
    pub shelves: LiveShelves,
    /// The books last served per category, shown while Recommendations is unavailable.
    pub last_served: LastServed,
    /// The process's metrics (the gateway counts its calls there too).
    pub metrics: Arc<Metrics>,
    /// `homepage.category`
    pub default_category: Arc<str>,
    /// `homepage.max_results`
    pub default_max_results: u32,
    /// `homepage.user_id`
    pub default_user_id: i32,
    /// `recommendations.retry_after_secs`
    pub retry_after_secs: u32,
    /// `server.secure_cookies`
    pub secure_cookies: SecureCookies,
    /// `server.trusted_proxies`
    pub trusted_proxies: Vec<IpNet>,
    /// The open event streams and their limit.
    pub events: Arc<EventStreams>,
    /// Cancelled when a stop signal came: answers close their connections (see
    /// [`middleware::CloseWhenDraining`]), event streams end, the catalog is no longer followed.
    pub stopping: CancellationToken,
}

impl AppState {
    /// The state for `settings`, around `gateway` and `metrics`.
    pub fn new(
        settings: &Settings,
        gateway: RecommendationsGateway,
        metrics: Arc<Metrics>,
    ) -> AppState {
        let stopping = CancellationToken::new();
        AppState {
            gateway,
            shelves: LiveShelves::default(),
            last_served: LastServed::default(),
            events: Arc::new(EventStreams::new(
                settings.server.max_event_streams,
                metrics.clone(),
                stopping.clone(),
            )),
            metrics,
            default_category: settings.homepage.category.as_str().into(),
            default_max_results: settings.homepage.max_results,
            default_user_id: settings.homepage.user_id,
            retry_after_secs: settings.recommendations.retry_after_secs,
            secure_cookies: settings.server.secure_cookies,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            stopping,
        }
    }

    /// What to ask for: the request's parameters, then the cookie's user id, then the defaults
    /// (the home category as `shelves` have it).
    pub fn resolve(
        &self,
        explicit: &Explicit,
        cookie_user_id: Option<i32>,
        shelves: &Shelves,
    ) -> BookQuery {
        BookQuery {
            category: explicit
                .category
                .clone()
                .unwrap_or_else(|| shelves.home(&self.default_category)),
            max_results: explicit.max_results.unwrap_or(self.default_max_results),
            user_id: explicit
                .user_id
                .or(cookie_user_id)
                .unwrap_or(self.default_user_id),
        }
    }
}

/// The routes, without the service-wide hoops and catcher (see [`service`]).
pub fn router(state: Arc<AppState>) -> Router {
    let metrics = MetricsHandler {
        metrics: state.metrics.clone(),
        pool: state.gateway.pool().clone(),
    };
    let events = EventsHandler {
        streams: state.events.clone(),
        shelves: state.shelves.subscribe(),
    };
    Router::new()
        .push(get_and_head(HOME, HomeHandler(state.clone())))
        .push(get_and_head(API, ApiHandler(state.clone())))
        .push(get_and_head(CATEGORIES, CategoriesHandler(state.clone())))
        .push(Router::with_path(pattern(EVENTS)).get(events))
        .push(get_and_head(HEALTHZ, healthz))
        .push(get_and_head(READYZ, ReadyHandler(state)))
        .push(Router::with_path(pattern(METRICS)).get(metrics))
        .push(get_and_head(STATIC, static_asset))
        .push(get_and_head(FAVICON, favicon))
}

fn pattern(route: Route) -> &'static str {
    route.path.trim_start_matches('/')
}

fn get_and_head(route: Route, handler: impl Handler) -> Router {
    let handler = handler.arc();
    Router::with_path(pattern(route))
        .get(handler.clone())
        .head(handler)
}

/// The whole HTTP service: [`router`], the access log and security headers on every response
/// (404s included), and our own error pages instead of salvo's.
///
/// The request id hoop goes first, so everything after it (the access log included) runs in
/// the request's span.
pub fn service(state: Arc<AppState>) -> Service {
    let catcher = Catcher::new(ErrorCatcher {
        retry_after_secs: state.retry_after_secs,
        shelves: state.shelves.clone(),
    });
    let access_log = middleware::AccessLog(state.metrics.clone());
    let close_when_draining = middleware::CloseWhenDraining(state.stopping.clone());
    Service::new(router(state))
        .hoop(request_id::request_context)
        .hoop(access_log)
        .hoop(close_when_draining)
        .hoop(middleware::security_headers)
        .catcher(catcher)
}

fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.queries().get(name).map(String::as_str)
}

fn language(req: &Request) -> LangChoice {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    negotiate(query(req, "lang"), accept)
}

fn explicit(req: &Request, shelves: &Shelves) -> Result<Explicit, ParamError> {
    Explicit::parse(
        query(req, "category"),
        query(req, "max_results"),
        query(req, "user_id"),
        shelves,
    )
}

/// The links of a page keep what the visitor chose explicitly.
fn carry(explicit: &Explicit) -> LinkQuery<'static> {
    LinkQuery {
        max_results: explicit.max_results,
        user_id: explicit.user_id,
        ..LinkQuery::default()
    }
}

/// `GET /`
#[derive(Debug, Clone)]
struct HomeHandler(Arc<AppState>);

#[handler]
impl HomeHandler {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let state = &self.0;
        let shelves = state.shelves.current();
        let lang = language(req);
        let cookie_user_id = user_cookie::read(req);
        if cookie_user_id.is_none() {
            user_cookie::issue(req, res, state.secure_cookies, &state.trusted_proxies);
        }
        let explicit = match explicit(req, &shelves) {
            Ok(explicit) => explicit,
            Err(error) => {
                let ctx = PageContext {
                    lang,
                    shelves: &shelves,
                    category: None,
                    carry: LinkQuery::default(),
                    last_books: Vec::new(),
                };
                render_page(&error.into(), ctx, state.retry_after_secs, res);
                return;
            }
        };
        let query = state.resolve(&explicit, cookie_user_id, &shelves);
        let carry = carry(&explicit);
        let books = match state.gateway.recommend(&query, shelves.source).await {
            Ok(recommended) => Arc::new(recommended.books),
            Err(GatewayError::NotFound) => Arc::default(),
            Err(error) => {
                let ctx = PageContext {
                    lang,
                    shelves: &shelves,
                    category: Some(&query.category),
                    carry,
                    last_books: state.last_served.last(&query.category, query.max_results),
                };
                let error = AppError::from_gateway(error, &query.category);
                render_page(&error, ctx, state.retry_after_secs, res);
                return;
            }
        };
        state.last_served.keep(&query.category, &books);
        let more = params::more_results(query.max_results, books.len(), state.default_max_results);
        let page = HomePage {
            chrome: shelves.chrome(lang, &query.category, carry),
            category: &query.category,
            max_results: query.max_results,
            books,
            more_href: more.map(|max_results| {
                LinkQuery {
                    category: Some(&query.category),
                    max_results: Some(max_results),
                    lang: lang.in_links(),
                    ..carry
                }
                .href("/")
            }),
        };
        pages::send(res, StatusCode::OK, lang.lang, page);
    }
}

/// A book in the JSON API: as the page shows it, with its cover.
#[derive(Debug, Serialize)]
pub struct BookBody {
    /// The book.
    #[serde(flatten)]
    pub book: Book,
    /// Its cover, as the page draws it (the live script re-renders books with it).
    pub cover: Cover,
}

/// The JSON answer of `GET /api/recommendations`.
#[derive(Debug, Serialize)]
pub struct RecommendationsBody {
    /// The category key.
    pub category: String,
    /// The catalog version the books were drawn from (absent from a server that only speaks the
    /// seed's API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The books.
    pub recommendations: Vec<BookBody>,
}

/// `GET /api/recommendations`: reads the user id cookie but never sets it.
#[derive(Debug, Clone)]
struct ApiHandler(Arc<AppState>);

#[handler]
impl ApiHandler {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let state = &self.0;
        let shelves = state.shelves.current();
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Cookie"));
        let query = match explicit(req, &shelves) {
            Ok(explicit) => state.resolve(&explicit, user_cookie::read(req), &shelves),
            Err(error) => return render_json(&error.into(), state.retry_after_secs, res),
        };
        match state.gateway.recommend(&query, shelves.source).await {
            Ok(recommended) => {
                no_store(res);
                res.render(Json(RecommendationsBody {
                    category: query.category.to_string(),
                    version: recommended.version,
                    recommendations: recommended
                        .books
                        .into_iter()
                        .map(|book| BookBody {
                            cover: Cover::of(&book),
                            book,
                        })
                        .collect(),
                }));
            }
            Err(error) => render_json(
                &AppError::from_gateway(error, &query.category),
                state.retry_after_secs,
                res,
            ),
        }
    }
}

/// A category in `GET /api/categories`.
#[derive(Debug, Serialize)]
pub struct CategoryBody<'a> {
    /// Its key, as `?category=` takes it.
    pub key: &'a str,
    /// Its name in the visitor's language.
    pub name: &'a str,
}

/// The JSON answer of `GET /api/categories`.
#[derive(Debug, Serialize)]
pub struct CategoriesBody<'a> {
    /// The catalog version they belong to (empty while unknown).
    pub version: &'a str,
    /// The language of the names.
    pub lang: &'static str,
    /// The categories, in the shop's order.
    pub categories: Vec<CategoryBody<'a>>,
}

/// `GET /api/categories`: the categories as the navigation shows them (`?lang=` or
/// `Accept-Language` chooses the names' language).
#[derive(Debug, Clone)]
struct CategoriesHandler(Arc<AppState>);

#[handler]
impl CategoriesHandler {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let shelves = self.0.shelves.current();
        let lang = language(req).lang;
        no_store(res);
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
        res.render(Json(CategoriesBody {
            version: &shelves.version,
            lang: lang.tag(),
            categories: shelves
                .list
                .iter()
                .map(|shelf| CategoryBody {
                    key: &shelf.key,
                    name: shelf.name(lang),
                })
                .collect(),
        }));
    }
}

fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `GET /healthz`: the process is alive and serving HTTP. Checks nothing else, so a
/// Recommendations outage never gets the Marketplace restarted.
#[handler]
async fn healthz(res: &mut Response) {
    no_store(res);
    res.render(Text::Plain("ok\n"));
}

/// `GET /readyz`: Recommendations answers its health check within the deadline.
#[derive(Debug, Clone)]
struct ReadyHandler(Arc<AppState>);

#[handler]
impl ReadyHandler {
    async fn handle(&self, res: &mut Response) {
        no_store(res);
        if self.0.gateway.ready().await {
            res.render(Text::Plain("ready\n"));
        } else {
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
            res.render(Text::Plain("not ready: Recommendations does not answer\n"));
        }
    }
}

/// `GET /static/{name}`
#[handler]
async fn static_asset(req: &mut Request, res: &mut Response) {
    let name = req.param::<String>("name").unwrap_or_default();
    match assets::find(&name) {
        Some(asset) => send_asset(asset, req, res),
        None => {
            res.status_code(StatusCode::NOT_FOUND);
        }
    }
}

/// `GET /favicon.ico`: browsers ask for it whatever the page links; the SVG icon answers.
#[handler]
async fn favicon(req: &mut Request, res: &mut Response) {
    send_asset(&assets::ICON, req, res);
}

fn send_asset(asset: &'static Asset, req: &Request, res: &mut Response) {
    let cache_control = asset.cache_control(query(req, "v"));
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&asset.etag()) {
        headers.insert(header::ETAG, etag);
    }
    let revalidated = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| asset.matches(v));
    if revalidated {
        res.status_code(StatusCode::NOT_MODIFIED);
        return;
    }
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    res.body(asset.body);
}

/// Error statuses without a body (no route, wrong method, a missing asset) get our page in the
/// visitor's language, or a JSON body under `/api/`.
#[derive(Debug)]
struct ErrorCatcher {
    retry_after_secs: u32,
    shelves: LiveShelves,
}

#[handler]
impl ErrorCatcher {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
        let error = AppError::from_status(status);
        if req.uri().path().starts_with("/api/") {
            render_json(&error, self.retry_after_secs, res);
        } else {
            let shelves = self.shelves.current();
            let ctx = PageContext {
                lang: language(req),
                shelves: &shelves,
                category: None,
                carry: LinkQuery::default(),
                last_books: Vec::new(),
            };
            render_page(&error, ctx, self.retry_after_secs, res);
        }
    }
}
