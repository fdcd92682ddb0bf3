//! The anonymous per-browser user id, kept in the `bookshop_uid` cookie: read from each request,
//! and issued by the home page to a browser without a valid one, so that Recommendations'
//! `per_user` selection shows each visitor their own, stable picks.
//!
//! The cookie is long-lived, invisible to scripts (`HttpOnly`), sent on top-level navigation
//! only (`SameSite=Lax`), and `Secure` as `server.secure_cookies` says: `always`, `never`, or
//! `auto` (the default): when the request came over HTTPS, which for a Marketplace behind a
//! TLS-terminating proxy means an `X-Forwarded-Proto: https` header from one of
//! `server.trusted_proxies` (from anyone else, the header is ignored).

use ipnet::IpNet;
use salvo::{
    Request, Response,
    http::{
        cookie::{Cookie, SameSite, time::Duration},
        uri::Scheme,
    },
};
use serde::{Deserialize, Serialize};

use crate::params::parse_user_id;

/// The cookie's name.
pub const NAME: &str = "bookshop_uid";

/// How long the cookie lives.
pub const MAX_AGE_DAYS: i64 = 365;

/// When the cookie is `Secure` (`server.secure_cookies`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureCookies {
    /// When the request came over HTTPS, directly or through a trusted proxy.
    #[default]
    Auto,
    /// Always (the site is only ever reached over HTTPS).
    Always,
    /// Never.
    Never,
}

/// The user id of a request's cookie: a valid id, or `None` (absent or tampered with).
pub fn read(req: &Request) -> Option<i32> {
    req.cookie(NAME).and_then(|c| parse_user_id(c.value()).ok())
}

/// Sets a cookie with a fresh random user id on `res`.
pub fn issue(req: &Request, res: &mut Response, policy: SecureCookies, trusted: &[IpNet]) {
    let secure = match policy {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => came_over_https(req, trusted),
    };
    let user_id = rand::random_range(1..=i32::MAX);
    let cookie = Cookie::build((NAME, user_id.to_string()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(Duration::days(MAX_AGE_DAYS))
        .build();
    res.add_cookie(cookie);
}

/// Whether the visitor's request came over HTTPS: to us, or to a proxy in `trusted` that
/// says so in `X-Forwarded-Proto`.
fn came_over_https(req: &Request, trusted: &[IpNet]) -> bool {
    if req.scheme() == &Scheme::HTTPS {
        return true;
    }
    let from_trusted = req
        .remote_addr()
        .ip()
        .is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)));
    from_trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}
