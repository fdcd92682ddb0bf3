//! The web layer. [`service`] is a plain function of the state, so tests drive it through salvo's
//! `TestClient` without a socket; every `GET` route but `/events` and `/metrics` answers `HEAD`.

pub mod assets;
mod books;
pub mod error;
pub mod events;
pub mod middleware;
pub mod pages;
pub mod params;

use std::{net::SocketAddr, sync::Arc};

use bookshop_common::metrics::CONTENT_TYPE;
use ipnet::IpNet;
use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Depot, Handler, Request, Response, Router, Service, Writer, affix_state, handler};
use salvo::{catcher::Catcher, writing::Json, writing::Text};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::i18n::{LangChoice, negotiate};
use crate::settings::{HomepageSettings, SecureCookies};
use crate::web::error::{AppError, AppResult};
use crate::{categories::LiveCategories, last_served::LastServed, metrics::Metrics};
use crate::{recommendations::Client, web::events::EventStreams};

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
    /// Cancelled by a stop signal: answers close connections, event streams end, following stops.
    pub stopping: CancellationToken,
}

/// The route patterns, as the metrics and the log label requests.
const ROUTES: [&str; 10] = [
    "/",
    "/api/recommendations",
    "/api/categories",
    "/api/catalog",
    "/events",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/{name}",
    "/favicon.ico",
];

/// The route a request matched (`-` if none: never the raw path), and whether it is a probe.
pub fn route(req: &Request) -> (&'static str, bool) {
    let matched = req.matched_path();
    let found = ROUTES.into_iter().find(|path| {
        path.trim_start_matches('/') == matched && (*path != "/" || req.uri().path() == "/")
    });
    let route = found.unwrap_or("-");
    (route, matches!(route, "/healthz" | "/readyz" | "/metrics"))
}

/// The routes, hoops (404s and 405s too) and error pages; the request context first, for its span.
pub fn service(state: Arc<AppState>) -> Service {
    let router = Router::new()
        .push(Router::new().get(books::home).head(books::home))
        .push(get_and_head("api/recommendations", books::api_recommendations))
        .push(get_and_head("api/categories", books::api_categories))
        .push(get_and_head("api/catalog", api_catalog))
        .push(Router::with_path("events").get(events::events))
        .push(get_and_head("healthz", healthz))
        .push(get_and_head("readyz", readyz))
        .push(Router::with_path("metrics").get(prometheus))
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
pub fn state(depot: &Depot) -> AppResult<&Arc<AppState>> {
    depot.get_typed().map_err(|_| AppError::Http(StatusCode::INTERNAL_SERVER_ERROR))
}

/// `?lang=`, then `Accept-Language`.
pub fn language(req: &Request) -> LangChoice {
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    negotiate(req.queries().get("lang").map(String::as_str), accept)
}

fn no_store(res: &mut Response) {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Checks nothing else: an outage of Recommendations must never get the Marketplace restarted.
#[handler]
async fn healthz(res: &mut Response) {
    no_store(res);
    res.render(Text::Plain("ok\n"));
}

#[handler]
async fn readyz(depot: &Depot, res: &mut Response) -> AppResult {
    no_store(res);
    if state(depot)?.client.ready().await {
        res.render(Text::Plain("ready\n"));
    } else {
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        res.render(Text::Plain("not ready: Recommendations does not answer\n"));
    }
    Ok(())
}

/// The version this Marketplace follows, and the one each replica it knows serves: asked now.
async fn versions(state: &AppState) -> (String, Vec<(SocketAddr, Option<String>)>) {
    let followed = state.categories.borrow().version.clone();
    (followed, state.client.versions().await)
}

/// `GET /api/catalog`: whether a catalog edit (a ConfigMap's, pods apart) reached every replica.
#[handler]
async fn api_catalog(depot: &Depot, res: &mut Response) -> AppResult {
    let (version, replicas) = versions(state(depot)?).await;
    let replica = |(address, version)| json!({ "address": address, "version": version });
    let replicas: Vec<_> = replicas.into_iter().map(replica).collect();
    no_store(res);
    res.render(Json(json!({ "version": version, "replicas": replicas })));
    Ok(())
}

#[handler]
async fn prometheus(depot: &Depot, res: &mut Response) -> AppResult {
    let state = state(depot)?;
    let (metrics, replicas) = (&state.metrics, state.client.pool.replicas());
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (followed, versions) = versions(state).await;
    let behind = versions.iter().filter(|(_, v)| v.as_ref().is_some_and(|v| *v != followed));
    metrics.replicas_behind.set(count(behind.count()));
    let ejected = replicas.iter().filter(|(_, ejected)| *ejected).count();
    metrics.replicas.get_or_create(&[("state", "serving")]).set(count(replicas.len() - ejected));
    metrics.replicas.get_or_create(&[("state", "ejected")]).set(count(ejected));
    metrics.event_streams.set(count(state.event_streams.open()));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    no_store(res);
    res.body(metrics.render());
    Ok(())
}

/// Statuses without a body (no route, a wrong method, a missing asset) get our error answer.
#[handler]
async fn catch(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let error = AppError::Http(res.status_code.unwrap_or(StatusCode::NOT_FOUND));
    error.write(req, depot, res).await;
}
