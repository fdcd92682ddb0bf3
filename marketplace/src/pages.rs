//! The HTML pages: one sailfish template struct per page, the [`Chrome`] (title, header,
//! language switch, category navigation, footer) they share through `templates/layout/`, and the
//! shelf of books (`templates/shelf.stpl`, each book with its [`Cover`](crate::cover::Cover))
//! that the home page and the 503 notice include.
//!
//! Every value reaches the HTML through `<%= %>`, which escapes it; no HTML is built in Rust.
//! The layout is rendered once per [`Chrome`] (by its own templates, escaping the same way) and
//! put in each page with `<%- %>` as it stands: the one place raw HTML is inserted, and it is
//! our own templates' output.

use std::{borrow::Cow, sync::Arc};

use sailfish::TemplateSimple;
use salvo::{
    Response,
    http::{HeaderValue, StatusCode, header},
    writing::Text,
};

use crate::{
    assets,
    client::Book,
    cover::Cover,
    i18n::{BRAND, Lang, LangChoice, Texts, autonym},
    shelves::Shelves,
};

/// A link of the navigation or the language switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where it goes (a path with a query; escaped when rendered).
    pub href: String,
    /// Its text.
    pub label: String,
    /// Whether it is the page being shown (`aria-current`).
    pub current: bool,
    /// The language of the link text and target (language switch only).
    pub lang: &'static str,
}

/// The query of a link to the home page (or the API). Only values the Marketplace parsed or
/// produced go in, so the links never echo raw request text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkQuery<'a> {
    /// `category=`: a category key.
    pub category: Option<&'a str>,
    /// `max_results=`
    pub max_results: Option<u32>,
    /// `user_id=`
    pub user_id: Option<i32>,
    /// `lang=`
    pub lang: Option<Lang>,
}

impl LinkQuery<'_> {
    /// `path` followed by the query, e.g. `/?category=self_help&lang=ru`.
    pub fn href(&self, path: &str) -> String {
        let mut pairs = Vec::new();
        if let Some(category) = self.category {
            pairs.push(format!("category={category}"));
        }
        if let Some(n) = self.max_results {
            pairs.push(format!("max_results={n}"));
        }
        if let Some(id) = self.user_id {
            pairs.push(format!("user_id={id}"));
        }
        if let Some(lang) = self.lang {
            pairs.push(format!("lang={}", lang.tag()));
        }
        if pairs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", pairs.join("&"))
        }
    }
}

/// What every page has around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The page language.
    pub lang: Lang,
    /// The text in that language.
    pub t: &'static Texts,
    /// The page's name: its `<h1>`, and its `<title>` before the site's name.
    pub title: String,
    /// The site name's link.
    pub home_href: String,
    /// The language switch.
    pub langs: Vec<Link>,
    /// The category navigation.
    pub categories: Vec<Link>,
    /// The stylesheet, with its version for caching.
    pub style_href: String,
    /// The icon, with its version for caching.
    pub icon_href: String,
    /// The catalog version the page shows (`<body data-version>`, for the live script); empty
    /// while unknown.
    pub version: String,
    /// The live script (pages that follow the catalog), with its version for caching.
    pub script_href: Option<String>,
    /// The same books as JSON (home pages only).
    pub api_href: Option<String>,
    /// The above, rendered: what every page puts before and after its content.
    pub layout: Layout,
}

/// The HTML of `templates/layout/` for one [`Chrome`]: rendered once with it, so a page built
/// on a shared chrome does not escape and write its navigation again on every request.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// From the doctype to the opening of `<main>`.
    pub header: String,
    /// From the closing of `<main>` to the end.
    pub footer: String,
}

#[derive(TemplateSimple)]
#[template(path = "layout/header.stpl")]
struct LayoutHeader<'a> {
    chrome: &'a Chrome,
}

#[derive(TemplateSimple)]
#[template(path = "layout/footer.stpl")]
struct LayoutFooter<'a> {
    chrome: &'a Chrome,
}

impl Layout {
    fn of(chrome: &Chrome) -> Layout {
        let rendered = LayoutHeader { chrome }
            .render_once()
            .and_then(|header| Ok((header, LayoutFooter { chrome }.render_once()?)));
        match rendered {
            Ok((header, footer)) => Layout { header, footer },
            Err(error) => {
                // Only a failing `Display` can get here; there is none in these templates.
                tracing::error!(%error, "cannot render the page layout");
                Layout::default()
            }
        }
    }
}

