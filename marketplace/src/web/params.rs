//! The request's parameters (query, `bookshop_uid` cookie) parsed once into typed values.

use std::sync::Arc;

use ipnet::IpNet;
use salvo::http::cookie::{Cookie, SameSite, time::Duration};
use salvo::{Request, Response, http::uri::Scheme};

use crate::categories::{Categories, category_key};
use crate::{book::MAX_RESULTS, settings::SecureCookies};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown category {0:?}; valid values: {list}", list = .1.join(", "))]
    UnknownCategory(String, Vec<String>),
    #[error(
        "max_results must be a whole number, got {0:?}; valid values: {min} to {max} (others are clamped)",
        min = MAX_RESULTS.start(),
        max = MAX_RESULTS.end()
    )]
    MalformedMaxResults(String),
    #[error("user_id must be a whole number from 1 to {max}, got {0:?}", max = i32::MAX)]
    InvalidUserId(String),
}

impl ParamError {
    pub fn parameter(&self) -> &'static str {
        match self {
            ParamError::UnknownCategory(..) => "category",
            ParamError::MalformedMaxResults(_) => "max_results",
            ParamError::InvalidUserId(_) => "user_id",
        }
    }

    /// As the request gave it.
    pub fn value(&self) -> &str {
        match self {
            ParamError::UnknownCategory(value, _)
            | ParamError::MalformedMaxResults(value)
            | ParamError::InvalidUserId(value) => value,
        }
    }

    pub fn valid_values(&self) -> Vec<String> {
        match self {
            ParamError::UnknownCategory(_, known) => known.clone(),
            ParamError::MalformedMaxResults(_) => {
                vec![format!("{}..{}", MAX_RESULTS.start(), MAX_RESULTS.end())]
            }
            ParamError::InvalidUserId(_) => vec![format!("1..{}", i32::MAX)],
        }
    }
}

/// What the URL asks for; links keep these, so that a visitor's choices survive navigation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub category: Option<Arc<str>>,
    pub max_results: Option<u32>,
    pub user_id: Option<i32>,
    /// `?keep=3,1,7`: books to answer first while the category has them (the live script's).
    pub keep: Vec<i32>,
}

impl Params {
    /// From `?category=`, `?max_results=`, `?user_id=` and `?keep=`; an empty one counts as absent.
    pub fn parse(req: &Request, categories: &Categories) -> Result<Params, ParamError> {
        Params::from_query(|name| req.queries().get(name).map(String::as_str), categories)
    }

    fn from_query<'a>(
        query: impl Fn(&str) -> Option<&'a str>,
        categories: &Categories,
    ) -> Result<Params, ParamError> {
        let query = |name| query(name).filter(|value| !value.trim().is_empty());
        Ok(Params {
            category: query("category").map(|raw| parse_category(raw, categories)).transpose()?,
            max_results: query("max_results").map(parse_max_results).transpose()?,
            user_id: query("user_id").map(parse_user_id).transpose()?,
            // A hint: ids that cannot be books are left out, as the server leaves out others.
            keep: query("keep").map_or(Vec::new(), |raw| {
                let ids = raw.split(',').filter_map(|id| parse_user_id(id).ok());
                ids.take(bookshop_proto::MAX_PAGE_BOOKS).collect()
            }),
        })
    }
}

/// One of `categories`, in any case, with `-` or `_`; while they are not known, any valid key.
pub fn parse_category(raw: &str, categories: &Categories) -> Result<Arc<str>, ParamError> {
    let key = category_key(raw);
    match key.as_deref().map(|key| categories.get(key)) {
        Some(Some(category)) => Ok(category.key.clone()),
        Some(None) if !categories.known() => Ok(key.unwrap_or_default().into()),
        _ => {
            let valid = categories.list.iter().map(|c| c.key.to_string()).collect();
            Err(ParamError::UnknownCategory(raw.to_owned(), valid))
        }
    }
}

/// A whole number, clamped into [`MAX_RESULTS`] however large or negative.
pub fn parse_max_results(raw: &str) -> Result<u32, ParamError> {
    let text = raw.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::MalformedMaxResults(raw.to_owned()));
    }
    let (min, max) = (*MAX_RESULTS.start(), *MAX_RESULTS.end());
    // Digits only: a parse can fail only by being larger than u64.
    let n = digits.parse::<u64>().map_or(max, |n| n.clamp(min.into(), max.into()) as u32);
    Ok(if text.starts_with('-') { min } else { n })
}

pub fn parse_user_id(raw: &str) -> Result<i32, ParamError> {
    let id = raw.trim().parse::<i32>().ok().filter(|id| *id >= 1);
    id.ok_or_else(|| ParamError::InvalidUserId(raw.to_owned()))
}

/// A "More books" link's count: `step` more, within the limit; none if fewer came, or at the most.
pub fn more_results(asked: u32, got: usize, step: u32, total: u32) -> Option<u32> {
    let max = *MAX_RESULTS.end();
    let more_exist = got >= asked as usize && (total == 0 || got < total as usize);
    (more_exist && asked < max).then(|| asked.saturating_add(step).min(max))
}

/// The anonymous per-browser user id, so that `per_user` selection is stable for a visitor.
pub const COOKIE: &str = "bookshop_uid";

