//! The binary as docker-compose.yaml runs it, on one worker thread (Tokio's current-thread
//! scheduler, which runs its tasks only while the service runs): it serves, and when stopped it
//! still exports the spans it has queued.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use bookshop_common::testing::otlp_http_receiver;

use crate::helpers::*;

/// The service as a child process, killed if the test ends before it stopped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Service {
    /// Starts the binary with `vars` and reads its log (stderr) until it says where it listens;
    /// the rest of the log is read on a thread of its own, so the child's writes never fail.
    async fn start(vars: &[(&str, &str)]) -> (Service, SocketAddr) {
        let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_recommendations"))
            .args(["--catalog", catalog, "--port", "0"])
            .env("RECOMMENDATIONS__METRICS__PORT", "0")
            .envs(vars.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let service = Service(child);
        let address = tokio::task::spawn_blocking(move || {
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
        })
        .await
        .unwrap();
        (service, address)
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::task::spawn_blocking(move || self.0.wait().unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn on_one_thread_it_serves_and_exports_its_last_spans_when_stopped() {
    let (collector, received) = otlp_http_receiver().await;
    let endpoint = format!("http://{collector}");
    let (service, addr) = Service::start(&[
        ("TOKIO_WORKER_THREADS", "1"),
        ("RUST_LOG", "info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        // Nothing is exported on schedule within the test: only the flush at stop.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .await;
    // It listens before its catalog is loaded (answering UNAVAILABLE until then).
    let mut client = connect(addr).await;
    let served = eventually(Duration::from_secs(10), async || {
        recommend(&mut client, 1, 0, 3)
            .await
            .is_ok_and(|books| books.len() == 3)
    })
    .await;
    assert!(served, "no three books within 10 s");
    assert!(
        received.lock().unwrap().is_empty(),
        "exported before the stop"
    );

    let started = Instant::now();
    let status = service.terminate().await;
    assert!(status.success(), "{status}");
    // The flush waits at most 2 s for a collector; this one answers at once.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let received = received.lock().unwrap();
    assert!(
        received
            .iter()
            .any(|(path, body)| path == "/v1/traces" && !body.is_empty()),
        "{received:?}"
    );
}
