//! `bookshop.catalog.v1.CatalogEvents/Watch`: the catalog's version now and at each change.

use std::time::Duration;

use bookshop_proto::catalog::{
    CatalogVersion, CategoryChange, ListCategoriesRequest, RecommendRequest, RecommendResponse,
    WatchRequest, catalog_client::CatalogClient, catalog_events_client::CatalogEventsClient,
};
use tonic::Streaming;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

async fn watch(app: &TestApp) -> Streaming<CatalogVersion> {
    let mut client = CatalogEventsClient::new(app.channel().await);
    client.watch(WatchRequest {}).await.unwrap().into_inner()
}

async fn next(stream: &mut Streaming<CatalogVersion>) -> CatalogVersion {
    tokio::time::timeout(SOON, stream.message())
        .await
        .expect("no version in time")
        .unwrap()
        .expect("the stream ended")
}

#[tokio::test]
async fn the_watch_sends_the_version_in_service_at_once_and_each_new_one() {
    let app = spawn_app(&catalog_with(&["A", "B"])).await;
    let mut versions = watch(&app).await;
    let first = next(&mut versions).await;
    assert_eq!(first.version.len(), 16, "{first:?}");
    assert_eq!(first.books, 3);

    assert_eq!(first.changes, [], "nothing changed at start-up");

    write_in_place(&app.catalog, &catalog_with(&["A", "B", "C"]));
    let second = next(&mut versions).await;
    assert_ne!(second.version, first.version);
    assert_eq!(second.books, 4);
    // What the reload changed: mystery's third book.
    let added = CategoryChange {
        category: "mystery".into(),
        added: 1,
        added_ids: vec![3],
        ..Default::default()
    };
    assert_eq!(second.changes, [added]);
    // The same content on another server (or later) is the same version.
    assert_eq!(
        second.version,
        format!("{:016x}", bookshop_common::fnv1a(catalog_with(&["A", "B", "C"]).as_bytes()))
    );
}

#[tokio::test]
async fn a_rejected_edit_is_sent_with_its_position_and_the_next_good_save_clears_it() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let mut versions = watch(&app).await;
    let first = next(&mut versions).await;
    assert_eq!(first.rejected, "");
    save_by_rename(&app.catalog, "[[mystery]]\nid = 0\ntitle = \"broken\"\n");
    // The same version, still served, and why the save was not: the file's name, no directory.
    let rejected = next(&mut versions).await;
    assert_eq!(rejected.version, first.version);
    let expected = "catalog.toml:2:6: `id` must be a positive integer, got 0";
    assert!(rejected.rejected.starts_with(expected), "{rejected:?}");
    save_by_rename(&app.catalog, &catalog_with(&["Fixed"]));
    let fixed = next(&mut versions).await;
    assert_ne!(fixed.version, first.version);
    assert_eq!((fixed.books, fixed.rejected.as_str()), (2, ""));
}

#[tokio::test]
async fn the_watch_is_covered_by_the_health_service_and_ends_when_the_server_stops() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let status = app.health("bookshop.catalog.v1.CatalogEvents").await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    let mut versions = watch(&app).await;
    next(&mut versions).await;
    let stopping = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(SOON, versions.message()).await;
    assert!(matches!(ended, Ok(Ok(None)) | Ok(Err(_))), "{ended:?}");
    let stopped = tokio::time::timeout(Duration::from_secs(3), stopping).await;
    assert!(stopped.is_ok(), "the stop waited for the watch");
}

#[tokio::test]
async fn catalog_recommend_tells_the_version_its_books_were_drawn_from() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let mut versions = watch(&app).await;
    let mut catalog = CatalogClient::new(app.channel().await);
    let mut ask = async || -> RecommendResponse {
        let request = RecommendRequest {
            user_id: 1,
            category: "mystery".into(),
            max_results: 5,
            ..Default::default()
        };
        catalog.recommend(request).await.unwrap().into_inner()
    };
    let first = next(&mut versions).await;
    let answer = ask().await;
    assert_eq!(answer.version, first.version);
    assert_eq!(answer.books[0].title, "A");
    let listed = CatalogClient::new(app.channel().await)
        .list_categories(ListCategoriesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.version, first.version);

    save_by_rename(&app.catalog, &catalog_with(&["B"]));
    let second = next(&mut versions).await;
    assert_ne!(second.version, first.version);
    // Told of the new version, a client can check that this answer comes from it: the books
    // and the version are those of one catalog.
    let answer = ask().await;
    assert_eq!(answer.version, second.version);
    assert_eq!(answer.books[0].title, "B");
}

#[tokio::test]
async fn catalog_recommend_answers_the_books_kept_first_while_the_category_has_them() {
    let titles: Vec<String> = (1..=20).map(|n| format!("Book {n}")).collect();
    let app = spawn_app(&catalog_with(&titles)).await;
    let catalog = CatalogClient::new(app.channel().await);
    let ask = |keep: Vec<i32>, max_results| RecommendRequest {
        user_id: 1,
        category: "mystery".into(),
        max_results,
        keep,
        ..Default::default()
    };
    let ids = async |request| -> Vec<i32> {
        let answer = catalog.clone().recommend(request).await.unwrap().into_inner();
        answer.books.iter().map(|book| book.id).collect()
    };
    // In the order given; an id the category lacks (1000 is self-help's, 99 nobody's) is
    // skipped, a repeated one answered once; the rest drawn, none twice.
    let answer = ids(ask(vec![7, 1000, 3, 99, 7, 12], 5)).await;
    assert_eq!(answer[..3], [7, 3, 12]);
    let mut distinct = answer.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{answer:?}");
    // Never more than max_results, kept or not.
    assert_eq!(ids(ask(vec![1, 2, 3, 4], 2)).await, [1, 2]);
}
