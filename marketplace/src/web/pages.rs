//! The HTML pages: a sailfish template per page, the [`Layout`] around every page, the shelf of
//! books the home page and the 503 notice share. Every value goes through `<%= %>`: escaped.

use sailfish::TemplateSimple;
use salvo::http::{HeaderValue, StatusCode, header};
use salvo::{Response, writing::Text};

use crate::book::Book;
use crate::categories::{Categories, Category};
use crate::i18n::{BRAND, Lang, LangChoice, Texts, autonym};
use crate::web::{assets::ICON, assets::LIVE, assets::STYLE, params::Params};

/// A link of the navigation or the language switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub href: String,
    pub label: &'a str,
    /// The page being shown (`aria-current`).
    pub current: bool,
    /// Of the link's text and target (language switch only).
    pub lang: &'static str,
}

/// `path` with the query of a link: the category, the parameters the visitor chose (`kept`),
/// and the language when `?lang=` chose it. Only parsed values go in, never request text.
pub fn href(path: &str, category: Option<&str>, kept: &Params, lang: Option<Lang>) -> String {
    // Pushed into one string of one allocation, not formatted: a page has a dozen links.
    let mut href = String::with_capacity(path.len() + 64);
    href.push_str(path);
    let mut param = |name: &str, value: &str| {
        href.push(if href.len() == path.len() { '?' } else { '&' });
        href.extend([name, "=", value]);
    };
    category.inspect(|category| param("category", category));
    kept.max_results.inspect(|n| param("max_results", &n.to_string()));
    kept.user_id.inspect(|id| param("user_id", &id.to_string()));
    lang.inspect(|lang| param("lang", lang.tag()));
    href
}

/// What every page has around its content: name, language switch, categories, footer, assets.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    pub lang: Lang,
    pub t: &'static Texts,
    /// The `<h1>`, and the `<title>` before the site's name.
    pub title: &'a str,
    pub home_href: String,
    pub langs: Vec<Link<'a>>,
    pub categories: Vec<Link<'a>>,
    /// The catalog version the page shows, for the live script (`<body data-version>`).
    pub version: &'a str,
    /// Whether the page has the live script, which keeps it current (or reloads it).
    pub live: bool,
    /// The same books as JSON (home pages only).
    pub api_href: Option<String>,
}

impl<'a> Layout<'a> {
    pub fn new(
        choice: LangChoice,
        categories: &'a Categories,
        current: Option<&str>,
        kept: &Params,
        title: &'a str,
    ) -> Layout<'a> {
        let (lang, in_links) = (choice.lang, choice.in_links());
        let category = |c: &'a Category| Link {
            href: href("/", Some(&c.key), kept, in_links),
            label: c.name(lang),
            current: current == Some(&*c.key),
            lang: lang.tag(),
        };
        let language = |other: Lang| Link {
            href: href("/", current.or(kept.category.as_deref()), kept, Some(other)),
            label: autonym(other),
            current: other == lang,
            lang: other.tag(),
        };
        Layout {
            lang,
            t: lang.texts(),
            title,
            home_href: href("/", None, &Params::default(), in_links),
            langs: Lang::ALL.map(language).into(),
            categories: categories.list.iter().map(category).collect(),
            version: &categories.version,
            live: false,
            api_href: None,
        }
    }
}

/// `GET /`: the recommended books of a category, or its empty state.
#[derive(Debug, TemplateSimple)]
#[template(path = "home.stpl")]
pub struct HomePage<'a> {
    pub layout: Layout<'a>,
    /// For the live script.
    pub category: String,
    pub max_results: u32,
    pub books: Vec<Book>,
    pub more_href: Option<String>,
}

/// Every error page (400, 404, 405, and the 503 notice), with the navigation intact.
#[derive(Debug, TemplateSimple)]
#[template(path = "error.stpl")]
pub struct ErrorPage<'a> {
    pub layout: Layout<'a>,
    /// A passing problem: styled as a warning, `role="alert"`.
    pub warning: bool,
    pub message: &'static str,
    /// The rejected value.
    pub value: Option<String>,
    /// The categories to choose instead of an unknown one.
    pub categories: Vec<Link<'a>>,
    /// What would have been accepted, in words.
    pub valid: Option<String>,
    /// Where to go from here: its link and its text.
    pub action: (String, &'static str),
    /// The books last served for the category (a 503), under its name.
    pub stale: Option<(String, Vec<Book>)>,
}

/// Renders `page` with its language, `Vary` on language and user, and `no-store` (picks change).
pub fn send(res: &mut Response, status: StatusCode, lang: Lang, page: impl TemplateSimple) {
    match page.render_once() {
        Ok(html) => {
            res.status_code(status);
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Language, Cookie"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.render(Text::Html(html));
        }
        Err(error) => {
            // Only a failing `Display` can get here, and these templates have none.
            tracing::error!(%error, "cannot render a page");
            res.status_code(StatusCode::INTERNAL_SERVER_ERROR);
            res.render(Text::Plain("Internal Server Error"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::categories::Api;

    fn choice(lang: Lang, explicit: bool) -> LangChoice {
        LangChoice { lang, explicit }
    }

    #[test]
    fn links_keep_explicit_parameters_and_an_explicit_language() {
        let kept = Params { max_results: Some(5), user_id: Some(7), ..Params::default() };
        let categories = Categories::tutorial(Api::Tutorial);
        let layout =
            Layout::new(choice(Lang::Ru, true), &categories, Some("mystery"), &kept, "Детективы");
        assert_eq!(
            layout.categories[1].href,
            "/?category=science_fiction&max_results=5&user_id=7&lang=ru"
        );
        assert!(layout.categories[0].current && !layout.categories[1].current);
        assert_eq!(layout.home_href, "/?lang=ru");
        assert_eq!(layout.langs[0].href, "/?category=mystery&max_results=5&user_id=7&lang=en");
    }

    #[test]
    fn a_negotiated_language_is_not_written_into_links() {
        let categories = Categories::tutorial(Api::Tutorial);
        let layout =
            Layout::new(choice(Lang::Ru, false), &categories, None, &Params::default(), "x");
        assert_eq!(layout.categories[0].href, "/?category=mystery");
        assert_eq!(layout.categories[0].label, "Детективы");
        assert_eq!(layout.home_href, "/");
        assert_eq!(layout.langs[1].href, "/?lang=ru");
        assert!(layout.langs[1].current);
        assert_eq!((layout.api_href, layout.live), (None, false));
    }

    #[test]
    fn the_home_page_escapes_catalog_text() {
        let categories = Categories::tutorial(Api::Tutorial);
        let layout = Layout::new(
            choice(Lang::En, false),
            &categories,
            Some("mystery"),
            &Params::default(),
            "Mystery",
        );
        let book = Book {
            id: 1,
            title: "<script>alert(1)</script>".into(),
            author: Some("O'Hara & \"Sons\"".into()),
        };
        let page = HomePage {
            layout,
            category: "mystery".into(),
            max_results: 3,
            books: vec![book],
            more_href: None,
        };
        let html = page.render_once().unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("O&#039;Hara &amp; &quot;Sons&quot;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }
}
