//! The routes through salvo's `TestClient` (no HTTP socket), in front of a fake Recommendations.

use std::time::{Duration, Instant};

use bookshop_proto::BookCategory;
use marketplace::book::Book;
use salvo::{
    Response, Service,
    http::StatusCode,
    test::{ResponseExt, TestClient},
};
use serde_json::Value;
use tonic::Code;

use crate::support::{
    BASE, FakeServer, Script, app, book, covers, fetch, header, numbered_books, page,
    reserved_port, service_for, settings_for, three_books, titles, without_own_script,
};

/// The category navigation is on the page.
fn has_navigation(html: &str) -> bool {
    ["mystery", "science_fiction", "self_help"]
        .iter()
        .all(|key| html.contains(&format!("href=\"/?category={key}\"")))
}

/// The page's `<title>`.
fn title(html: &str) -> &str {
    html.split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map_or("", |(title, _)| title)
}

/// The "More books" link of a page, if it has one.
fn more_books(html: &str) -> Option<&str> {
    html.split_once("<p class=\"more\"><a class=\"button\" href=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(href, _)| href)
}

/// The page at `path`, which must be a 400 (a parameter the page refuses).
async fn bad_request_page(service: &Service, path: &str) -> String {
    let (res, html) = page(service, path).await;
    assert_eq!(res.status_code, Some(StatusCode::BAD_REQUEST), "{path}");
    html
}

/// One GET of `path` from the JSON API through `service`: the response and its parsed body.
async fn json(service: &Service, path: &str) -> (Response, Value) {
    let (res, body) = page(service, path).await;
    let json =
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{path}: {error}: {body}"));
    (res, json)
}

#[tokio::test]
async fn the_home_page_lists_the_books_with_their_authors() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (res, html) = page(&service, "/").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(header(&res, "content-type"), Some("text/html; charset=utf-8"));
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(title(&html), "Mystery — Bookshop");
    assert!(html.contains("<h1>Mystery</h1>\n<p class=\"lead\">Books you may like</p>"));
    assert_eq!(
        titles(&html),
        ["Мальтийский сокол", "Убийство в Восточном экспрессе", "The Hound of the Baskervilles"]
    );
    assert!(html.contains("<span class=\"book-author\">Дэшил Хэммет</span>"));
    assert_eq!(html.matches("book-author").count(), 2, "a book without an author shows none");
    assert_eq!(
        html.matches("<li ").count() + html.matches("<li>").count(),
        3,
        "one <li> per book, as the seed's integration test counts"
    );
    drop(server);
}

#[tokio::test]
async fn every_book_has_a_cover_made_from_its_title() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    let covers = covers(&html);
    let initials: Vec<&str> = covers.iter().map(|(_, i)| i.as_str()).collect();
    assert_eq!(initials, ["МС", "УВ", "TH"]);
    for ((class, _), title) in covers.iter().zip(titles(&html)) {
        let book = Book { id: 0, title, author: None };
        assert_eq!(*class, format!("cover-{}", book.cover().colour));
    }
    assert_eq!(
        html.matches("\"><span class=\"cover ").count(),
        3,
        "each book opens with its cover: {html}"
    );
    assert!(
        html.contains("aria-hidden=\"true\">МС</span>"),
        "decorative: screen readers read the title instead"
    );
}

#[tokio::test]
async fn by_default_the_page_asks_for_three_mystery_books_for_user_one() {
    let (server, service) = app(Script::Books(three_books())).await;
    page(&service, "/").await;
    let request = server.fake.last();
    assert_eq!(request.category, BookCategory::Mystery as i32);
    assert_eq!(request.max_results, 3);
    assert_eq!(request.user_id, 1);
}

