//! Embedded assets, linked by content version (`?v=…`, cached a year; others 5 minutes), `ETag`s.

use std::sync::OnceLock;

use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Request, Response, handler};

#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    version: u64,
    url: OnceLock<String>,
}

impl Asset {
    /// Its version is the hash of its content, computed at compile time.
    const fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        let version = bookshop_common::fnv1a(body);
        Asset { name, content_type, body, version, url: OnceLock::new() }
    }

    fn version(&self) -> String {
        format!("{:016x}", self.version)
    }

    /// Made once: every page links three assets.
    pub fn url(&self) -> &str {
        self.url.get_or_init(|| format!("/static/{}?v={}", self.name, self.version()))
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.version())
    }

    fn matches(&self, if_none_match: &str) -> bool {
        let etag = self.etag();
        let matching = |tag: &str| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag;
        if_none_match.split(',').map(str::trim).any(matching)
    }

    fn cache_control(&self, version: Option<&str>) -> &'static str {
        match version == Some(self.version().as_str()) {
            true => "public, max-age=31536000, immutable",
            false => "public, max-age=300",
        }
    }
}

pub static STYLE: Asset =
    Asset::new("style.css", "text/css; charset=utf-8", include_bytes!("../../static/style.css"));
pub static ICON: Asset =
    Asset::new("favicon.svg", "image/svg+xml", include_bytes!("../../static/favicon.svg"));
pub static LIVE: Asset =
    Asset::new("live.js", "text/javascript; charset=utf-8", include_bytes!("../../static/live.js"));

pub fn find(name: &str) -> Option<&'static Asset> {
    [&STYLE, &ICON, &LIVE].into_iter().find(|asset| asset.name == name)
}

#[handler]
pub async fn static_asset(req: &Request, res: &mut Response) {
    match find(&req.param::<String>("name").unwrap_or_default()) {
        Some(asset) => send(asset, req, res),
        None => drop(res.status_code(StatusCode::NOT_FOUND)),
    }
}

/// `GET /favicon.ico`: browsers ask for it whatever the page links; the SVG icon answers.
#[handler]
pub async fn favicon(req: &Request, res: &mut Response) {
    send(&ICON, req, res);
}

fn send(asset: &'static Asset, req: &Request, res: &mut Response) {
    let cache_control = asset.cache_control(req.queries().get("v").map(String::as_str));
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag()) {
        headers.insert(header::ETAG, etag);
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|tags| asset.matches(tags)) {
        res.status_code(StatusCode::NOT_MODIFIED);
        return;
    }
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    res.body(asset.body);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn assets_are_found_by_name_only() {
        assert_eq!(find("style.css").map(|a| a.name), Some("style.css"));
        assert_eq!(find("favicon.svg").map(|a| a.content_type), Some("image/svg+xml"));
        assert!(find("../Cargo.toml").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn the_version_changes_with_the_content() {
        assert!(STYLE.url().starts_with("/static/style.css?v="));
        assert_eq!(STYLE.version().len(), 16);
    }

    #[test]
    fn only_the_current_version_is_cached_for_long() {
        let current = STYLE.version();
        assert!(STYLE.cache_control(Some(&current)).contains("immutable"));
        assert_eq!(STYLE.cache_control(Some("old")), "public, max-age=300");
        assert_eq!(STYLE.cache_control(None), "public, max-age=300");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_stars() {
        let etag = STYLE.etag();
        assert!(STYLE.matches(&etag));
        assert!(STYLE.matches(&format!("\"x\", W/{etag}")));
        assert!(STYLE.matches("*"));
        assert!(!STYLE.matches("\"other\""));
    }
}
