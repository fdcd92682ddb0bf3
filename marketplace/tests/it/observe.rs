//! Request ids passed on to Recommendations, and the metrics at `GET /metrics`.

use salvo::Response;

use crate::support::{Script, app, fetch, header, page, three_books};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn request_id(res: &Response) -> String {
    header(res, "x-request-id").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_clients_request_id_is_returned_and_passed_to_recommendations() {
    let (server, service) = app(Script::Books(three_books())).await;
    let context = [("x-request-id", "req-42"), ("traceparent", TRACEPARENT)];
    let (res, _) = fetch(&service, "/", &context).await;
    assert_eq!(request_id(&res), "req-42");
    assert_eq!(server.fake.last_context(), ("req-42".to_owned(), TRACEPARENT.to_owned()));
}

#[tokio::test]
async fn without_a_usable_request_id_one_is_made_and_passed_on() {
    let (server, service) = app(Script::Books(three_books())).await;
    let unusable = [("x-request-id", "has spaces in it"), ("traceparent", "not-a-traceparent")];
    let (res, _) = fetch(&service, "/api/recommendations", &unusable).await;
    let id = request_id(&res);
    assert_eq!(id.len(), 32, "{id}");
    assert_ne!(id, "has spaces in it");
    assert_eq!(server.fake.last_context(), (id.clone(), String::new()));

    let other = request_id(&page(&service, "/").await.0);
    assert_ne!(other, id, "each request gets its own id");
    assert_eq!(other, server.fake.last_context().0, "the new id is the one passed on");
}

#[tokio::test]
async fn each_call_carries_what_is_left_of_the_deadline() {
    // `app` configures a 500 ms timeout; the call is sent with what is left of it.
    let (server, service) = app(Script::Books(three_books())).await;
    page(&service, "/").await;
    let timeout = server.fake.last_deadline();
    let micros: u64 = timeout
        .strip_suffix('u')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("grpc-timeout {timeout:?}"));
    assert!((400_000..=500_000).contains(&micros), "{timeout}");
}

/// The value of the first metric line starting with `prefix`, or 0.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_calls_and_replicas() {
    let (server, service) = app(Script::Books(three_books())).await;
    for _ in 0..3 {
        page(&service, "/").await;
    }
    page(&service, "/?category=poetry").await;
    server.fake.set(Script::Fail(tonic::Code::NotFound, "Category not found"));
    page(&service, "/api/recommendations").await;
    page(&service, "/readyz").await;

    let (res, text) = page(&service, "/metrics").await;
    assert!(
        header(&res, "content-type").is_some_and(|v| v.starts_with("application/openmetrics-text")),
    );
    for (prefix, expected) in [
        ("http_requests_total{method=\"GET\",route=\"/\",status=\"200\"}", 3.0),
        ("http_requests_total{method=\"GET\",route=\"/\",status=\"400\"}", 1.0),
        ("http_requests_total{method=\"GET\",route=\"/api/recommendations\",status=\"404\"}", 1.0),
        ("http_request_duration_seconds_count{method=\"GET\",route=\"/\"}", 4.0),
        (
            "grpc_client_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"OK\"}",
            3.0,
        ),
        (
            "grpc_client_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"NOT_FOUND\"}",
            1.0,
        ),
        (
            "grpc_client_handling_seconds_count{grpc_service=\"Recommendations\",grpc_method=\"Recommend\"}",
            4.0,
        ),
        (
            "grpc_client_handling_seconds_count{grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Check\"}",
            1.0,
        ),
        ("bookshop_recommendations_replicas{state=\"serving\"}", 1.0),
    ] {
        assert_eq!(metric(&text, prefix), expected, "{prefix} in\n{text}");
    }
    assert!(text.contains("http_request_duration_seconds_bucket{le=\"0.005\""));
    assert!(text.contains("bookshop_build_info{service=\"marketplace\""));
}