#[tokio::test]
async fn the_configured_home_category_count_and_user_are_used() {
    let server = FakeServer::start(Script::Books(three_books())).await;
    let mut settings = settings_for(server.addr.port(), 500);
    settings.homepage.category = "self_help".into();
    settings.homepage.max_results = 7;
    settings.homepage.user_id = 99;
    let service = service_for(&settings).await;
    let (_, html) = page(&service, "/").await;
    let request = server.fake.last();
    assert_eq!(
        (request.category, request.max_results, request.user_id),
        (BookCategory::SelfHelp as i32, 7, 99)
    );
    assert!(html.contains("<h1>Self-help</h1>"));
}

#[tokio::test]
async fn categories_are_accepted_in_any_case_with_dashes_or_underscores() {
    let (server, service) = app(Script::Books(three_books())).await;
    let spellings = [
        (BookCategory::ScienceFiction, ["science_fiction", "Science-Fiction"]),
        (BookCategory::SelfHelp, ["SELF-HELP", "self_help"]),
        (BookCategory::Mystery, ["MyStErY", ""]),
    ];
    for (expected, queries) in spellings {
        let current = format!("<a href=\"/?category={}\" aria-current=\"page\">", expected.key());
        for query in queries {
            let (res, html) = page(&service, &format!("/?category={query}")).await;
            assert_eq!(res.status_code, Some(StatusCode::OK), "{query}");
            assert_eq!(server.fake.last().category, expected as i32, "{query}");
            assert!(html.contains(&current), "{query}: {html}");
        }
    }
}

#[tokio::test]
async fn every_category_is_linked_from_the_navigation() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    for key in ["mystery", "science_fiction", "self_help"] {
        assert!(html.contains(&format!("href=\"/?category={key}\"")), "{key}");
    }
}

#[tokio::test]
async fn an_unknown_category_is_a_400_page_offering_the_categories_as_pills() {
    let (server, service) = app(Script::Books(three_books())).await;
    let html = bad_request_page(&service, "/?category=fantasy&lang=ru&max_results=5").await;
    assert!(html.contains("Нет такой категории"), "{html}");
    assert!(html.contains("<code>fantasy</code>"));
    let (_, offered) = html.split_once("<div class=\"pills\">").expect("the categories as pills");
    for (key, name) in
        [("mystery", "Детективы"), ("science_fiction", "Фантастика"), ("self_help", "Саморазвитие")]
    {
        // As the navigation links them: the explicit language is kept, and nothing of a
        // request that could not be parsed.
        let pill = format!("<a href=\"/?category={key}&amp;lang=ru\">{name}</a>");
        assert!(offered.contains(&pill), "{pill}: {html}");
        assert_eq!(html.matches(&pill).count(), 2, "pill and navigation: {pill}");
    }
    assert!(server.fake.requests().is_empty(), "nothing was asked");
}

#[tokio::test]
async fn a_malformed_count_or_user_id_is_a_400_page_saying_what_was_wrong() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let html = bad_request_page(&service, "/?max_results=lots").await;
    assert!(html.contains("must be a whole number") && html.contains("<code>lots</code>"));
    assert!(html.contains("from 1 to 50"));

    let html = bad_request_page(&service, "/?user_id=-4").await;
    assert!(html.contains("user id") && html.contains("<code>-4</code>"), "{html}");
}

#[tokio::test]
async fn out_of_range_counts_are_clamped_to_one_through_fifty() {
    let (server, service) = app(Script::Books(three_books())).await;
    for (query, expected) in
        [("0", 1), ("-3", 1), ("51", 50), ("1000", 50), ("99999999999999999999999", 50), ("5", 5)]
    {
        let (res, _) = page(&service, &format!("/?max_results={query}")).await;
        assert_eq!(res.status_code, Some(StatusCode::OK), "{query}");
        assert_eq!(server.fake.last().max_results, expected, "{query}");
    }
}

#[tokio::test]
async fn catalog_strings_are_html_escaped() {
    let hostile = vec![book(1, "<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>")];
    let (_server, service) = app(Script::Books(hostile)).await;
    let (_, html) = page(&service, "/").await;
    for escaped in
        ["&lt;script&gt;alert(1)&lt;/script&gt;", "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"]
    {
        assert!(html.contains(escaped), "{escaped} missing: {html}");
    }
    let html = without_own_script(&html);
    for markup in ["<script", "<img src=x"] {
        assert!(!html.contains(markup), "{markup} unescaped: {html}");
    }
    let initials: Vec<String> = covers(&html).into_iter().map(|(_, i)| i).collect();
    assert_eq!(initials, ["SA"], "the cover shows letters of the title, never its markup");
}

