//! The live catalog end to end: real Recommendations replicas on a temporary catalog, a real
//! Marketplace over sockets. Categories come from the catalog; `/events` tells of each change
//! once, however many replicas; reconnections, the stream limit and shutdown.

use std::{path::Path, time::Duration};

use bookshop_testing::eventually;
use marketplace::settings::Settings;

use crate::support::{
    EventStream, MarketplaceProcess, RecommendationsProcess, catalog_dir, get, settings_for,
    titles, write_catalog,
};

const PATIENCE: Duration = Duration::from_secs(10);

/// A catalog with a poetry shelf (named in both languages, the Russian name with markup that
/// must be escaped) besides a mystery one; `marker` is the first poetry title, so each call
/// writes a new version.
fn write_with_poetry(path: &Path, marker: &str) {
    let text = format!(
        "[categories.poetry]\nen = \"Poetry\"\nru = \"Поэзия <i>\"\norder = 1\n\n\
         [[poetry]]\nid = 1\ntitle = \"{marker}\"\n\n[[poetry]]\nid = 2\ntitle = \"Odes\"\n\n\
         [[mystery]]\nid = 3\ntitle = \"Clue\"\n"
    );
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Recommendations replicas on `catalog`, and a Marketplace in front of all of them
/// (`settings` changed by `tune`).
async fn stack(
    catalog: &Path,
    replicas: usize,
    tune: impl FnOnce(&mut Settings),
) -> (Vec<RecommendationsProcess>, MarketplaceProcess) {
    let mut started = Vec::new();
    for _ in 0..replicas {
        started.push(RecommendationsProcess::start(catalog).await);
    }
    let mut settings = settings_for(started[0].addr.port(), 1000);
    settings.recommendations.addresses =
        started.iter().map(|r| r.addr.to_string().parse().unwrap()).collect();
    tune(&mut settings);
    let marketplace = MarketplaceProcess::start(settings).await;
    let following = eventually(PATIENCE, async || api_version(&marketplace).await != "").await;
    assert!(following, "the Marketplace never learnt the catalog's version");
    (started, marketplace)
}

/// The version of the next catalog event on `stream`, and what its reload changed.
async fn next_change(stream: &mut EventStream) -> (String, serde_json::Value) {
    let event = stream.next(PATIENCE).await.expect("the stream ended");
    assert_eq!(event.event, "catalog", "{event:?}");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["version"], event.id.as_str());
    (event.id, data["changes"].clone())
}

async fn next_version(stream: &mut EventStream) -> String {
    next_change(stream).await.0
}

#[tokio::test]
async fn a_shelf_added_to_the_catalog_is_in_the_navigation_and_serves_its_books() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let (_replicas, marketplace) = stack(&catalog, 1, |_| {}).await;
    let before = marketplace.get("/?category=poetry").await;
    assert_eq!(before.status, 400, "no poetry yet: {}", before.body);

    write_with_poetry(&catalog, "Sonnets");
    let shown =
        eventually(PATIENCE, async || marketplace.get("/?category=poetry").await.status == 200)
            .await;
    assert!(shown, "the poetry shelf never appeared");
    let page = marketplace.get("/?category=poetry&max_results=2").await;
    assert!(page.body.contains("<h1>Poetry</h1>"), "{}", page.body);
    assert!(page.body.contains("<title>Poetry — Bookshop</title>"));
    let mut shelf = titles(&page.body);
    shelf.sort();
    assert_eq!(shelf, ["Odes", "Sonnets"]);
    // The catalog orders poetry first, and names it in Russian too.
    let home = marketplace.get("/?lang=ru").await;
    let nav = home.body.split("class=\"container categories pills\"").nth(1).unwrap();
    assert!(nav.find("Поэзия").unwrap() < nav.find("Детективы").unwrap(), "{nav}");
    let api = marketplace.get("/api/categories?lang=ru").await;
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(json["categories"][0]["key"], "poetry");
    assert_eq!(json["categories"][0]["name"], "Поэзия <i>");
    let books = marketplace.get("/api/recommendations?category=poetry").await;
    let json: serde_json::Value = serde_json::from_str(&books.body).unwrap();
    assert_eq!(json["version"], api_version(&marketplace).await);
    assert!(json["recommendations"][0]["cover"]["initials"].is_string());
}

