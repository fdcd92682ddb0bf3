//! The binary as docker-compose.yaml runs it, on one worker thread (Tokio's current-thread
//! scheduler, which runs its tasks only while the service runs): a stop at any moment is a
//! graceful one, and when stopped it still exports the spans it has queued.

use std::time::{Duration, Instant};

use bookshop_testing::{ChildService, otlp_http_receiver};

use crate::helpers::*;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog.toml");

/// The binary on one worker thread with the demo catalog, any free port, no metrics listener
/// (so its one listener is the gRPC one), and `vars`.
fn start(vars: &[(&str, &str)]) -> ChildService {
    start_with(CATALOG, vars)
}

/// [`start`] with another catalog.
fn start_with(catalog: &str, vars: &[(&str, &str)]) -> ChildService {
    let mut all =
        vec![("TOKIO_WORKER_THREADS", "1"), ("RECOMMENDATIONS__METRICS__ENABLED", "false")];
    all.extend_from_slice(vars);
    let program = env!("CARGO_BIN_EXE_recommendations");
    ChildService::start(program, &["--catalog", catalog, "--port", "0"], &all)
}

#[tokio::test]
async fn a_stop_signal_the_moment_it_listens_is_a_graceful_stop() {
    // A large catalog keeps the service busy loading it after it listens: a stop signal
    // handler installed only once the service is ready would let SIGTERM kill it here.
    let books: String =
        (1..=20_000).map(|id| format!("[[mystery]]\nid = {id}\ntitle = \"Book {id}\"\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, books).unwrap();
    for attempt in 1..=3 {
        let service = start_with(catalog.to_str().unwrap(), &[]);
        let status = service.stopped_as_soon_as_it_listens(SOON).await;
        assert_eq!(status.code(), Some(0), "attempt {attempt}: {status}");
    }
}

#[tokio::test]
async fn a_fifo_at_the_catalog_path_is_refused_at_start_and_never_holds_up_the_exit() {
    // Its open would wait for a writer: a blocked load thread would keep the process alive.
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    crate::reload::fifo_over(&catalog);
    let service = start_with(catalog.to_str().unwrap(), &[]);
    assert_eq!(service.exited(SOON).await.code(), Some(1));
}

#[tokio::test]
async fn on_one_thread_it_serves_and_exports_its_last_spans_when_stopped() {
    let (collector, received) = otlp_http_receiver().await;
    let endpoint = format!("http://{collector}");
    let service = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        // Nothing is exported on schedule within the test: only the flush at stop.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ]);
    let addr = service.listening(SOON).await;
    // It listens before its catalog is loaded (answering UNAVAILABLE until then).
    let mut client = connect(addr).await;
    let served = eventually(Duration::from_secs(10), async || {
        recommend(&mut client, 1, 0, 3).await.is_ok_and(|books| books.len() == 3)
    })
    .await;
    assert!(served, "no three books within 10 s");
    assert!(received.lock().unwrap().is_empty(), "exported before the stop");

    let started = Instant::now();
    service.terminate();
    let status = service.exited(SOON).await;
    assert!(status.success(), "{status}");
    // The flush waits at most 2 s for a collector; this one answers at once.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let received = received.lock().unwrap();
    assert!(
        received.iter().any(|(path, body)| path == "/v1/traces" && !body.is_empty()),
        "{received:?}"
    );
}