#[tokio::test]
async fn a_rejected_value_is_escaped_on_the_400_page() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let html = bad_request_page(&service, "/?category=%3Cscript%3Ex%3C%2Fscript%3E").await;
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let (_server, service) = app(Script::Books(three_books())).await;
    for path in [
        "/",
        "/?category=nope",
        "/no/such/page",
        "/api/recommendations",
        "/static/style.css",
        "/healthz",
    ] {
        let (res, _) = page(&service, path).await;
        let csp = header(&res, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("style-src 'self'")
                && csp.contains("img-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(header(&res, "x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(header(&res, "referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(header(&res, "x-frame-options"), Some("DENY"), "{path}");
    }
}

#[tokio::test]
async fn the_page_links_only_its_own_stylesheet_icon_and_script() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/style.css?v="));
    assert!(html.contains("<link rel=\"icon\" href=\"/static/favicon.svg?v="));
    assert!(html.contains("<meta name=\"viewport\""));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("<script src=\"/static/live.js?v="), "{html}");
    assert!(!without_own_script(&html).contains("<script"), "no inline script");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
}

#[tokio::test]
async fn the_language_follows_accept_language_with_a_query_override() {
    let (_server, service) = app(Script::Books(three_books())).await;

    let russian_first = [("accept-language", "ru-RU,ru;q=0.9,en;q=0.8")];
    let (res, html) = fetch(&service, "/", &russian_first).await;
    assert!(html.contains("<html lang=\"ru\">"));
    assert!(html.contains("<h1>Детективы</h1>"));
    assert!(html.contains("<p class=\"lead\">Книги, которые могут вам понравиться</p>"));
    assert_eq!(header(&res, "content-language"), Some("ru"));
    assert_eq!(header(&res, "vary"), Some("Accept-Language, Cookie"));

    let (res, html) = fetch(&service, "/?lang=en", &[("accept-language", "ru")]).await;
    assert!(html.contains("<html lang=\"en\">"));
    assert_eq!(header(&res, "content-language"), Some("en"));
    assert!(
        html.contains("href=\"/?category=self_help&amp;lang=en\""),
        "an explicit language is kept in the links: {html}"
    );

    let (res, html) = page(&service, "/?lang=ru").await;
    assert!(html.contains("<html lang=\"ru\">") && html.contains("Фантастика"));
    assert_eq!(header(&res, "content-language"), Some("ru"));

    let russian_preferred = [("accept-language", "en;q=0.2, ru;q=0.9")];
    let (_, html) = fetch(&service, "/?lang=klingon", &russian_preferred).await;
    assert!(html.contains("<html lang=\"ru\">"), "unknown ?lang= falls back");

    let (_, html) = page(&service, "/").await;
    assert!(html.contains("<html lang=\"en\">"), "English by default");
}

#[tokio::test]
async fn error_pages_are_translated_too() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let html = bad_request_page(&service, "/?category=poetry&lang=ru").await;
    assert!(html.contains("Нет такой категории"), "{html}");
    let (res, html) = page(&service, "/missing?lang=ru").await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    assert!(html.contains("Страница не найдена"), "{html}");
}

#[tokio::test]
async fn a_first_visit_gets_an_anonymous_user_cookie() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (res, _) = page(&service, "/").await;
    let cookie = header(&res, "set-cookie").expect("a cookie is set");
    let (pair, attributes) = cookie.split_once(';').expect("attributes");
    let (name, value) = pair.split_once('=').expect("name=value");
    assert_eq!(name, "bookshop_uid");
    assert!(value.parse::<i32>().is_ok_and(|id| id > 0), "{value}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(attributes.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!attributes.contains("Secure"), "not over plain HTTP");
    assert_eq!(
        server.fake.last().user_id,
        1,
        "a request without the cookie uses the configured default"
    );
}