impl Chrome {
    /// The chrome of the home page of `category` (a key of `shelves`, or one they may not list
    /// yet): named after the category, with the live script and a link to the same books as
    /// JSON. [`Shelves::chrome`] shares the chromes of plain pages.
    ///
    /// `carry` holds the parameters the visitor set explicitly; navigation links keep them (and
    /// keep `lang` only if `?lang=` chose it, so `Accept-Language` goes on working otherwise).
    pub fn home(
        choice: LangChoice,
        shelves: &Shelves,
        category: &str,
        carry: LinkQuery<'_>,
    ) -> Chrome {
        let title = shelves.name(category, choice.lang).to_owned();
        let api_href = LinkQuery {
            category: Some(category),
            lang: None,
            ..carry
        }
        .href("/api/recommendations");
        let mut chrome = Chrome::new(choice, shelves, Some(category), carry, title);
        chrome.api_href = Some(api_href);
        chrome.script_href = Some(assets::LIVE.url());
        chrome.layout = Layout::of(&chrome);
        chrome
    }

    /// The chrome of an error page named `title`, showing `current` (if known) as the selected
    /// category. No JSON link: there are no books to give. With `live`, the page has the live
    /// script, which reloads it when the catalog changes (an error that a new catalog may
    /// mend: an unknown category, Recommendations unavailable).
    pub fn error(
        choice: LangChoice,
        shelves: &Shelves,
        current: Option<&str>,
        carry: LinkQuery<'_>,
        title: &str,
        live: bool,
    ) -> Chrome {
        let mut chrome = Chrome::new(choice, shelves, current, carry, title.to_owned());
        chrome.script_href = live.then(|| assets::LIVE.url());
        chrome.layout = Layout::of(&chrome);
        chrome
    }

    fn new(
        choice: LangChoice,
        shelves: &Shelves,
        current: Option<&str>,
        carry: LinkQuery<'_>,
        title: String,
    ) -> Chrome {
        let lang = choice.lang;
        let categories = shelves
            .list
            .iter()
            .map(|shelf| Link {
                href: LinkQuery {
                    category: Some(&shelf.key),
                    lang: choice.in_links(),
                    ..carry
                }
                .href("/"),
                label: shelf.name(lang).to_owned(),
                current: current == Some(&*shelf.key),
                lang: lang.tag(),
            })
            .collect();
        let langs = Lang::ALL
            .into_iter()
            .map(|other| Link {
                href: LinkQuery {
                    category: current.or(carry.category),
                    lang: Some(other),
                    ..carry
                }
                .href("/"),
                label: autonym(other).to_owned(),
                current: other == lang,
                lang: other.tag(),
            })
            .collect();
        Chrome {
            lang,
            t: lang.texts(),
            title,
            home_href: LinkQuery {
                lang: choice.in_links(),
                ..LinkQuery::default()
            }
            .href("/"),
            langs,
            categories,
            version: shelves.version.clone(),
            style_href: assets::STYLE.url(),
            icon_href: assets::ICON.url(),
            script_href: None,
            api_href: None,
            layout: Layout::default(),
        }
    }
}

/// `GET /`: the recommended books of a category, or its empty state.
#[derive(Debug, TemplateSimple)]
#[template(path = "home.stpl")]
pub struct HomePage<'a> {
    /// The layout (usually shared, see [`Shelves::chrome`]); its title is the heading.
    pub chrome: Cow<'a, Chrome>,
    /// The category's key (for the live script).
    pub category: &'a str,
    /// How many books were asked for (for the live script).
    pub max_results: u32,
    /// The books; empty means the category has none yet.
    pub books: Arc<Vec<Book>>,
    /// The same category with more books, unless it has no more or the page has the most.
    pub more_href: Option<String>,
}

/// The call to action of an error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Where it goes.
    pub href: String,
    /// Its text.
    pub label: &'static str,
}

/// Books on a 503 notice: the last served for its category, which may be out of date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleShelf {
    /// The category's name.
    pub heading: String,
    /// The books.
    pub books: Vec<Book>,
}

/// Every error page: 400, 404, 405 and the 503 notice, with the navigation intact.
#[derive(Debug, TemplateSimple)]
#[template(path = "error.stpl")]
pub struct ErrorPage {
    /// The layout; its title is the heading.
    pub chrome: Chrome,
    /// Whether it is a notice of a passing problem (styled as a warning, `role="alert"`).
    pub warning: bool,
    /// What happened.
    pub message: &'static str,
    /// The rejected value, shown after the message.
    pub value: Option<String>,
    /// The categories to choose instead (an unknown `?category=`), as the navigation links them.
    pub categories: Vec<Link>,
    /// What would have been accepted, in words (a malformed count or user id).
    pub valid: Option<String>,
    /// Where to go from here.
    pub action: Action,
    /// The books last served for the category (a 503 only, when there are any).
    pub stale: Option<StaleShelf>,
}

