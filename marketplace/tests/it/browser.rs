//! The live script in headless Chromium (Debian's `chromium`, over the DevTools protocol). Where
//! it is not installed these tests say so and pass, unless `BOOKSHOP_REQUIRE_BROWSER=1` (CI).

use std::time::Duration;

use chromiumoxide::{
    Browser, BrowserConfig,
    cdp::browser_protocol::{fetch, page::EventLoadEventFired},
};
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;

use crate::support::{
    MarketplaceProcess, RecommendationsProcess, catalog_dir, reserved_port, settings_for,
};

const CHROMIUM: &str = "/usr/bin/chromium";
/// `retry: 100\nevent: catalog\ndata: {"version":"00000000000000ff"}\n\n`, in base64 as the
/// protocol carries bodies: a stream that ends at once, so that the page comes back for more.
const STREAM_BASE64: &str =
    "cmV0cnk6IDEwMApldmVudDogY2F0YWxvZwpkYXRhOiB7InZlcnNpb24iOiIwMDAwMDAwMDAwMDAwMGZmIn0KCg==";

/// A headless browser and what keeps it going, or `None` where there is none to run.
async fn browser() -> Option<(Browser, tempfile::TempDir, JoinHandle<()>)> {
    if !std::path::Path::new(CHROMIUM).exists() {
        let required = std::env::var("BOOKSHOP_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "BOOKSHOP_REQUIRE_BROWSER=1 but {CHROMIUM} is not installed");
        println!("skipped: {CHROMIUM} is not installed (apt install chromium)");
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    // The sandbox cannot run as root (CI, containers); the page is our own, on loopback.
    let config = BrowserConfig::builder().chrome_executable(CHROMIUM).new_headless_mode();
    let config = config.no_sandbox().user_data_dir(profile.path()).build().unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    Some((browser, profile, driver))
}

/// The string `expression` evaluates to, once `done` with it (polled for 10 s), else as it is.
async fn text_until(
    page: &chromiumoxide::Page,
    expression: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text: String =
            page.evaluate(expression).await.unwrap().into_value().unwrap_or_default();
        if done(&text) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the page's books, once it contains `wanted`, else as it is.
async fn books_text(page: &chromiumoxide::Page, wanted: &str) -> String {
    let books = "document.getElementById('books').textContent";
    text_until(page, books, |text| text.contains(wanted)).await
}

/// Into `target/e2e-screenshots/`, with the compose e2e test's.
async fn screenshot(page: &chromiumoxide::Page, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let params = chromiumoxide::page::ScreenshotParams::builder().build();
    page.save_screenshot(params, dir.join(name)).await.unwrap();
}

#[tokio::test]
async fn titles_are_in_the_pages_language_and_an_update_moves_nothing() {
    let Some((browser, _profile, driver)) = browser().await else { return };
    let falcon = "[[mystery]]\nid = 1\ntitle = \"Мальтийский сокол\"\n\
                  en = { title = \"The Maltese Falcon\" }\n";
    let (_dir, catalog) = catalog_dir(&[]);
    std::fs::write(&catalog, falcon).unwrap();
    let recommendations = RecommendationsProcess::start(&catalog).await;
    let marketplace =
        MarketplaceProcess::start(settings_for(recommendations.addr.port(), 1000)).await;
    let english = browser.new_page(marketplace.url("/?category=mystery&lang=en")).await.unwrap();
    assert!(books_text(&english, "The Maltese Falcon").await.contains("The Maltese Falcon"));
    // A Russian page, in a browser that prefers English: its live updates stay in Russian.
    let russian = browser.new_page(marketplace.url("/?category=mystery&lang=ru")).await.unwrap();
    assert!(books_text(&russian, "Мальтийский сокол").await.contains("Мальтийский сокол"));
    let top = "document.getElementById('books').getBoundingClientRect().top";
    let before: f64 = russian.evaluate(top).await.unwrap().into_value().unwrap();
    let thin_man =
        "[[mystery]]\nid = 2\ntitle = \"Худой человек\"\nen = { title = \"The Thin Man\" }\n";
    std::fs::write(catalog.with_extension("tmp"), format!("{falcon}{thin_man}")).unwrap();
    std::fs::rename(catalog.with_extension("tmp"), &catalog).unwrap();
    let updated = books_text(&russian, "Худой человек").await;
    assert!(updated.contains("Худой человек") && !updated.contains("Thin"), "{updated}");
    // "The catalog was updated" is shown now, and moves nothing.
    let notice = "document.getElementById('live-notice').textContent";
    let notice: String = russian.evaluate(notice).await.unwrap().into_value().unwrap();
    assert!(!notice.is_empty(), "no notice of the update");
    let after: f64 = russian.evaluate(top).await.unwrap().into_value().unwrap();
    assert_eq!(before, after, "the books moved when the notice came");
    drop(browser);
    driver.abort();
}

#[tokio::test]
async fn a_rejected_save_is_shown_on_the_open_page_until_a_good_one_and_moves_nothing() {
    let Some((browser, _profile, driver)) = browser().await else { return };
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let recommendations = RecommendationsProcess::start(&catalog).await;
    let marketplace =
        MarketplaceProcess::start(settings_for(recommendations.addr.port(), 1000)).await;
    let page = browser.new_page(marketplace.url("/?category=mystery&lang=en")).await.unwrap();
    assert!(books_text(&page, "Clue").await.contains("Clue"));
    let top = "document.getElementById('books').getBoundingClientRect().top";
    let before: f64 = page.evaluate(top).await.unwrap().into_value().unwrap();
    let shown = "(n => n.hidden ? '' : n.textContent)(document.getElementById('catalog-rejected'))";

    // Markup in the bad line is shown as text, not taken for markup.
    std::fs::write(&catalog, "[[mystery]]\nid = 1\ntitle = \"<b>Clue\n").unwrap();
    let notice = text_until(&page, shown, |text| !text.is_empty()).await;
    assert!(notice.contains("catalog.toml:3:"), "{notice:?}");
    assert!(notice.contains("<b>Clue") || notice.contains("invalid basic string"), "{notice}");
    let bold = page.evaluate("document.querySelectorAll('#catalog-rejected b').length").await;
    assert_eq!(bold.unwrap().into_value::<u32>().unwrap(), 0, "the message was taken for markup");
    let after: f64 = page.evaluate(top).await.unwrap().into_value().unwrap();
    assert_eq!(before, after, "the books moved when the notice came");
    screenshot(&page, "catalog-rejected.png").await;

    std::fs::write(
        catalog.with_extension("tmp"),
        "[[mystery]]\nid = 1\ntitle = \"Clue\"\n[[mystery]]\nid = 2\ntitle = \"Fixed\"\n",
    )
    .unwrap();
    std::fs::rename(catalog.with_extension("tmp"), &catalog).unwrap();
    assert_eq!(text_until(&page, shown, str::is_empty).await, "", "the good save did not clear it");
    drop(browser);
    driver.abort();
}

/// The ids of the page's books, each with its place on the page.
async fn places(page: &chromiumoxide::Page) -> Vec<(String, i64, i64)> {
    let js = "[...document.querySelectorAll('#books .book')].map(b => { \
              const r = b.getBoundingClientRect(); return [b.dataset.id, r.left, r.top]; })";
    let places: Vec<(String, f64, f64)> = page.evaluate(js).await.unwrap().into_value().unwrap();
    places.into_iter().map(|(id, left, top)| (id, left as i64, top as i64)).collect()
}

#[tokio::test]
async fn an_added_book_joins_the_page_marked_new_and_the_others_keep_their_places() {
    let Some((browser, _profile, driver)) = browser().await else { return };
    let book = |id: i32, title: &str| format!("[[mystery]]\nid = {id}\ntitle = \"{title}\"\n");
    let five: String = (1..=5).map(|id| book(id, &format!("Book {id}"))).collect();
    let (_dir, catalog) = catalog_dir(&[]);
    std::fs::write(&catalog, &five).unwrap();
    let recommendations = RecommendationsProcess::start(&catalog).await;
    let marketplace =
        MarketplaceProcess::start(settings_for(recommendations.addr.port(), 1000)).await;
    let page = browser.new_page(marketplace.url("/?category=mystery&lang=en")).await.unwrap();
    assert!(books_text(&page, "Book").await.contains("Book"));
    let before = places(&page).await;
    assert_eq!(before.len(), 3);
    let russian = browser.new_page(marketplace.url("/?category=mystery&lang=ru")).await.unwrap();
    assert!(books_text(&russian, "Book").await.contains("Book"));

    // One of the books shown is retitled, and a sixth book is added.
    let shown: i32 = before[1].0.parse().unwrap();
    let edited = five.replace(&format!("\"Book {shown}\""), "\"Retitled\"");
    std::fs::write(catalog.with_extension("tmp"), format!("{edited}{}", book(6, "Added"))).unwrap();
    std::fs::rename(catalog.with_extension("tmp"), &catalog).unwrap();
    let text = books_text(&page, "Added").await;
    assert!(text.contains("Added") && text.contains("Retitled"), "{text}");
    let after = places(&page).await;
    assert_eq!(after[..3], before[..], "the books shown moved or changed");
    assert_eq!(after[3].0, "6");
    let marked = "[...document.querySelectorAll('#books .book-new')].map(b => b.dataset.id)";
    let marked: Vec<String> = page.evaluate(marked).await.unwrap().into_value().unwrap();
    assert_eq!(marked, ["6"]);
    let notice = "document.getElementById('live-notice').textContent";
    let english = text_until(&page, notice, |text| text.contains("added")).await;
    assert_eq!(english, "1 book added to Mystery; 1 book changed in Mystery");
    // The same in Russian, with its plural forms.
    let russian = text_until(&russian, notice, |text| text.contains("добавлена")).await;
    assert_eq!(russian, "1 книга добавлена в «Детективы»; 1 книга изменена в «Детективы»");
    screenshot(&page, "catalog-change.png").await;
    drop(browser);
    driver.abort();
}

#[tokio::test]
async fn an_error_page_reloads_at_most_once_for_a_version_its_marketplace_does_not_follow() {
    let Some((browser, _profile, driver)) = browser().await else { return };
    // Nothing answers at this port: the Marketplace serves its 503 page, marked to reload.
    let (_reserved, port) = reserved_port();
    let marketplace = MarketplaceProcess::start(settings_for(port, 300)).await;
    let page = browser.new_page("about:blank").await.unwrap();
    // Its event stream comes from another Marketplace, which follows another catalog version,
    // as two Marketplaces behind one balancer do while a ConfigMap reaches their pods apart.
    let events = fetch::RequestPattern::builder().url_pattern("*/events*").build();
    page.execute(fetch::EnableParams::builder().pattern(events).build()).await.unwrap();
    let mut paused = page.event_listener::<fetch::EventRequestPaused>().await.unwrap();
    let other = page.clone();
    let answering = tokio::spawn(async move {
        while let Some(request) = paused.next().await {
            let header = fetch::HeaderEntry::new("content-type", "text/event-stream");
            let answer = fetch::FulfillRequestParams::builder()
                .request_id(request.request_id.clone())
                .response_code(200)
                .response_header(header)
                .body(chromiumoxide::Binary::from(STREAM_BASE64.to_owned()))
                .build()
                .unwrap();
            let _ = other.execute(answer).await;
        }
    });
    let mut loads = page.event_listener::<EventLoadEventFired>().await.unwrap();
    page.goto(marketplace.url("/")).await.unwrap();
    let mut count = 0;
    let watched = tokio::time::timeout(Duration::from_secs(6), async {
        while loads.next().await.is_some() {
            count += 1;
        }
    });
    let _ = watched.await;
    assert!((1..=2).contains(&count), "the page loaded {count} times in 6 s");
    answering.abort();
    drop(browser);
    driver.abort();
}