#[tokio::test]
async fn the_cookie_gives_the_user_id_and_the_query_overrides_it() {
    let (server, service) = app(Script::Books(three_books())).await;

    let (res, _) = fetch(&service, "/", &[("cookie", "bookshop_uid=4242")]).await;
    assert_eq!(server.fake.last().user_id, 4242);
    assert_eq!(header(&res, "set-cookie"), None, "a valid cookie is kept as is");

    fetch(&service, "/?user_id=7", &[("cookie", "bookshop_uid=4242")]).await;
    assert_eq!(server.fake.last().user_id, 7);

    let (res, _) = fetch(&service, "/", &[("cookie", "bookshop_uid=banana")]).await;
    assert_eq!(server.fake.last().user_id, 1, "an invalid cookie is ignored");
    let replaced = header(&res, "set-cookie").unwrap_or_default();
    assert!(
        replaced.starts_with("bookshop_uid=") && !replaced.contains("banana"),
        "and replaced: {replaced}"
    );
}

#[tokio::test]
async fn the_api_reads_the_cookie_but_never_sets_it() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (res, _) = page(&service, "/api/recommendations").await;
    assert_eq!(header(&res, "set-cookie"), None);
    assert_eq!(server.fake.last().user_id, 1);
    fetch(&service, "/api/recommendations", &[("cookie", "bookshop_uid=31")]).await;
    assert_eq!(server.fake.last().user_id, 31);
}

#[tokio::test]
async fn the_api_answers_json_with_the_category_and_the_books() {
    let (server, service) = app(Script::Books(three_books())).await;
    let query = "/api/recommendations?category=Science-Fiction&max_results=2&user_id=5";
    let (res, body) = json(&service, query).await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(header(&res, "content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(body["category"], "science_fiction");
    assert_eq!(body["recommendations"][0]["id"], 1);
    assert_eq!(body["recommendations"][0]["title"], "Мальтийский сокол");
    assert_eq!(body["recommendations"][0]["author"], "Дэшил Хэммет");
    assert!(
        body["recommendations"][2].get("author").is_none(),
        "no author key when the catalog has none"
    );
    let request = server.fake.last();
    assert_eq!(
        (request.category, request.max_results, request.user_id),
        (BookCategory::ScienceFiction as i32, 2, 5)
    );
}

#[tokio::test]
async fn the_api_reports_bad_parameters_as_json_400() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (res, body) = json(&service, "/api/recommendations?category=poetry").await;
    assert_eq!(res.status_code, Some(StatusCode::BAD_REQUEST));
    assert_eq!(body["error"]["status"], 400);
    assert_eq!(body["error"]["code"], "invalid_parameter");
    assert_eq!(body["error"]["parameter"], "category");
    assert_eq!(body["error"]["value"], "poetry");
    assert_eq!(
        body["error"]["valid_values"],
        serde_json::json!(["mystery", "science_fiction", "self_help"])
    );

    for query in ["max_results=2.5", "user_id=0"] {
        let (res, _) = page(&service, &format!("/api/recommendations?{query}")).await;
        assert_eq!(res.status_code, Some(StatusCode::BAD_REQUEST), "{query}");
    }
}

#[tokio::test]
async fn a_category_without_books_is_an_empty_page_and_a_json_404() {
    let (_server, service) = app(Script::Fail(Code::NotFound, "Category not found")).await;
    let (res, html) = page(&service, "/?category=self_help").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert!(html.contains("No books in this category yet"), "{html}");
    assert!(html.contains("<h1>Self-help</h1>"));

    let (res, body) = json(&service, "/api/recommendations?category=self_help").await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    assert_eq!(body["error"]["code"], "no_books");
}

#[tokio::test]
async fn a_failing_recommendations_gives_a_503_notice_without_internals() {
    let (_server, service) =
        app(Script::Fail(Code::Internal, "panic at db.rs:42 password=hunter2")).await;
    let (res, html) = page(&service, "/?category=science_fiction").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(header(&res, "retry-after"), Some("5"));
    assert!(html.contains("Recommendations are unavailable right now"), "{html}");
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("href=\"/?category=science_fiction\">Try again</a>"), "{html}");
    assert!(has_navigation(&html), "navigation intact");
    for secret in ["hunter2", "db.rs", "Internal", "panic"] {
        assert!(!html.contains(secret), "{secret} leaked");
    }

    let (res, body) = page(&service, "/api/recommendations").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(header(&res, "retry-after"), Some("5"));
    assert!(body.contains("\"unavailable\"") && !body.contains("hunter2"), "{body}");
}