async fn api_version(marketplace: &MarketplaceProcess) -> serde_json::Value {
    let api = marketplace.get("/api/categories").await;
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    json["version"].clone()
}

#[tokio::test]
async fn each_change_is_one_event_however_many_replicas_and_a_rejected_edit_none() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let hide_errors = |s: &mut Settings| s.homepage.show_catalog_errors = false;
    let (mut replicas, marketplace) = stack(&catalog, 3, hide_errors).await;
    let mut stream = EventStream::open(marketplace.addr, "/events", &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.content_type, "text/event-stream");
    // The version in service, at once.
    let mut seen = vec![next_version(&mut stream).await];
    for marker in ["One", "Two"] {
        write_with_poetry(&catalog, marker);
        seen.push(next_version(&mut stream).await);
    }
    // What each reload changed comes with its version, for the page's notice.
    write_with_poetry(&catalog, "Two and a half");
    let (version, changes) = next_change(&mut stream).await;
    seen.push(version);
    let retitled = serde_json::json!([{ "category": "poetry", "added": 0, "added_ids": [],
        "removed": 0, "retitled": 1, "renamed": false }]);
    assert_eq!(changes, retitled);
    // A rejected edit (a duplicate id) changes nothing; the next valid edit is the next event
    // (the rejection's own event is off here: see the next test).
    let duplicate = "[[mystery]]\nid = 1\ntitle = \"A\"\n[[mystery]]\nid = 1\ntitle = \"B\"\n";
    std::fs::write(&catalog, duplicate).unwrap();
    write_with_poetry(&catalog, "Three");
    seen.push(next_version(&mut stream).await);
    // Two replicas go away, whichever the version stream was on: it is opened again on the
    // one left, which serves the same version (no event), and the next change comes through.
    for replica in replicas.drain(..2) {
        replica.stop().await;
    }
    write_with_poetry(&catalog, "Four");
    seen.push(next_version(&mut stream).await);

    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct, seen, "an event repeated a version: {seen:?}");
    assert_eq!(seen.len(), 6);
    assert_eq!(api_version(&marketplace).await, seen[5].as_str());
}

