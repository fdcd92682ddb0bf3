//! Hostile input: the catalog parser and the gRPC server against what an attacker (or a
//! clumsy editor) can send.

use std::time::{Duration, Instant};

use bookshop_proto::RecommendationRequest;
use proptest::prelude::*;
use recommendations::catalog::Catalog;
use tonic::{Code, Request, codegen::http::uri::PathAndQuery, metadata::MetadataValue};

use crate::helpers::*;

/// Pieces that catalogs are made of, to build inputs close enough to TOML to reach deep into
/// the parser and the validation rules.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[mystery]]\n".to_owned()),
        Just("[[science_fiction]]\n".to_owned()),
        Just("[[self_help]]\n".to_owned()),
        Just("[mystery]\n".to_owned()),
        Just("[[romance]]\n".to_owned()),
        (any::<i64>()).prop_map(|n| format!("id = {n}\n")),
        ("[a-zA-Zа-я<>&\"' ]{0,20}").prop_map(|t| format!("title = \"{t}\"\n")),
        ("[^\"\\\\]{0,20}").prop_map(|t| format!("author = '{t}'\n")),
        Just("title = \"\"\n".to_owned()),
        Just("id = \"1\"\n".to_owned()),
        Just("mystery = []\n".to_owned()),
        Just("x = [[[[[[[[[[\n".to_owned()),
        Just("title = \"\"\"\nmulti\n\"\"\"\n".to_owned()),
        ".{0,10}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_catalog_parser_never_panics_on_any_text(text in ".{0,400}") {
        let _ = Catalog::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn the_catalog_parser_never_panics_on_catalog_like_text(
        parts in prop::collection::vec(fragment(), 0..40)
    ) {
        let text = parts.concat();
        match Catalog::from_toml_str(&text, "fuzz.toml") {
            // What it accepts obeys the rules.
            Ok(catalog) => {
                let mut ids = std::collections::HashSet::new();
                for category in catalog.categories() {
                    prop_assert!(!category.books.is_empty());
                    for book in &category.books {
                        prop_assert!(book.id > 0);
                        prop_assert!(ids.insert(book.id), "duplicate id {}", book.id);
                        prop_assert!(!book.title.trim().is_empty());
                    }
                }
                prop_assert!(!catalog.is_empty());
            }
            // What it rejects, it rejects with a position inside the text.
            Err(recommendations::catalog::CatalogError::Invalid { location, .. }) => {
                prop_assert!(location.line >= 1 && location.line <= text.lines().count().max(1) + 1);
                prop_assert!(location.column >= 1);
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
}

#[test]
fn deeply_nested_input_is_refused_quickly_not_a_stack_overflow() {
    for text in [
        format!("a = {}", "[".repeat(100_000)),
        format!("a = {}", "{x=".repeat(100_000)),
        format!("[{}b]", "a.".repeat(100_000)),
    ] {
        let started = Instant::now();
        assert!(Catalog::from_toml_str(&text, "deep.toml").is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// The seed's request with a huge unknown field (number 15) stuffed in.
#[derive(Clone, PartialEq, prost::Message)]
struct BloatedRequest {
    #[prost(int32, tag = "1")]
    user_id: i32,
    #[prost(string, tag = "15")]
    padding: String,
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_it_is_decoded() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();
    let request = Request::new(BloatedRequest { user_id: 1, padding: "x".repeat(64 * 1024) });
    let status = grpc
        .unary::<_, bookshop_proto::RecommendationResponse, _>(
            request,
            PathAndQuery::from_static("/Recommendations/Recommend"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // The server is fine afterwards.
    assert_eq!(app.mystery_titles().await, ["A"]);
}

#[tokio::test]
async fn oversized_metadata_is_refused_and_the_server_keeps_serving() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let mut request = Request::new(RecommendationRequest::default());
    let huge = MetadataValue::try_from("x".repeat(32 * 1024)).unwrap();
    request.metadata_mut().insert("x-padding", huge);
    let result = app.client().await.recommend(request).await;
    let error = result.expect_err("a 32 KiB header list was accepted");
    // Refused by the server (HTTP 431), not by the client. (hyper's default bound is the same
    // 16 KiB as server::MAX_HEADER_LIST_BYTES; setting it explicitly pins it.)
    assert!(error.message().contains("431"), "{error:?}");
    assert_eq!(app.mystery_titles().await, ["A"]);
}
