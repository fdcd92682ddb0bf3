//! The static assets, embedded in the binary so the container image needs no other file.
//!
//! Pages link them with a content version (`/static/style.css?v=…`); a request carrying the
//! current version may be cached for a year, any other for five minutes. Every asset has an
//! `ETag`, so revalidation costs a 304.

/// An embedded file served under `/static/`.
#[derive(Debug)]
pub struct Asset {
    /// The file name under `/static/`.
    pub name: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
    /// A hash of the bytes, the version in links and the `ETag`.
    pub version: u64,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        Asset {
            name,
            content_type,
            body,
            version: bookshop_common::fnv1a(body),
        }
    }

    /// The versioned URL that pages link to.
    pub fn url(&self) -> String {
        format!("/static/{}?v={}", self.name, self.version_tag())
    }

    /// The version as 16 hex digits.
    pub fn version_tag(&self) -> String {
        format!("{:016x}", self.version)
    }

    /// The strong `ETag` (quoted).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version_tag())
    }

    /// Whether an `If-None-Match` header value matches this asset's `ETag`.
    pub fn matches(&self, if_none_match: &str) -> bool {
        let etag = self.etag();
        if_none_match.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag == etag || tag.strip_prefix("W/").is_some_and(|weak| weak == etag)
        })
    }

    /// The `Cache-Control` for a request that asked for `version` (`?v=`).
    pub fn cache_control(&self, version: Option<&str>) -> &'static str {
        if version.is_some_and(|v| v == self.version_tag()) {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=300"
        }
    }
}

/// The stylesheet.
pub static STYLE: Asset = Asset::new(
    "style.css",
    "text/css; charset=utf-8",
    include_bytes!("../static/style.css"),
);

/// The icon (also answered at `/favicon.ico`).
pub static ICON: Asset = Asset::new(
    "favicon.svg",
    "image/svg+xml",
    include_bytes!("../static/favicon.svg"),
);

/// The home page's script: it follows the catalog's changes and re-renders the books in place.
pub static LIVE: Asset = Asset::new(
    "live.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../static/live.js"),
);

/// Every asset.
pub static ALL: [&Asset; 3] = [&STYLE, &ICON, &LIVE];

/// The asset named `name`, if any.
pub fn find(name: &str) -> Option<&'static Asset> {
    ALL.iter().copied().find(|asset| asset.name == name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn assets_are_found_by_name_only() {
        assert_eq!(find("style.css").map(|a| a.name), Some("style.css"));
        assert_eq!(
            find("favicon.svg").map(|a| a.content_type),
            Some("image/svg+xml")
        );
        assert!(find("../Cargo.toml").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn the_version_changes_with_the_content() {
        assert!(STYLE.url().starts_with("/static/style.css?v="));
        assert_eq!(STYLE.version_tag().len(), 16);
    }

    #[test]
    fn only_the_current_version_is_cached_for_long() {
        let current = STYLE.version_tag();
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
