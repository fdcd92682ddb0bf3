//! The binary as docker-compose.yaml runs it, on one worker thread (Tokio's current-thread
//! scheduler, which runs its tasks only while the service runs): it serves, and when stopped it
//! still exports the spans it has queued.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bookshop_common::testing::otlp_http_receiver;

use crate::helpers::*;

/// Reads the child's log (stderr) until it says where it listens, and the rest on
/// a thread of its own (so the child's writes never fail).
fn listening_address(child: &mut Child) -> SocketAddr {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("Recommendations listening (gRPC)") {
            std::thread::spawn(move || lines.for_each(drop));
            let address = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("address="));
            return address.unwrap().parse().unwrap();
        }
    }
    panic!("the service ended without listening");
}

#[tokio::test]
async fn on_one_thread_it_serves_and_exports_its_last_spans_when_stopped() {
    let (collector, received) = otlp_http_receiver().await;
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recommendations"))
        .args(["--catalog", catalog, "--port", "0"])
        .env("TOKIO_WORKER_THREADS", "1")
        .env("RECOMMENDATIONS__METRICS__PORT", "0")
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        // Nothing is exported on schedule within the test: only the flush at stop.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = tokio::task::spawn_blocking(move || {
        let addr = listening_address(&mut child);
        (child, addr)
    })
    .await
    .unwrap();
    let addr = child.1;
    let books = recommend(&mut connect(addr).await, 1, 0, 3).await.unwrap();
    assert_eq!(books.len(), 3);
    assert!(
        received.lock().unwrap().is_empty(),
        "exported before the stop"
    );

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    // The flush waits at most 2 s for a collector; this one answers at once.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let received = received.lock().unwrap();
    assert!(
        received
            .iter()
            .any(|(path, body)| path == "/v1/traces" && !body.is_empty()),
        "{received:?}"
    );
}
