//! The request's parameters, parsed once into typed values: the category, the number of books
//! and the user id. The handlers never look at raw query strings.

use std::{ops::RangeInclusive, sync::Arc};

use crate::shelves::Shelves;

/// How many books one page may ask for; out-of-range counts are clamped into it.
pub const MAX_RESULTS_RANGE: RangeInclusive<u32> = 1..=50;

/// A request parameter that cannot be used. The English message is the JSON API's; pages word
/// it in the visitor's language from the same parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `?category=` names no category: the value, and the categories there are.
    #[error("unknown category {0:?}; valid values: {list}", list = .1.join(", "))]
    UnknownCategory(String, Vec<String>),
    /// `?max_results=` is not a whole number.
    #[error(
        "max_results must be a whole number, got {0:?}; valid values: {min} to {max} (others are clamped)",
        min = MAX_RESULTS_RANGE.start(),
        max = MAX_RESULTS_RANGE.end()
    )]
    MalformedMaxResults(String),
    /// `?user_id=` is not a positive 32-bit integer.
    #[error("user_id must be a whole number from 1 to {max}, got {0:?}", max = i32::MAX)]
    InvalidUserId(String),
}

impl ParamError {
    /// The query parameter at fault.
    pub fn parameter(&self) -> &'static str {
        match self {
            ParamError::UnknownCategory(..) => "category",
            ParamError::MalformedMaxResults(_) => "max_results",
            ParamError::InvalidUserId(_) => "user_id",
        }
    }

    /// The offending value, as sent.
    pub fn value(&self) -> &str {
        match self {
            ParamError::UnknownCategory(v, _)
            | ParamError::MalformedMaxResults(v)
            | ParamError::InvalidUserId(v) => v,
        }
    }

    /// What would have been accepted, for the JSON body and the page.
    pub fn valid_values(&self) -> Vec<String> {
        match self {
            ParamError::UnknownCategory(_, known) => known.clone(),
            ParamError::MalformedMaxResults(_) => vec![format!(
                "{}..{}",
                MAX_RESULTS_RANGE.start(),
                MAX_RESULTS_RANGE.end()
            )],
            ParamError::InvalidUserId(_) => vec![format!("1..{}", i32::MAX)],
        }
    }
}

/// A category key as users type it: case-insensitive, with `-` or `_` between words
/// (`Science-Fiction`, `SELF_HELP`), surrounding spaces ignored. `None` when it cannot be a
/// key at all.
pub fn category_key(raw: &str) -> Option<String> {
    let key = raw.trim().to_ascii_lowercase().replace('-', "_");
    bookshop_proto::is_category_key(&key).then_some(key)
}

/// Parses `?category=`: a category of `shelves` (any well-formed key while they are not
/// known yet).
pub fn parse_category(raw: &str, shelves: &Shelves) -> Result<Arc<str>, ParamError> {
    let key = category_key(raw);
    match key.as_deref().map(|key| shelves.get(key)) {
        Some(Some(shelf)) => Ok(shelf.key.clone()),
        Some(None) if !shelves.known() => Ok(key.unwrap_or_default().into()),
        _ => Err(ParamError::UnknownCategory(
            raw.to_owned(),
            shelves.list.iter().map(|s| s.key.to_string()).collect(),
        )),
    }
}

/// Parses `max_results`: any integer, however large or negative, is clamped into
/// [`MAX_RESULTS_RANGE`]; anything else is an error.
pub fn parse_max_results(raw: &str) -> Result<u32, ParamError> {
    let text = raw.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::MalformedMaxResults(raw.to_owned()));
    }
    let (min, max) = (*MAX_RESULTS_RANGE.start(), *MAX_RESULTS_RANGE.end());
    if negative {
        return Ok(min);
    }
    // Digits only, so a parse failure can only mean "larger than u64".
    Ok(digits.parse::<u64>().map_or(max, |n| {
        u32::try_from(n.clamp(u64::from(min), u64::from(max))).unwrap_or(max)
    }))
}

/// The count a "More books" link asks for, after a page that asked for `asked` books and got
/// `got`: `step` more, within [`MAX_RESULTS_RANGE`]. `None` when the category has no more
/// (fewer came back than were asked for) or the page already asked for the most it may.
pub fn more_results(asked: u32, got: usize, step: u32) -> Option<u32> {
    let max = *MAX_RESULTS_RANGE.end();
    let all_came = usize::try_from(asked).is_ok_and(|asked| got >= asked);
    (all_came && asked < max).then(|| asked.saturating_add(step).min(max))
}