#[tokio::test]
async fn a_slow_recommendations_gives_a_503_within_the_deadline() {
    let (_server, service) = app(Script::Sleep(Duration::from_secs(30))).await;
    let started = Instant::now();
    let (res, html) = page(&service, "/").await;
    let elapsed = started.elapsed();
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(html.contains("Recommendations are unavailable right now"));
    assert!(
        elapsed >= Duration::from_millis(400),
        "the deadline (500 ms) was given a chance: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_millis(2_500), "took {elapsed:?}");
}

#[tokio::test]
async fn an_unreachable_recommendations_gives_a_503() {
    let (_reserved, port) = reserved_port();
    let service = service_for(&settings_for(port, 500)).await;
    let started = Instant::now();
    let (res, _) = page(&service, "/").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(started.elapsed() < Duration::from_millis(2_500));
}

#[tokio::test]
async fn healthz_answers_even_when_recommendations_is_down() {
    let (_reserved, port) = reserved_port();
    let service = service_for(&settings_for(port, 300)).await;
    let (res, body) = page(&service, "/healthz").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(body, "ok\n");
}

#[tokio::test]
async fn readyz_follows_the_health_of_recommendations() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (res, _) = page(&service, "/readyz").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));

    server.set_not_serving().await;
    let (res, _) = page(&service, "/readyz").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));

    let (_reserved, port) = reserved_port();
    let down = service_for(&settings_for(port, 300)).await;
    let (res, _) = page(&down, "/readyz").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
}

