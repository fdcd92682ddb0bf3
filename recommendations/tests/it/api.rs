//! The `Recommend` API through a real client: every rule and status code.

use std::collections::HashSet;

use recommendations::selection::Selection;
use tonic::Code;

use crate::helpers::*;

const SEED_TITLES: [&str; 3] = ["A", "B", "C"];

/// `count` mystery titles: "T0", "T1", …
fn numbered_titles(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("T{i}")).collect()
}

/// A server that picks per user, from these mystery titles.
async fn per_user_app(mystery: &[String]) -> TestApp {
    spawn_app_with(&catalog_with(mystery), |s| {
        s.recommend.selection = Selection::PerUser;
    })
    .await
}

#[tokio::test]
async fn recommend_returns_distinct_books_of_the_requested_category() {
    let app = spawn_app(&catalog_with(&["A", "B", "C", "D", "E"])).await;
    let books = app.books(1, MYSTERY, 3).await.unwrap();
    let ids: HashSet<i32> = books.iter().map(|b| b.id).collect();
    assert_eq!(books.len(), 3);
    assert_eq!(ids.len(), 3, "no repeats");
    for book in &books {
        assert!((1..=5).contains(&book.id));
        assert_eq!(book.author, format!("Author {}", book.id));
    }
    assert_eq!(app.titles(SELF_HELP, 3).await.unwrap(), ["Help"]);
}

#[tokio::test]
async fn unset_max_results_returns_the_default_of_three() {
    let app = spawn_app(&catalog_with(&["A", "B", "C", "D", "E"])).await;
    assert_eq!(app.titles(MYSTERY, 0).await.unwrap().len(), 3);
}

#[tokio::test]
async fn max_results_is_capped_by_the_category_size_and_the_configured_cap() {
    let titles = numbered_titles(60);
    let app = spawn_app(&catalog_with(&titles)).await;
    assert_eq!(app.titles(MYSTERY, 1000).await.unwrap().len(), 50);
    assert_eq!(app.titles(SELF_HELP, 1000).await.unwrap().len(), 1);

    let capped = spawn_app_with(&catalog_with(&titles), |s| {
        s.recommend.max_results_cap = 10;
        s.recommend.default_max_results = 4;
    })
    .await;
    assert_eq!(capped.titles(MYSTERY, 1000).await.unwrap().len(), 10);
    assert_eq!(capped.titles(MYSTERY, 0).await.unwrap().len(), 4);
}

#[tokio::test]
async fn negative_max_results_is_invalid_argument() {
    let app = spawn_app(&catalog_with(&SEED_TITLES)).await;
    let status = app.titles(MYSTERY, -1).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("-1"), "{}", status.message());
}

#[tokio::test]
async fn a_category_outside_the_enum_is_not_found() {
    let app = spawn_app(&catalog_with(&SEED_TITLES)).await;
    let status = app.titles(42, 3).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "Category not found");
}

#[tokio::test]
async fn a_category_without_books_is_not_found() {
    let app = spawn_app(&catalog_with(&SEED_TITLES)).await;
    let status = app.titles(SCIENCE_FICTION, 3).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "Category not found");
}

#[tokio::test]
async fn per_user_selection_is_stable_per_user_and_differs_between_users() {
    let app = per_user_app(&numbered_titles(30)).await;
    let mut client = app.client().await;
    let mut ask = async |user_id| recommend(&mut client, user_id, MYSTERY, 5).await.unwrap();
    let first = ask(7).await;
    assert_eq!(ask(7).await, first);
    assert_eq!(ask(7).await, first);
    let others: HashSet<Vec<i32>> = {
        let mut set = HashSet::new();
        for user in 100..120 {
            set.insert(ask(user).await.iter().map(|b| b.id).collect());
        }
        set
    };
    assert!(others.len() > 15, "only {} distinct picks for 20 users", others.len());
}

#[tokio::test]
async fn per_user_picks_change_when_the_catalog_changes() {
    let mut titles = numbered_titles(30);
    let app = per_user_app(&titles).await;
    let picks = async || {
        let mut all = Vec::new();
        for user in 1..=10 {
            let books = app.books(user, MYSTERY, 5).await.unwrap();
            all.push(books.iter().map(|b| b.id).collect::<Vec<_>>());
        }
        all
    };
    let before = picks().await;
    // Same books, one title changed: the content hash (and so the seed) changes.
    titles[29] = "T29 (2nd edition)".into();
    app.edit_catalog(save_by_rename, &titles).await;
    let after = picks().await;
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(changed >= 8, "only {changed} of 10 users got a new pick");
}

#[tokio::test]
async fn a_shelf_added_to_the_file_is_listed_and_served_by_key_while_the_seeds_api_is_unchanged() {
    use bookshop_proto::catalog::{
        ListCategoriesRequest, RecommendRequest, catalog_client::CatalogClient,
    };
    let app = spawn_app(&catalog_with(&["A", "B"])).await;
    let with_poetry = format!(
        "{}\n[[poetry]]\nid = 500\ntitle = \"Evgeny Onegin\"\n\n[categories.poetry]\nru = \"Поэзия\"\n",
        catalog_with(&["A", "B"])
    );
    save_by_rename(&app.catalog, &with_poetry);
    let mut catalog = CatalogClient::new(app.channel().await);
    let listed = eventually(SOON, async || {
        let listed = catalog.list_categories(ListCategoriesRequest {}).await.unwrap();
        listed.into_inner().categories.iter().any(|c| c.key == "poetry")
    })
    .await;
    assert!(listed, "the new shelf was never listed");
    let categories =
        catalog.list_categories(ListCategoriesRequest {}).await.unwrap().into_inner().categories;
    let poetry = categories.iter().find(|c| c.key == "poetry").unwrap();
    assert_eq!((poetry.names["en"].as_str(), poetry.names["ru"].as_str()), ("Poetry", "Поэзия"));
    assert_eq!(poetry.books, 1);
    let request = |category: &str| RecommendRequest {
        user_id: 1,
        category: category.into(),
        max_results: 5,
        ..Default::default()
    };
    let books = catalog.recommend(request("poetry")).await.unwrap().into_inner().books;
    assert_eq!(books[0].title, "Evgeny Onegin");
    let mystery = catalog.recommend(request("mystery")).await.unwrap().into_inner().books;
    assert_eq!(mystery.len(), 2);
    let missing = catalog.recommend(request("history")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let negative = RecommendRequest { max_results: -1, ..request("poetry") };
    let invalid = catalog.recommend(negative).await.unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    // The seed's API: its enum values as before, nothing else.
    assert_eq!(app.titles(MYSTERY, 5).await.unwrap().len(), 2);
    assert_eq!(app.titles(SELF_HELP, 5).await.unwrap(), ["Help"]);
    assert_eq!(app.titles(7, 5).await.unwrap_err().code(), tonic::Code::NotFound);
}
