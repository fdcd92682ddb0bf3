//! The web layer: the routes, their handlers, the pages, the event streams and the errors.
//! [`service`] is a plain function of the state, so tests drive it through salvo's
//! `TestClient` without a socket.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the home page: books of a category (`?category=`, `?max_results=`, `?user_id=`, `?lang=`) |
//! | `GET /api/recommendations` | the same as JSON |
//! | `GET /api/categories` | the categories, named in the visitor's language, as JSON |
//! | `GET /events` | the catalog's changes, as Server-Sent Events ([`events`]) |
//! | `GET /healthz` | 200 while the process serves HTTP |
//! | `GET /readyz` | 200 when Recommendations answers its health check, 503 otherwise |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /static/{name}`, `GET /favicon.ico` | the embedded [`assets`] |
//!
//! Every `GET` route but `/events` and `/metrics` answers `HEAD` too.

pub mod assets;
mod books;
pub mod error;
pub mod events;
pub mod middleware;
pub mod pages;
pub mod params;

use std::sync::Arc;

use bookshop_common::metrics::CONTENT_TYPE;
use ipnet::IpNet;
use salvo::{
    Depot, Handler, Request, Response, Router, Service, affix_state,
    catcher::Catcher,
    handler,
    http::{HeaderValue, StatusCode, header},
    writing::Text,
};
use tokio_util::sync::CancellationToken;

use crate::{
    categories::LiveCategories,
    i18n::{LangChoice, negotiate},
    last_served::LastServed,
    metrics::Metrics,
    recommendations::Client,
    settings::{HomepageSettings, SecureCookies},
};
use error::AppError;
use events::EventStreams;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub client: Client,
    pub categories: LiveCategories,
    pub last_served: LastServed,
    pub metrics: Arc<Metrics>,
    pub home: HomepageSettings,
    pub retry_after_secs: u32,
    pub secure_cookies: SecureCookies,
    pub trusted_proxies: Vec<IpNet>,
    pub event_streams: EventStreams,
    /// Cancelled by a stop signal: answers close their connections, event streams end, the
    /// catalog is no longer followed.
    pub stopping: CancellationToken,
}

/// Every route: its pattern, and whether it is a probe, logged at `debug` so that a probe every
/// few seconds does not drown the log.
const ROUTES: [(&str, bool); 9] = [
    ("/", false),
    ("/api/recommendations", false),
    ("/api/categories", false),
    ("/events", false),
    ("/healthz", true),
    ("/readyz", true),
    ("/metrics", true),
    ("/static/{name}", false),
    ("/favicon.ico", false),
];

/// The route a request matched, as the metrics and the log label it (`-` when none: never the
/// raw path, so that labels stay few), and whether it is a probe.
pub fn route(req: &Request) -> (&'static str, bool) {
    let matched = req.matched_path();
    let found = ROUTES.iter().find(|(path, _)| {
        path.trim_start_matches('/') == matched && (*path != "/" || req.uri().path() == "/")
    });
    found.copied().unwrap_or(("-", false))
}

/// The whole HTTP service: the routes, the hoops every response goes through (404s and 405s
/// too), and our own error pages. The request context goes first, so that everything after it
/// runs in the request's span.
pub fn service(state: Arc<AppState>) -> Service {
    let router = Router::new()
        .push(get_and_head("", books::home))
        .push(get_and_head("api/recommendations", books::api_recommendations))
        .push(get_and_head("api/categories", books::api_categories))
        .push(Router::with_path("events").get(events::events))
        .push(get_and_head("healthz", healthz))
        .push(get_and_head("readyz", readyz))
        .push(Router::with_path("metrics").get(metrics))
        .push(get_and_head("static/{name}", assets::static_asset))
        .push(get_and_head("favicon.ico", assets::favicon));
    Service::new(router)
        .hoop(affix_state::inject(state))
        .hoop(middleware::request_context)
        .hoop(middleware::access_log)
        .hoop(middleware::close_when_draining)
        .hoop(middleware::security_headers)
        .catcher(Catcher::new(catch))
}

fn get_and_head(path: &str, handler: impl Handler) -> Router {
    let handler = handler.arc();
    Router::with_path(path).get(handler.clone()).head(handler)
}

/// The state every handler finds in the depot (the service puts it there first).
pub fn state(depot: &Depot) -> Result<&Arc<AppState>, AppError> {
    depot
        .get_typed::<Arc<AppState>>()
        .map_err(|_| AppError::Http(StatusCode::INTERNAL_SERVER_ERROR))
}

/// `?lang=`, then `Accept-Language`.
pub fn language(req: &Request) -> LangChoice {
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    negotiate(req.queries().get("lang").map(String::as_str), accept)
}

fn no_store(res: &mut Response) {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Checks nothing else, so that an outage of Recommendations never gets the Marketplace
/// restarted.
#[handler]
async fn healthz(res: &mut Response) {
    no_store(res);
    res.render(Text::Plain("ok\n"));
}

#[handler]
async fn readyz(depot: &mut Depot, res: &mut Response) -> Result<(), AppError> {
    no_store(res);
    if state(depot)?.client.ready().await {
        res.render(Text::Plain("ready\n"));
    } else {
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        res.render(Text::Plain("not ready: Recommendations does not answer\n"));
    }
    Ok(())
}

#[handler]
async fn metrics(depot: &mut Depot, res: &mut Response) -> Result<(), AppError> {
    let state = state(depot)?;
    let replicas = state.client.pool.replicas();
    let ejected = replicas.iter().filter(|(_, ejected)| *ejected).count();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    state
        .metrics
        .replicas
        .get_or_create(&[("state", "serving")])
        .set(count(replicas.len() - ejected));
    state.metrics.replicas.get_or_create(&[("state", "ejected")]).set(count(ejected));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    no_store(res);
    res.body(state.metrics.render());
    Ok(())
}

/// Statuses without a body (no route, a wrong method, a missing asset) get our error page, or
/// under `/api/` a JSON body.
#[handler]
async fn catch(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let error = AppError::from_status(res.status_code.unwrap_or(StatusCode::NOT_FOUND));
    salvo::Writer::write(error, req, depot, res).await;
}
