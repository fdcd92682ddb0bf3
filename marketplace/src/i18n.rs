//! The page's language (`?lang=`, else `Accept-Language`) and every text the pages show, in
//! English and Russian: some thirty strings, a TOML file per language rather than fluent.

use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Ru,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ru];

    pub fn tag(self) -> &'static str {
        ["en", "ru"][self as usize]
    }

    /// `ru`, `ru-RU`, `RU`: the primary subtag decides.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        Lang::ALL.into_iter().find(|lang| primary.eq_ignore_ascii_case(lang.tag()))
    }

    pub fn texts(self) -> &'static Texts {
        &TEXTS[self as usize]
    }
}

/// A page's language; if `?lang=` chose it, links keep it (else `Accept-Language` goes on working).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LangChoice {
    pub lang: Lang,
    pub explicit: bool,
}

impl LangChoice {
    pub fn in_links(self) -> Option<Lang> {
        self.explicit.then_some(self.lang)
    }
}

/// A known `?lang=`, else the best `Accept-Language` q-value (first among equals), else English.
pub fn negotiate(query: Option<&str>, accept_language: Option<&str>) -> LangChoice {
    if let Some(lang) = query.and_then(Lang::from_tag) {
        return LangChoice { lang, explicit: true };
    }
    LangChoice { lang: accept_language.and_then(best_match).unwrap_or_default(), explicit: false }
}

fn best_match(header: &str) -> Option<Lang> {
    let acceptable = header.split(',').filter_map(|item| {
        let mut parts = item.split(';').map(str::trim);
        let tag = parts.next().unwrap_or_default();
        let q = parts.find_map(|param| param.strip_prefix("q=").or(param.strip_prefix("Q=")));
        let quality = q.map_or(Some(1.0), quality).unwrap_or(0.0);
        let lang = if tag == "*" { Some(Lang::default()) } else { Lang::from_tag(tag) };
        lang.filter(|_| quality > 0.0).map(|lang| (lang, quality))
    });
    acceptable.reduce(|best, next| if next.1 > best.1 { next } else { best }).map(|(lang, _)| lang)
}

/// A q-value from 0 to 1; `None` when malformed.
fn quality(value: &str) -> Option<f32> {
    value.parse().ok().filter(|q| (0.0..=1.0).contains(q))
}

pub const BRAND: &str = "Bookshop";

/// Every text a page shows, from `locales/*.toml` (borrowed from the files: no escapes).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub tagline: &'static str,
    pub categories_label: &'static str,
    pub language_label: &'static str,
    pub empty: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable_body: &'static str,
    pub stale_body: &'static str,
    pub stale_mark: &'static str,
    pub try_again: &'static str,
    pub more_books: &'static str,
    pub bad_request_title: &'static str,
    pub bad_category: &'static str,
    pub bad_max_results: &'static str,
    pub bad_user_id: &'static str,
    pub valid_values: &'static str,
    pub choose_category: &'static str,
    pub valid_max_results: &'static str,
    pub valid_user_id: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub method_not_allowed_title: &'static str,
    pub method_not_allowed_body: &'static str,
    pub other_error_title: &'static str,
    pub other_error_body: &'static str,
    pub back_home: &'static str,
    pub api_note: &'static str,
    pub lead: &'static str,
    pub updated: &'static str,
    pub catalog_rejected: &'static str,
    pub books_added: &'static str,
    pub books_removed: &'static str,
    pub books_retitled: &'static str,
    pub category_renamed: &'static str,
    pub new_book: &'static str,
}

// A test reads both files: a mistake in one fails it, never a page.
#[allow(clippy::unwrap_used)]
static TEXTS: LazyLock<[Texts; 2]> = LazyLock::new(|| {
    let en = toml::from_str(include_str!("../locales/en.toml")).unwrap();
    [en, toml::from_str(include_str!("../locales/ru.toml")).unwrap()]
});

pub fn autonym(lang: Lang) -> &'static str {
    ["English", "Русский"][lang as usize]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chosen(query: Option<&str>, header: Option<&str>) -> Lang {
        negotiate(query, header).lang
    }

    #[test]
    fn every_text_is_given_in_both_languages() {
        // Unknown or missing keys, or an escape that cannot be borrowed, fail here.
        for lang in Lang::ALL {
            assert!(!lang.texts().tagline.is_empty());
        }
    }

    #[test]
    fn english_is_the_default() {
        assert_eq!(chosen(None, None), Lang::En);
        assert_eq!(chosen(None, Some("")), Lang::En);
        assert_eq!(chosen(None, Some("de-DE, fr;q=0.8")), Lang::En);
    }

    #[test]
    fn accept_language_chooses_by_q_value() {
        assert_eq!(chosen(None, Some("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7")), Lang::Ru);
        assert_eq!(chosen(None, Some("en;q=0.5, ru;q=0.8")), Lang::Ru);
        assert_eq!(chosen(None, Some("ru;q=0.5, en;q=0.8")), Lang::En);
        assert_eq!(chosen(None, Some("de, ru;q=0.1")), Lang::Ru);
        assert_eq!(chosen(None, Some("ru;q=0, en;q=0.1")), Lang::En);
        assert_eq!(chosen(None, Some("ru;q=0")), Lang::En);
        assert_eq!(chosen(None, Some("*;q=0.5, ru;q=0.4")), Lang::En);
        assert_eq!(chosen(None, Some("RU")), Lang::Ru);
    }

    #[test]
    fn equal_q_values_keep_the_header_order() {
        assert_eq!(chosen(None, Some("ru, en")), Lang::Ru);
        assert_eq!(chosen(None, Some("en, ru")), Lang::En);
    }

    #[test]
    fn a_malformed_q_value_counts_as_zero() {
        assert_eq!(chosen(None, Some("ru;q=high, en;q=0.2")), Lang::En);
        assert_eq!(chosen(None, Some("ru;q=1.5")), Lang::En);
        assert_eq!(quality("0.875"), Some(0.875));
        assert_eq!(quality("1"), Some(1.0));
        assert_eq!(quality("1.0001"), None);
    }

    #[test]
    fn the_query_overrides_the_header_and_unknown_values_fall_back() {
        let choice = negotiate(Some("ru"), Some("en"));
        assert_eq!(choice, LangChoice { lang: Lang::Ru, explicit: true });
        assert_eq!(chosen(Some("EN"), Some("ru")), Lang::En);
        assert_eq!(chosen(Some("ru-RU"), None), Lang::Ru);
        let fallback = negotiate(Some("klingon"), Some("ru"));
        assert_eq!(fallback, LangChoice { lang: Lang::Ru, explicit: false });
    }
}
