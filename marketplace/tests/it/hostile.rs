//! Hostile input: slow and oversized requests over a real socket, and arbitrary query strings
//! through every route.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use salvo::{
    http::StatusCode,
    test::{ResponseExt, TestClient},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    BASE, FakeServer, MarketplaceProcess, Script, app, settings_for, three_books,
    without_own_script,
};

/// A Marketplace whose slow-client limits are short enough to test.
async fn strict_marketplace() -> (FakeServer, MarketplaceProcess) {
    let fake = FakeServer::start(Script::Books(three_books())).await;
    let mut settings = settings_for(fake.addr.port(), 500);
    settings.server.header_read_timeout = Duration::from_millis(300);
    settings.server.idle_timeout = Duration::from_millis(600);
    (fake, MarketplaceProcess::start(settings).await)
}

/// Opens a connection to `marketplace` and sends `request` on it.
async fn connect_and_send(marketplace: &MarketplaceProcess, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(marketplace.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (_fake, marketplace) = strict_marketplace().await;
    let mut stream = connect_and_send(&marketplace, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    let (_, after) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(after >= Duration::from_millis(250), "closed too early: {after:?}");
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let (_fake, marketplace) = strict_marketplace().await;
    let mut stream = TcpStream::connect(marketplace.addr).await.unwrap();
    until_closed(&mut stream, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (_fake, marketplace) = strict_marketplace().await;
    let mut stream =
        connect_and_send(&marketplace, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (received, _) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let (_fake, marketplace) = strict_marketplace().await;
    let mut stream = TcpStream::connect(marketplace.addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n", "a".repeat(64 * 1024));
    // The server may close before reading it all; a reset on write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let (received, _) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 431") || received.is_empty(), "{received}");
    // And the server is fine afterwards.
    assert_eq!(marketplace.get("/healthz").await.status, 200);
}

/// Query strings: printable ASCII and some Unicode, with the characters that matter to
/// parsers and to HTML, percent-encoded or not.
fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[a-zA-Z0-9_-]{0,12}",
        "-?[0-9]{1,25}",
        "[<>\"'&%;=+ ]{0,6}[a-z]{0,4}",
        Just("%3Cscript%3Ealert(1)%3C/script%3E".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("Science-Fiction".to_owned()),
        ".{0,12}",
    ];
    let key = prop_oneof![
        Just("category"),
        Just("max_results"),
        Just("user_id"),
        Just("lang"),
        Just("other"),
    ];
    prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
        pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    })
}

#[test]
fn no_query_string_breaks_a_route_or_is_reflected_unescaped() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_server, service) = runtime.block_on(app(Script::Books(three_books())));
    let config =
        ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(query(), prop_oneof![Just("/"), Just("/api/recommendations")]), |(query, route)| {
            let url = format!("{BASE}{route}?{query}");
            // A few generated strings are not valid URIs at all; clients cannot send them.
            let Ok(uri) = url.parse::<salvo::http::uri::Uri>() else {
                return Ok(());
            };
            let (status, content_type, nosniff, body) = runtime.block_on(async {
                let mut res = TestClient::get(uri.to_string()).send(&service).await;
                let header = |name| {
                    res.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (content_type, nosniff) =
                    (header("content-type"), header("x-content-type-options"));
                let body = res.take_string().await.unwrap_or_default();
                (res.status_code, content_type, nosniff, body)
            });
            prop_assert!(
                matches!(status, Some(StatusCode::OK | StatusCode::BAD_REQUEST)),
                "{status:?} for {url}: {body}"
            );
            // JSON may quote the request as it was sent: it is JSON to the browser, never
            // markup, as long as it says so and forbids sniffing.
            prop_assert_eq!(nosniff, "nosniff");
            if content_type.starts_with("text/html") {
                let body = without_own_script(&body);
                prop_assert!(!body.contains("<script"), "reflected unescaped for {url}");
            } else {
                prop_assert!(content_type.starts_with("application/json"), "{content_type}");
            }
            Ok(())
        })
        .unwrap();
}