/// The message of the next event on `stream`, which tells of a rejected save.
async fn next_rejection(stream: &mut EventStream) -> String {
    let event = stream.next(PATIENCE).await.expect("the stream ended");
    assert_eq!(event.event, "rejected", "{event:?}");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    data["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rejected_save_is_told_to_open_pages_until_a_good_one_unless_turned_off() {
    let (dir, catalog) = catalog_dir(&["Clue"]);
    let (replicas, shown) = stack(&catalog, 1, |_| {}).await;
    let mut settings = settings_for(replicas[0].addr.port(), 1000);
    settings.homepage.show_catalog_errors = false;
    let hidden = MarketplaceProcess::start(settings).await;
    let mut told = EventStream::open(shown.addr, "/events", &[]).await;
    let mut not_told = EventStream::open(hidden.addr, "/events", &[]).await;
    let first = next_version(&mut told).await;
    assert_eq!(next_version(&mut not_told).await, first);

    std::fs::write(&catalog, "[[mystery]]\nid = 1\ntitle = \"<b>Clue\n").unwrap();
    let message = next_rejection(&mut told).await;
    assert!(message.starts_with("catalog.toml:3:"), "{message}");
    assert!(message.contains("invalid basic string"), "{message}");
    assert!(!message.contains(&*dir.path().to_string_lossy()), "a server path is shown: {message}");
    // A page opened now is told at once, after the version it shows.
    let mut late = EventStream::open(shown.addr, "/events", &[]).await;
    assert_eq!(next_version(&mut late).await, first);
    assert_eq!(next_rejection(&mut late).await, message);

    write_catalog(&catalog, &["Clue", "Fixed"]);
    let fixed = next_version(&mut told).await;
    assert_eq!(next_rejection(&mut told).await, "", "the good save did not clear it");
    // Turned off, the rejection never came: the next event is the good save's version.
    assert_eq!(next_version(&mut not_told).await, fixed);
}

#[tokio::test]
async fn the_catalog_api_and_a_metric_tell_which_replica_serves_which_version() {
    let (_first_dir, first) = catalog_dir(&["Clue"]);
    let (_second_dir, second) = catalog_dir(&["Clue", "Not yet everywhere"]);
    let replicas =
        [RecommendationsProcess::start(&first).await, RecommendationsProcess::start(&second).await];
    let mut settings = settings_for(replicas[0].addr.port(), 1000);
    settings.recommendations.addresses =
        replicas.iter().map(|r| r.addr.to_string().parse().unwrap()).collect();
    let marketplace = MarketplaceProcess::start(settings).await;
    let following = eventually(PATIENCE, async || api_version(&marketplace).await != "").await;
    assert!(following, "the Marketplace never learnt the catalog's version");
    let catalog = async || -> serde_json::Value {
        serde_json::from_str(&marketplace.get("/api/catalog").await.body).unwrap()
    };
    let behind = async || {
        let metrics = marketplace.get("/metrics").await.body;
        let line =
            metrics.lines().find(|l| l.starts_with("bookshop_catalog_replicas_behind ")).unwrap();
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let told = catalog().await;
    let followed = told["version"].as_str().unwrap().to_owned();
    let mut listed: Vec<_> = told["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["address"].as_str().unwrap().to_owned(), r["version"].as_str().unwrap().to_owned())
        })
        .collect();
    listed.sort();
    let mut expected: Vec<_> = replicas.iter().map(|r| r.addr.to_string()).collect();
    expected.sort();
    assert_eq!(listed.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(), expected);
    assert_ne!(listed[0].1, listed[1].1, "two catalogs, one version: {told}");
    assert!(listed.iter().any(|(_, v)| *v == followed), "{told}");
    assert_eq!(behind().await, "1");

    // The edit reaches the other replica: one version everywhere, none behind.
    std::fs::copy(&first, &second).unwrap();
    let caught_up = eventually(PATIENCE, async || {
        let told = catalog().await;
        told["replicas"].as_array().unwrap().iter().all(|r| r["version"] == told["version"])
    })
    .await;
    assert!(caught_up, "{}", catalog().await);
    assert_eq!(behind().await, "0");
}

#[tokio::test]
async fn a_browser_coming_back_is_told_only_of_a_version_it_has_not_seen() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let (_replicas, marketplace) = stack(&catalog, 1, |_| {}).await;
    let mut first = EventStream::open(marketplace.addr, "/events", &[]).await;
    let old = next_version(&mut first).await;
    write_with_poetry(&catalog, "New");
    let new = next_version(&mut first).await;

    // Back with the old version: told of the new one at once.
    let headers = [("last-event-id", old.as_str())];
    let mut back = EventStream::open(marketplace.addr, "/events", &headers).await;
    assert_eq!(next_version(&mut back).await, new);
    // `?since=` does the same on a first connection.
    let mut since = EventStream::open(marketplace.addr, &format!("/events?since={old}"), &[]).await;
    assert_eq!(next_version(&mut since).await, new);

    // Back with the current version: nothing until the next change.
    let headers = [("last-event-id", new.as_str())];
    let mut current = EventStream::open(marketplace.addr, "/events", &headers).await;
    write_with_poetry(&catalog, "Newer");
    let newer = next_version(&mut current).await;
    assert_ne!(newer, new);
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_and_counted_and_all_end_on_stop() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let (_replicas, marketplace) = stack(&catalog, 1, |s| s.server.max_event_streams = 2).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = EventStream::open(marketplace.addr, "/events", &[]).await;
        assert_eq!(stream.status, 200);
        next_version(&mut stream).await;
        open.push(stream);
    }
    let refused = get(marketplace.addr, "/events", &[]).await;
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    let metrics = marketplace.get("/metrics").await.body;
    assert!(metrics.contains("bookshop_event_streams 2\n"), "{metrics}");
    assert!(metrics.contains("bookshop_event_streams_refused_total 1\n"), "{metrics}");
    assert!(metrics.contains("bookshop_catalog_following 1\n"), "{metrics}");

    // A closed stream gives its place back.
    drop(open.pop());
    let admitted = eventually(PATIENCE, async || {
        EventStream::open(marketplace.addr, "/events", &[]).await.status == 200
    })
    .await;
    assert!(admitted, "the closed stream's place was not given back");

    let MarketplaceProcess { running, .. } = marketplace;
    let mut stopping = tokio::spawn(running.stop(PATIENCE));
    assert!(open[0].ended(PATIENCE).await, "the stream outlived the stop");
    let stopped = tokio::time::timeout(PATIENCE, &mut stopping).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