pub fn cookie_user_id(req: &Request) -> Option<i32> {
    req.cookie(COOKIE).and_then(|cookie| parse_user_id(cookie.value()).ok())
}

/// A new random id for a year: `HttpOnly`, `SameSite=Lax`, `Secure` per `server.secure_cookies`.
pub fn issue_cookie(req: &Request, res: &mut Response, policy: SecureCookies, trusted: &[IpNet]) {
    let secure = match policy {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => {
            let ip = req.remote_addr().ip();
            let trusted = ip.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)));
            let proto = req.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok());
            let forwarded_https = proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
            req.scheme() == &Scheme::HTTPS || (trusted && forwarded_https)
        }
    };
    let id = rand::random_range(1..=i32::MAX).to_string();
    let cookie = Cookie::build((COOKIE, id)).path("/").http_only(true).same_site(SameSite::Lax);
    res.add_cookie(cookie.secure(secure).max_age(Duration::days(365)).build());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::categories::Api;

    fn seed() -> Categories {
        Categories::tutorial(Api::Tutorial)
    }

    #[test]
    fn categories_are_case_insensitive_with_dashes_or_underscores() {
        for (raw, expected) in [
            ("mystery", "mystery"),
            ("MYSTERY", "mystery"),
            ("science_fiction", "science_fiction"),
            ("Science-Fiction", "science_fiction"),
            ("self-help", "self_help"),
            (" SELF_help ", "self_help"),
        ] {
            assert_eq!(parse_category(raw, &seed()).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn an_unknown_category_is_an_error_listing_the_valid_ones() {
        let err = parse_category("fantasy", &seed()).unwrap_err();
        assert_eq!(err.parameter(), "category");
        assert_eq!(err.value(), "fantasy");
        assert_eq!(err.valid_values(), ["mystery", "science_fiction", "self_help"]);
        assert_eq!(
            err.to_string(),
            "unknown category \"fantasy\"; valid values: mystery, science_fiction, self_help"
        );
        assert!(parse_category("science fiction", &seed()).is_err());
        assert!(parse_category("", &seed()).is_err());
    }

    #[test]
    fn while_the_shelves_are_not_known_any_well_formed_key_is_asked_for() {
        let pending = Categories::tutorial(Api::Unknown);
        assert_eq!(parse_category("Poetry", &pending).as_deref(), Ok("poetry"));
        assert!(parse_category("po etry", &pending).is_err());
        assert!(parse_category("<script>", &pending).is_err());
    }

    #[test]
    fn out_of_range_counts_are_clamped_to_one_through_fifty() {
        for (raw, expected) in [
            ("3", 3),
            ("+7", 7),
            ("50", 50),
            ("51", 50),
            ("0", 1),
            ("-0", 1),
            ("-5", 1),
            ("4294967296", 50),
            ("99999999999999999999999999999", 50),
            ("-99999999999999999999999999999", 1),
            ("007", 7),
        ] {
            assert_eq!(parse_max_results(raw), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn a_count_that_is_not_a_whole_number_is_an_error() {
        for raw in ["abc", "3.5", "1e3", "", "-", "+", "3 books", "٣"] {
            assert_eq!(
                parse_max_results(raw),
                Err(ParamError::MalformedMaxResults(raw.into())),
                "{raw}"
            );
        }
    }

    #[test]
    fn more_books_asks_for_a_step_more_within_the_limit() {
        assert_eq!(more_results(3, 3, 3, 0), Some(6));
        assert_eq!(more_results(3, 3, 3, 4), Some(6));
        assert_eq!(more_results(3, 3, 3, 3), None, "the category has no more books");
        assert_eq!(more_results(48, 48, 3, 0), Some(50));
        assert_eq!(more_results(3, 5, 3, 0), Some(6), "more than asked still means more");
    }

    #[test]
    fn no_more_books_when_fewer_came_or_the_limit_is_reached() {
        assert_eq!(more_results(6, 5, 3, 0), None);
        assert_eq!(more_results(3, 0, 3, 0), None);
        assert_eq!(more_results(50, 50, 3, 0), None);
    }

    #[test]
    fn user_ids_are_positive_32_bit_integers() {
        assert_eq!(parse_user_id("42"), Ok(42));
        assert_eq!(parse_user_id("2147483647"), Ok(i32::MAX));
        for raw in ["0", "-1", "2147483648", "abc", ""] {
            assert_eq!(parse_user_id(raw), Err(ParamError::InvalidUserId(raw.into())), "{raw}");
        }
    }

    #[test]
    fn empty_parameters_count_as_absent() {
        let query = |values: [&'static str; 3]| {
            move |name: &str| match name {
                "category" => Some(values[0]),
                "max_results" => Some(values[1]),
                _ => Some(values[2]),
            }
        };
        assert_eq!(Params::from_query(query(["", " ", ""]), &seed()), Ok(Params::default()));
        let given = Params {
            category: Some("self_help".into()),
            max_results: Some(50),
            user_id: Some(5),
            keep: vec![5],
        };
        assert_eq!(Params::from_query(query(["self-help", "99", "5"]), &seed()), Ok(given));
    }
}
