//! TLS and mutual TLS between the Marketplace and a real Recommendations, with certificates made
//! in the test: what the visitor sees when it works and when it does not.

use std::path::PathBuf;

use bookshop_common::serve::App;
use bookshop_testing::{Spawned, TestCa};
use marketplace::settings::ClientTlsSettings;
use salvo::http::StatusCode;
use tempfile::TempDir;

use crate::support::{
    self, TestResult, catalog_dir, service_for, settings_for, titles, wait_until_serving,
};

const NAME: &str = "recommendations.test";

struct TlsRecommendations {
    addr: std::net::SocketAddr,
    /// The CA that signed its certificate.
    ca: TestCa,
    _running: Spawned<recommendations::StartError>,
    _dirs: (TempDir, TempDir),
}

/// Writes `text` into `dir/name`.
fn file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A real Recommendations with TLS, its certificate signed by a CA of its own (and, with
/// `clients`, requiring their certificates).
async fn start(clients: Option<&TestCa>) -> TlsRecommendations {
    let (catalog_dir, catalog) = catalog_dir(&["Over TLS"]);
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Bookshop CA").unwrap();
    let server = ca.server(&[NAME]).unwrap();
    let mut s = recommendations::settings::Settings::default();
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.metrics.enabled = false;
    s.server.health_port = Some(0);
    s.catalog.path = catalog;
    s.tls.cert_path = Some(file(&certs, "server.pem", &server.cert));
    s.tls.key_path = Some(file(&certs, "server.key", &server.key));
    s.tls.client_ca_path = clients.map(|c| file(&certs, "clients.pem", &c.cert));
    let app = recommendations::Application::build(s).await.unwrap();
    let (addr, health) = (app.local_addr(), app.health_addr().unwrap());
    let running = Spawned::new(|stop| app.run_until_stopped(stop));
    wait_until_serving(health).await;
    TlsRecommendations { addr, ca, _running: running, _dirs: (catalog_dir, certs) }
}

/// Makes the Marketplace trust `ca` (writing its certificate into `dir`).
fn trust(tls: &mut ClientTlsSettings, dir: &TempDir, ca: &TestCa) {
    tls.ca_path = Some(file(dir, "ca.pem", &ca.cert));
}

/// The Marketplace's home page, with `configure` setting its TLS to `server`.
async fn page(
    server: &TlsRecommendations,
    configure: impl FnOnce(&mut ClientTlsSettings, &TempDir),
) -> (StatusCode, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_for(server.addr.port(), 1_000);
    settings.recommendations.tls.server_name = Some(NAME.into());
    configure(&mut settings.recommendations.tls, &dir);
    let service = service_for(&settings).await;
    let (res, body) = support::page(&service, "/?category=mystery").await;
    (res.status_code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body)
}

/// Asserts that the home page is the 503 notice, with `configure` setting the Marketplace's TLS
/// to `server`; `why` says what went wrong if it is not.
async fn assert_unavailable(
    server: &TlsRecommendations,
    configure: impl FnOnce(&mut ClientTlsSettings, &TempDir),
    why: &str,
) {
    let (status, _) = page(server, configure).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
}

#[tokio::test]
async fn the_page_is_served_over_tls_when_the_marketplace_trusts_the_ca() {
    let server = start(None).await;
    let (status, body) = page(&server, |tls, dir| trust(tls, dir, &server.ca)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body), ["Over TLS"]);
}

#[tokio::test]
async fn mutual_tls_serves_the_marketplace_with_its_certificate_only() -> TestResult {
    let clients = TestCa::new("Bookshop clients")?;
    let server = start(Some(&clients)).await;
    let identity = clients.client("marketplace")?;
    let (status, body) = page(&server, |tls, dir| {
        trust(tls, dir, &server.ca);
        tls.cert_path = Some(file(dir, "client.pem", &identity.cert));
        tls.key_path = Some(file(dir, "client.key", &identity.key));
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body), ["Over TLS"]);

    assert_unavailable(
        &server,
        |tls, dir| trust(tls, dir, &server.ca),
        "served without a client certificate",
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn a_tls_failure_is_the_503_notice_without_internals() -> TestResult {
    let server = start(None).await;
    let stranger = TestCa::new("Some other CA")?;
    let (status, body) = page(&server, |tls, dir| trust(tls, dir, &stranger)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("href=\"/?category=science_fiction\""), "navigation lost");
    for internal in ["certificate", "UnknownIssuer", "tls", "127.0.0.1"] {
        assert!(!body.contains(internal), "the page shows {internal:?}");
    }

    let wrong_name = |tls: &mut ClientTlsSettings, dir: &TempDir| {
        trust(tls, dir, &server.ca);
        tls.server_name = Some("not-recommendations.test".into());
    };
    assert_unavailable(&server, wrong_name, "a wrong server name was accepted").await;
    Ok(())
}

#[tokio::test]
async fn plaintext_to_a_tls_server_is_the_503_notice() {
    let server = start(None).await;
    assert_unavailable(&server, |_, _| {}, "served in plaintext by a TLS server").await;
}