#[tokio::test]
async fn a_home_category_the_catalog_lacks_falls_back_to_its_first_shelf() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    write_with_poetry(&catalog, "Sonnets");
    let (_replicas, marketplace) =
        stack(&catalog, 1, |s| s.homepage.category = "history".into()).await;
    let fell_back =
        eventually(PATIENCE, async || marketplace.get("/").await.body.contains("<h1>Poetry</h1>"))
            .await;
    assert!(fell_back, "{}", marketplace.get("/").await.body);
}

#[tokio::test]
async fn titles_and_authors_are_in_the_readers_language_where_the_catalog_gives_them() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let text = "[[mystery]]\nid = 1\ntitle = \"Мальтийский сокол\"\nauthor = \"Дэшил Хэммет\"\n\
                en = { title = \"The Maltese Falcon\", author = \"Dashiell Hammett\" }\n";
    std::fs::write(&catalog, text).unwrap();
    let (_replicas, marketplace) = stack(&catalog, 1, |_| {}).await;
    let english = marketplace.get("/?category=mystery&lang=en").await.body;
    assert_eq!(titles(&english), ["The Maltese Falcon"]);
    assert!(english.contains("Dashiell Hammett"), "{english}");
    let russian = marketplace.get("/?category=mystery&lang=ru").await.body;
    assert_eq!(titles(&russian), ["Мальтийский сокол"]);
    let api = marketplace.get("/api/recommendations?category=mystery&lang=en").await.body;
    assert!(api.contains(r#""title":"The Maltese Falcon""#), "{api}");
}

#[tokio::test]
async fn more_books_is_offered_only_when_the_category_has_more() {
    let (_dir, catalog) = catalog_dir(&["A", "B", "C"]);
    let (_replicas, marketplace) = stack(&catalog, 1, |_| {}).await;
    let page = marketplace.get("/?category=mystery&max_results=3").await.body;
    assert_eq!(titles(&page).len(), 3);
    assert!(!page.contains("More books"), "all three are shown: {page}");
    let api = marketplace.get("/api/categories").await.body;
    assert!(api.contains(r#""books":3"#), "{api}");
    crate::support::write_catalog(&catalog, &["A", "B", "C", "D"]);
    let offered = eventually(PATIENCE, async || {
        marketplace.get("/?category=mystery&max_results=3").await.body.contains("More books")
    });
    assert!(offered.await, "a fourth book, and no \"More books\"");
}

#[tokio::test]
async fn a_quiet_stream_outlives_a_short_idle_timeout() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let idle = Duration::from_secs(2);
    let (_replicas, marketplace) = stack(&catalog, 1, |s| s.server.idle_timeout = idle).await;
    let mut stream = EventStream::open(marketplace.addr, "/events", &[]).await;
    next_version(&mut stream).await;
    // Its heartbeat comes within the idle timeout, which would otherwise close it.
    assert!(!stream.ended(idle * 3).await, "the quiet stream was closed");
}

#[tokio::test]
async fn the_page_carries_its_catalog_version_for_the_live_script() {
    let (_dir, catalog) = catalog_dir(&["Clue"]);
    let (_replicas, marketplace) = stack(&catalog, 1, |_| {}).await;
    let mut stream = EventStream::open(marketplace.addr, "/events", &[]).await;
    let version = next_version(&mut stream).await;
    let page = marketplace.get("/").await.body;
    assert!(page.contains(&format!("<body data-version=\"{version}\">")), "{page}");
    assert!(page.contains("data-category=\"mystery\""), "{page}");
    let script = marketplace.get("/static/live.js").await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("new EventSource"));
}