/// Parses a user id: a whole number from 1 to `i32::MAX` (the proto's `int32 user_id`).
pub fn parse_user_id(raw: &str) -> Result<i32, ParamError> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ParamError::InvalidUserId(raw.to_owned()))
}

/// What a page or the API was asked for, after defaults were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookQuery {
    /// The category to recommend from: its key.
    pub category: Arc<str>,
    /// How many books (within [`MAX_RESULTS_RANGE`]).
    pub max_results: u32,
    /// The user id sent to Recommendations.
    pub user_id: i32,
}

/// The request's parameters as given, before defaults: `None` where a parameter is absent or
/// empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explicit {
    /// `?category=`: a category key.
    pub category: Option<Arc<str>>,
    /// `?max_results=`, clamped.
    pub max_results: Option<u32>,
    /// `?user_id=`
    pub user_id: Option<i32>,
}

impl Explicit {
    /// Parses the three parameters from their raw query values (`None` when absent), the
    /// category against `shelves`. An empty value counts as absent, as HTML forms send empty
    /// fields.
    pub fn parse(
        category: Option<&str>,
        max_results: Option<&str>,
        user_id: Option<&str>,
        shelves: &Shelves,
    ) -> Result<Explicit, ParamError> {
        fn present(value: Option<&str>) -> Option<&str> {
            value.filter(|s| !s.trim().is_empty())
        }
        Ok(Explicit {
            category: present(category)
                .map(|raw| parse_category(raw, shelves))
                .transpose()?,
            max_results: present(max_results).map(parse_max_results).transpose()?,
            user_id: present(user_id).map(parse_user_id).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::shelves::Source;

    fn seed() -> Shelves {
        Shelves::seed(Source::Seed)
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
            assert_eq!(
                parse_category(raw, &seed()).as_deref(),
                Ok(expected),
                "{raw}"
            );
        }
    }

    #[test]
    fn an_unknown_category_is_an_error_listing_the_valid_ones() {
        let err = parse_category("fantasy", &seed()).unwrap_err();
        assert_eq!(err.parameter(), "category");
        assert_eq!(err.value(), "fantasy");
        assert_eq!(
            err.valid_values(),
            ["mystery", "science_fiction", "self_help"]
        );
        assert_eq!(
            err.to_string(),
            "unknown category \"fantasy\"; valid values: mystery, science_fiction, self_help"
        );
        assert!(parse_category("science fiction", &seed()).is_err());
        assert!(parse_category("", &seed()).is_err());
    }

    #[test]
    fn while_the_shelves_are_not_known_any_well_formed_key_is_asked_for() {
        let pending = Shelves::seed(Source::Pending);
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
        assert_eq!(more_results(3, 3, 3), Some(6));
        assert_eq!(more_results(48, 48, 3), Some(50));
        assert_eq!(
            more_results(3, 5, 3),
            Some(6),
            "more than asked still means more"
        );
    }

    #[test]
    fn no_more_books_when_fewer_came_or_the_limit_is_reached() {
        assert_eq!(more_results(6, 5, 3), None);
        assert_eq!(more_results(3, 0, 3), None);
        assert_eq!(more_results(50, 50, 3), None);
    }

    #[test]
    fn user_ids_are_positive_32_bit_integers() {
        assert_eq!(parse_user_id("42"), Ok(42));
        assert_eq!(parse_user_id("2147483647"), Ok(i32::MAX));
        for raw in ["0", "-1", "2147483648", "abc", ""] {
            assert_eq!(
                parse_user_id(raw),
                Err(ParamError::InvalidUserId(raw.into())),
                "{raw}"
            );
        }
    }

    #[test]
    fn empty_parameters_count_as_absent() {
        assert_eq!(
            Explicit::parse(Some(""), Some(" "), Some(""), &seed()),
            Ok(Explicit::default())
        );
        assert_eq!(
            Explicit::parse(Some("self-help"), Some("99"), Some("5"), &seed()),
            Ok(Explicit {
                category: Some("self_help".into()),
                max_results: Some(50),
                user_id: Some(5)
            })
        );
    }
}