#[tokio::test]
async fn static_assets_are_served_with_types_caching_and_etags() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    let href = html
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a stylesheet link")
        .to_owned();

    let (res, css) = page(&service, &href).await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(header(&res, "content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(header(&res, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert!(css.contains("max-width"));
    let etag = header(&res, "etag").expect("an etag").to_owned();

    let (res, _) = fetch(&service, "/static/style.css", &[("if-none-match", &etag)]).await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_MODIFIED));
    assert_eq!(header(&res, "cache-control"), Some("public, max-age=300"));

    for path in ["/static/favicon.svg", "/favicon.ico"] {
        let (res, svg) = page(&service, path).await;
        assert_eq!(res.status_code, Some(StatusCode::OK), "{path}");
        assert_eq!(header(&res, "content-type"), Some("image/svg+xml"), "{path}");
        assert!(svg.starts_with("<svg"), "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_get_our_404_page_and_wrong_methods_our_405() {
    let (_server, service) = app(Script::Books(three_books())).await;
    for path in ["/nope", "/static/missing.css", "/static/../Cargo.toml"] {
        let (res, html) = page(&service, path).await;
        assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND), "{path}");
        assert!(html.contains("Page not found"), "{path}: {html}");
        assert!(has_navigation(&html), "{path}: our layout");
        assert!(!html.to_lowercase().contains("salvo"), "{path}: {html}");
    }

    let mut res = TestClient::post(format!("{BASE}/")).send(&service).await;
    assert_eq!(res.status_code, Some(StatusCode::METHOD_NOT_ALLOWED));
    let html = res.take_string().await.unwrap();
    assert!(html.contains("Not allowed") && !html.to_lowercase().contains("salvo"));

    let (res, body) = json(&service, "/api/nope").await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn head_requests_get_the_headers_without_a_body() {
    let (_server, service) = app(Script::Books(three_books())).await;
    for path in ["/", "/healthz", "/static/style.css"] {
        let mut res = TestClient::head(format!("{BASE}{path}")).send(&service).await;
        assert_eq!(res.status_code, Some(StatusCode::OK), "{path}");
        assert!(res.take_string().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn pages_and_api_answers_are_never_cached() {
    let (_server, service) = app(Script::Books(three_books())).await;
    for path in ["/", "/api/recommendations", "/?category=x", "/readyz"] {
        let (res, _) = page(&service, path).await;
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{path}");
    }
}

#[tokio::test]
async fn the_page_recovers_as_soon_as_recommendations_answers_again() {
    let (server, service) = app(Script::Fail(Code::Unavailable, "warming up")).await;
    let (res, _) = page(&service, "/").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    server.fake.set(Script::Books(three_books()));
    let (res, html) = page(&service, "/").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(titles(&html).len(), 3);
}

#[tokio::test]
async fn the_title_names_the_category_or_the_error_then_the_brand() {
    let (server, service) = app(Script::Books(three_books())).await;
    for (path, expected) in [
        ("/?category=self_help", "Self-help — Bookshop"),
        ("/?category=science_fiction&lang=ru", "Фантастика — Bookshop"),
        ("/?category=poetry", "That page address is not quite right — Bookshop"),
        ("/nowhere", "Page not found — Bookshop"),
        ("/nowhere?lang=ru", "Страница не найдена — Bookshop"),
    ] {
        let (_, html) = page(&service, path).await;
        assert_eq!(title(&html), expected, "{path}");
    }
    server.fake.set(Script::Fail(Code::Unavailable, "down"));
    let (_, html) = page(&service, "/?category=mystery").await;
    assert_eq!(title(&html), "Recommendations are unavailable right now — Bookshop");
}

#[tokio::test]
async fn one_brand_in_header_and_footer_with_the_seeds_title_beside_it() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    let brand = "<span class=\"brand-name\">Bookshop</span>";
    assert!(
        html.contains(&format!("{brand}<span class=\"tagline\">Online Books For You</span>")),
        "{html}"
    );
    assert!(html.contains("<div class=\"container\">Bookshop · <a"), "{html}");
    let (_, html) = page(&service, "/?lang=ru").await;
    assert!(
        html.contains(&format!("{brand}<span class=\"tagline\">Книги для вас</span>")),
        "{html}"
    );
}

#[tokio::test]
async fn only_pages_with_books_link_to_their_json() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/?category=self_help").await;
    assert!(html.contains(
        "<a href=\"/api/recommendations?category=self_help\">Also available as JSON</a>"
    ));
    for path in ["/?category=poetry", "/?max_results=lots", "/nowhere"] {
        let (_, html) = page(&service, path).await;
        assert!(!html.contains("/api/"), "{path}: {html}");
    }
    server.fake.set(Script::Fail(Code::Unavailable, "down"));
    let (_, html) = page(&service, "/?category=self_help").await;
    assert!(!html.contains("/api/"), "the 503 notice: {html}");
}

#[tokio::test]
async fn more_books_asks_for_more_of_the_category_keeping_the_visitors_choices() {
    let (server, service) = app(Script::Books(numbered_books(3))).await;
    let (_, html) = page(&service, "/?category=self-help").await;
    assert_eq!(more_books(&html), Some("/?category=self_help&amp;max_results=6"));
    assert!(html.contains(">More books</a>"), "{html}");

    let (_, html) = page(&service, "/?category=self_help&user_id=7&lang=ru").await;
    assert_eq!(
        more_books(&html),
        Some("/?category=self_help&amp;max_results=6&amp;user_id=7&amp;lang=ru")
    );
    assert!(html.contains(">Ещё книги</a>"), "{html}");

    server.fake.set(Script::Books(numbered_books(6)));
    let (_, html) = page(&service, "/?category=self_help&max_results=6").await;
    assert_eq!(titles(&html).len(), 6);
    assert_eq!(more_books(&html), Some("/?category=self_help&amp;max_results=9"));
}

#[tokio::test]
async fn more_books_is_hidden_when_the_category_has_no_more() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/?max_results=6").await;
    assert_eq!(titles(&html).len(), 3);
    assert_eq!(more_books(&html), None, "{html}");
    assert!(!html.contains("More books"));
}