/// Renders `page` into `res` with the headers every page has: `Content-Language`,
/// `Vary: Accept-Language, Cookie` (the language and the user id depend on them) and
/// `Cache-Control: no-store` (recommendations differ on every load).
pub fn send(res: &mut Response, status: StatusCode, lang: Lang, page: impl TemplateSimple) {
    match page.render_once() {
        Ok(html) => {
            res.status_code(status);
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_LANGUAGE,
                HeaderValue::from_static(lang.tag()),
            );
            headers.insert(
                header::VARY,
                HeaderValue::from_static("Accept-Language, Cookie"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.render(Text::Html(html));
        }
        Err(error) => {
            // Only a failing `Display` can get here; there is none in these templates.
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
    use crate::shelves::Source;

    fn choice(lang: Lang, explicit: bool) -> LangChoice {
        LangChoice { lang, explicit }
    }

    #[test]
    fn links_keep_explicit_parameters_and_an_explicit_language() {
        let carry = LinkQuery {
            max_results: Some(5),
            user_id: Some(7),
            ..LinkQuery::default()
        };
        let shelves = Shelves::seed(Source::Seed);
        let chrome = Chrome::home(choice(Lang::Ru, true), &shelves, "mystery", carry);
        assert_eq!(
            chrome.categories[1].href,
            "/?category=science_fiction&max_results=5&user_id=7&lang=ru"
        );
        assert!(chrome.categories[0].current && !chrome.categories[1].current);
        assert_eq!(chrome.title, "Детективы");
        assert_eq!(chrome.home_href, "/?lang=ru");
        assert_eq!(
            chrome.langs[0].href,
            "/?category=mystery&max_results=5&user_id=7&lang=en"
        );
        assert_eq!(
            chrome.api_href.as_deref(),
            Some("/api/recommendations?category=mystery&max_results=5&user_id=7")
        );
    }

    #[test]
    fn a_negotiated_language_is_not_written_into_links() {
        let shelves = Shelves::seed(Source::Seed);
        let chrome = Chrome::error(
            choice(Lang::Ru, false),
            &shelves,
            None,
            LinkQuery::default(),
            "x",
            false,
        );
        assert_eq!(chrome.categories[0].href, "/?category=mystery");
        assert_eq!(chrome.categories[0].label, "Детективы");
        assert_eq!(chrome.home_href, "/");
        assert_eq!(chrome.langs[1].href, "/?lang=ru");
        assert!(chrome.langs[1].current);
        assert_eq!(chrome.api_href, None);
        assert_eq!(chrome.script_href, None);
    }

    #[test]
    fn a_shared_chrome_is_the_one_built_for_the_request() {
        let shelves = Shelves::seed(Source::Seed);
        for lang in Lang::ALL {
            for explicit in [false, true] {
                for shelf in &shelves.list {
                    let choice = choice(lang, explicit);
                    let carries = [
                        LinkQuery::default(),
                        LinkQuery {
                            max_results: Some(5),
                            user_id: Some(7),
                            ..LinkQuery::default()
                        },
                    ];
                    for carry in carries {
                        let shared = shelves.chrome(choice, &shelf.key, carry);
                        assert_eq!(
                            matches!(shared, Cow::Borrowed(_)),
                            carry == LinkQuery::default()
                        );
                        assert_eq!(
                            format!("{shared:?}"),
                            format!("{:?}", Chrome::home(choice, &shelves, &shelf.key, carry)),
                            "{lang:?} {explicit} {} {carry:?}",
                            shelf.key
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_home_page_escapes_catalog_text() {
        let shelves = Shelves::seed(Source::Seed);
        let page = HomePage {
            chrome: shelves.chrome(choice(Lang::En, false), "mystery", LinkQuery::default()),
            category: "mystery",
            max_results: 3,
            books: Arc::new(vec![Book {
                id: 1,
                title: "<script>alert(1)</script>".into(),
                author: Some("O'Hara & \"Sons\"".into()),
            }]),
            more_href: None,
        };
        let html = page.render_once().unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("O&#039;Hara &amp; &quot;Sons&quot;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }
}
