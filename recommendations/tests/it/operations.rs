//! Health, reflection, start-up failures and shutdown.

use std::time::Duration;

use recommendations::StartError;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

#[tokio::test]
async fn health_is_not_serving_until_the_catalog_is_loaded_then_serving() {
    let app = loading_app().await;
    let answered = eventually(SOON, async || app.health("").await.is_ok()).await;
    assert!(answered, "the health service did not answer while loading");
    assert_eq!(app.health("").await.unwrap(), ServingStatus::NotServing);
    assert_eq!(app.health("Recommendations").await.unwrap(), ServingStatus::NotServing);
    let status = app.titles(MYSTERY, 3).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);

    app.wait_until_serving().await;
    assert_eq!(app.health("Recommendations").await.unwrap(), ServingStatus::Serving);
    assert_eq!(app.titles(MYSTERY, 3).await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_invalid_catalog_at_start_up_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, "[[mystery]]\nid = -1\ntitle = \"x\"\n").unwrap();
    let app = start(dir, path, |_| {}).await;
    match app.ended().await {
        Err(StartError::Catalog(error)) => {
            let message = error.to_string();
            assert!(message.contains("catalog.toml:2:6"), "{message}");
        }
        other => panic!("expected a catalog error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_catalog_at_start_up_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let app = start(dir, path, |_| {}).await;
    let error = app.ended().await.unwrap_err().to_string();
    assert!(error.contains("missing.toml") && error.contains("cannot read"), "{error}");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = start_up_error(|s| s.server.port = taken.local_addr().unwrap().port()).await;
    assert!(matches!(error, StartError::Bind { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot listen on 127.0.0.1:"), "{error}");
}

#[tokio::test]
async fn shutdown_stops_serving_and_closes_the_port() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let addr = app.addr;
    app.stop().await.unwrap();
    let refused =
        eventually(SOON, async || tokio::net::TcpStream::connect(addr).await.is_err()).await;
    assert!(refused, "the port still accepts connections after shutdown");
}

#[tokio::test]
async fn an_in_flight_call_finishes_during_shutdown() {
    // A connection opened before the stop signal keeps working for calls already under way:
    // the server sends GOAWAY and waits for open streams. Calls issued right before stopping
    // must all succeed.
    let app = spawn_app(&catalog_with(&["A", "B", "C"])).await;
    let mut client = app.client().await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { recommend(&mut client, 1, MYSTERY, 3).await })
        })
        .collect();
    // Make sure the connection is established and the calls are on the wire.
    client.recommend(bookshop_proto::RecommendationRequest::default()).await.unwrap();
    app.stop().await.unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_service() {
    let app = spawn_app(&catalog_with(&["A"])).await;

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(app.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a list response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"Recommendations".to_string()), "{names:?}");
    for name in ["grpc.health.v1.Health", "bookshop.catalog.v1.CatalogEvents"] {
        assert!(names.contains(&name.to_string()), "{name} missing from {names:?}");
    }

    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessageRequest,
        server_reflection_response::MessageResponse as AlphaMessageResponse,
    };
    let request = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaMessageRequest::FileContainingSymbol("Recommendations".into())),
    };
    let mut responses = AlphaClient::new(app.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(AlphaMessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_slow_stop_is_bounded_by_the_shutdown_timeout() {
    let app = spawn_app_with(&catalog_with(&["A"]), |s| {
        s.server.shutdown_timeout = Duration::from_millis(300)
    })
    .await;
    // An idle client connection must not hold the shutdown for long.
    let _client = app.client().await;
    let started = std::time::Instant::now();
    app.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// Asserts the catalog's metrics: `books` mystery books, in its `generation`th version.
async fn assert_catalog_metrics(app: &TestApp, books: f64, generation: f64) {
    assert_eq!(app.metric("bookshop_catalog_books{category=\"mystery\"}").await, books);
    assert_eq!(app.metric("bookshop_catalog_generation").await, generation);
}

#[tokio::test]
async fn metrics_count_calls_by_code_and_follow_reloads() {
    let app = spawn_app(&catalog_with(&["A", "B"])).await;
    const OK: &str = "grpc_server_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"OK\"}";
    const NOT_FOUND: &str = "grpc_server_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"NOT_FOUND\"}";
    assert_eq!(app.metric(OK).await, 0.0);
    for _ in 0..3 {
        app.titles(MYSTERY, 3).await.unwrap();
    }
    app.titles(SCIENCE_FICTION, 3).await.unwrap_err();
    assert_eq!(app.metric(OK).await, 3.0);
    assert_eq!(app.metric(NOT_FOUND).await, 1.0);
    assert_eq!(
        app.metric("grpc_server_handling_seconds_count{grpc_service=\"Recommendations\",grpc_method=\"Recommend\"}")
            .await,
        4.0
    );
    assert_catalog_metrics(&app, 2.0, 1.0).await;
    assert!(app.metric("bookshop_catalog_last_success_timestamp_seconds").await > 1.7e9);
    assert!(app.metrics().await.contains("bookshop_build_info{service=\"recommendations\""));

    app.edit_catalog(save_by_rename, &["A", "B", "C"]).await;
    assert_catalog_metrics(&app, 3.0, 2.0).await;
    assert_eq!(app.metric("bookshop_catalog_reloads_total{result=\"success\"}").await, 1.0);

    save_by_rename(&app.catalog, "not a catalog");
    let counted = eventually(SOON, async || {
        app.metric("bookshop_catalog_reloads_total{result=\"failure\"}").await == 1.0
    })
    .await;
    assert!(counted, "the rejected reload was not counted");
    assert_catalog_metrics(&app, 3.0, 2.0).await;
}
