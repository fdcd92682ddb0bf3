//! The binary's `check` and `healthcheck` subcommands and their exit codes.

use std::process::{Command, Output};

use crate::helpers::*;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recommendations"))
        .args(args)
        .env_remove("RECOMMENDATIONS__SERVER__PORT")
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_repository_catalog_with_a_summary() {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog.toml");
    let output = run(&["check", catalog]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    for line in [
        "OK, 9 books in 3 categories",
        "mystery: 3 books; en \"Mystery\", ru \"Детективы\"",
        "science_fiction: 3 books; en \"Science fiction\", ru \"Фантастика\"",
        "self_help: 3 books; en \"Self-help\", ru \"Саморазвитие\"",
    ] {
        assert!(stdout.contains(line), "{line} missing from {stdout}");
    }
}

#[test]
fn check_rejects_an_invalid_catalog_with_exit_1_and_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[mystery]]\nid = 1\ntitle = \"a\"\n\n[[mystery]]\nid = 1\ntitle = \"b\"\n",
    )
    .unwrap();
    let output = run(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bad.toml:6:6: duplicate id 1, first used at"), "{stderr}");
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_serving_server_and_1_otherwise() {
    let app = spawn_app(&catalog_with(&["A"])).await;
    let addr = app.addr.to_string();
    let output =
        tokio::task::spawn_blocking(move || run(&["healthcheck", "--addr", &addr])).await.unwrap();
    assert!(output.status.success(), "{output:?}");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let output = tokio::task::spawn_blocking(move || {
        run(&["healthcheck", "--addr", &closed, "--timeout-ms", "500"])
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[tokio::test]
async fn healthcheck_exits_1_while_the_catalog_is_still_loading() {
    let app = loading_app().await;
    let answered = eventually(SOON, async || app.health("").await.is_ok()).await;
    assert!(answered);
    let addr = app.addr.to_string();
    let output =
        tokio::task::spawn_blocking(move || run(&["healthcheck", "--addr", &addr])).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("NOT_SERVING"));
    app.wait_until_serving().await;
}

#[test]
fn help_lists_the_subcommands_and_flags() {
    let output = run(&["--help"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    for word in ["check", "healthcheck", "--config", "--catalog", "--port"] {
        assert!(stdout.contains(word), "{word} missing from --help");
    }
    for default in ["(catalog.path) [default: catalog.toml]", "(server.port) [default: 50051]"] {
        assert!(stdout.contains(default), "{default} missing from --help");
    }
}

#[test]
fn a_start_without_its_catalog_never_says_listening_and_a_one_underscore_variable_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_recommendations"))
        .args(["--catalog", "/nonexistent/catalog.toml", "--port", "0"])
        .env("RECOMMENDATIONS__METRICS__PORT", "0")
        .env("RECOMMENDATIONS_SERVER_PORT", "6000")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/catalog.toml: cannot read the catalog"), "{stderr}");
    assert!(!stderr.contains("listening (gRPC)"), "said listening, then failed: {stderr}");
    let warned =
        "variable=\"RECOMMENDATIONS_SERVER_PORT\" instead=\"RECOMMENDATIONS__SERVER__PORT\"";
    assert!(stderr.contains(warned), "{stderr}");
}

#[test]
fn serve_refuses_to_start_with_an_otel_variable_it_cannot_use_and_names_it() {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recommendations"))
        .args(["--catalog", catalog, "--port", "0"])
        .env("RECOMMENDATIONS__METRICS__PORT", "0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A service that started anyway would serve until stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("started despite OTEL_TRACES_SAMPLER=sometimes");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        stderr.contains("cannot start") && stderr.contains("OTEL_TRACES_SAMPLER=\"sometimes\""),
        "{stderr}"
    );
}
