//! The page's language (`?lang=`, else `Accept-Language`) and every text the pages show, in
//! English and Russian: thirty strings, so a table rather than fluent or gettext.

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
        [&EN, &RU][self as usize]
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
    let mut best: Option<(Lang, f32)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let tag = parts.next().unwrap_or_default();
        let q = parts.find_map(|param| param.strip_prefix("q=").or(param.strip_prefix("Q=")));
        let quality = q.map_or(Some(1.0), quality).unwrap_or(0.0);
        let lang = if tag == "*" { Some(Lang::default()) } else { Lang::from_tag(tag) };
        let better = quality > 0.0 && best.is_none_or(|(_, q)| quality > q);
        if let Some(lang) = lang.filter(|_| better) {
            best = Some((lang, quality));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A q-value from 0 to 1; `None` when malformed.
fn quality(value: &str) -> Option<f32> {
    value.parse().ok().filter(|q| (0.0..=1.0).contains(q))
}

pub const BRAND: &str = "Bookshop";

#[derive(Debug)]
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
}

pub fn autonym(lang: Lang) -> &'static str {
    ["English", "Русский"][lang as usize]
}

static EN: Texts = Texts {
    tagline: "Online Books For You",
    categories_label: "Categories",
    language_label: "Language",
    empty: "No books in this category yet. Try another category.",
    unavailable_title: "Recommendations are unavailable right now",
    unavailable_body: "We could not load recommendations. This is usually brief: please try again in a few seconds.",
    stale_body: "We could not load new recommendations, so here are the books we showed last: they may be out of date. This is usually brief: please try again in a few seconds.",
    stale_mark: "Possibly out of date",
    try_again: "Try again",
    more_books: "More books",
    bad_request_title: "That page address is not quite right",
    bad_category: "There is no category called",
    bad_max_results: "The number of books must be a whole number, not",
    bad_user_id: "The user id must be a positive whole number, not",
    valid_values: "Valid values:",
    choose_category: "Choose one of these categories:",
    valid_max_results: "a whole number from {min} to {max} (larger or smaller numbers are adjusted)",
    valid_user_id: "a whole number from 1 to {max}",
    not_found_title: "Page not found",
    not_found_body: "There is nothing at this address.",
    method_not_allowed_title: "Not allowed",
    method_not_allowed_body: "This address does not accept that kind of request.",
    other_error_title: "Something went wrong",
    other_error_body: "The request could not be completed.",
    back_home: "Back to the recommendations",
    api_note: "Also available as JSON",
    lead: "Books you may like",
    updated: "The catalog was updated.",
    catalog_rejected: "Your last save of the catalog was not loaded; the books shown are from the last good one.",
};

static RU: Texts = Texts {
    tagline: "Книги для вас",
    categories_label: "Категории",
    language_label: "Язык",
    empty: "В этой категории пока нет книг. Загляните в другую.",
    unavailable_title: "Рекомендации сейчас недоступны",
    unavailable_body: "Не удалось загрузить рекомендации. Обычно это ненадолго: попробуйте ещё раз через несколько секунд.",
    stale_body: "Не удалось загрузить новые рекомендации, поэтому здесь книги, которые мы показывали в прошлый раз: они могли устареть. Обычно это ненадолго: попробуйте ещё раз через несколько секунд.",
    stale_mark: "Возможно, устарело",
    try_again: "Попробовать ещё раз",
    more_books: "Ещё книги",
    bad_request_title: "В адресе страницы ошибка",
    bad_category: "Нет такой категории:",
    bad_max_results: "Число книг должно быть целым числом, а не",
    bad_user_id: "Идентификатор пользователя должен быть целым положительным числом, а не",
    valid_values: "Допустимые значения:",
    choose_category: "Выберите одну из этих категорий:",
    valid_max_results: "целое число от {min} до {max} (большие и меньшие значения поправляются)",
    valid_user_id: "целое число от 1 до {max}",
    not_found_title: "Страница не найдена",
    not_found_body: "По этому адресу ничего нет.",
    method_not_allowed_title: "Запрос не разрешён",
    method_not_allowed_body: "Этот адрес не принимает такие запросы.",
    other_error_title: "Что-то пошло не так",
    other_error_body: "Запрос не удалось выполнить.",
    back_home: "К рекомендациям",
    api_note: "Эти данные есть и в JSON",
    lead: "Книги, которые могут вам понравиться",
    updated: "Каталог обновлён.",
    catalog_rejected: "Последнее сохранение каталога не загружено; показаны книги из последнего верного.",
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chosen(query: Option<&str>, header: Option<&str>) -> Lang {
        negotiate(query, header).lang
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