#[tokio::test]
async fn more_books_stops_at_the_most_a_page_may_ask_for() {
    let (server, service) = app(Script::Books(numbered_books(49))).await;
    let (_, html) = page(&service, "/?max_results=49").await;
    assert_eq!(more_books(&html), Some("/?category=mystery&amp;max_results=50"));
    server.fake.set(Script::Books(numbered_books(50)));
    let (_, html) = page(&service, "/?max_results=50").await;
    assert_eq!(titles(&html).len(), 50);
    assert_eq!(more_books(&html), None, "{html}");
}

#[tokio::test]
async fn while_recommendations_is_unavailable_the_last_books_are_shown_marked_with_a_503() {
    let (server, service) = app(Script::Books(three_books())).await;
    let (res, html) = page(&service, "/?category=mystery").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    let served = titles(&html);
    assert_eq!(served.len(), 3);

    server.fake.set(Script::Fail(Code::Unavailable, "down"));
    let (res, html) = page(&service, "/?category=mystery").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(header(&res, "retry-after"), Some("5"));
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("<h1>Recommendations are unavailable right now</h1>"));
    assert!(html.contains("the books we showed last: they may be out of date"));
    assert!(html.contains("<section class=\"stale\">"), "{html}");
    assert!(html.contains("<span class=\"stale-mark\">Possibly out of date</span>"));
    assert_eq!(titles(&html), served);
    assert_eq!(covers(&html).len(), 3);
    assert!(html.contains("href=\"/?category=mystery\">Try again</a>"));
    assert_eq!(more_books(&html), None);

    // Whoever asks, in whichever language; no more books than asked for.
    let (res, html) = page(&service, "/?lang=ru&max_results=2&user_id=9").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(html.contains("Возможно, устарело"), "{html}");
    assert_eq!(titles(&html), served[..2]);
}

#[tokio::test]
async fn a_category_not_served_since_the_start_shows_the_notice_without_books() {
    let (server, service) = app(Script::Books(three_books())).await;
    page(&service, "/?category=mystery").await;
    server.fake.set(Script::Fail(Code::Unavailable, "down"));
    let (res, html) = page(&service, "/?category=self_help").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(header(&res, "retry-after"), Some("5"));
    assert!(html.contains("We could not load recommendations."), "{html}");
    assert!(titles(&html).is_empty(), "{html}");
    assert!(!html.contains("stale"), "{html}");
}

#[tokio::test]
async fn a_category_found_empty_has_no_last_books_to_show() {
    let (server, service) = app(Script::Books(three_books())).await;
    page(&service, "/?category=mystery").await;
    server.fake.set(Script::Fail(Code::NotFound, "Category not found"));
    let (res, _) = page(&service, "/?category=mystery").await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    server.fake.set(Script::Fail(Code::Unavailable, "down"));
    let (res, html) = page(&service, "/?category=mystery").await;
    assert_eq!(res.status_code, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(titles(&html).is_empty(), "{html}");
}

#[tokio::test]
async fn the_category_navigation_stays_on_one_row_that_scrolls_sideways() {
    let (_server, service) = app(Script::Books(three_books())).await;
    let (_, html) = page(&service, "/").await;
    assert!(html.contains("<nav class=\"container categories pills\""));
    let (_, css) = page(&service, "/static/style.css").await;
    let rule = css
        .split_once("\n.categories {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(rule, _)| rule)
        .expect("a .categories rule");
    assert!(rule.contains("flex-wrap: nowrap;") && rule.contains("overflow-x: auto;"), "{rule}");
}
