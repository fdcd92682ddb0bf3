//! TLS and mutual TLS between the Marketplace and a real Recommendations, with certificates made
//! in the test: what the visitor sees when it works and when it does not.

use std::{path::PathBuf, time::Duration};

use bookshop_common::{
    serve::App,
    testing::{Spawned, TestCa},
};
use salvo::{
    http::StatusCode,
    test::{ResponseExt, TestClient},
};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{TestResult, catalog_dir, eventually, service_for, settings_for, titles};

const NAME: &str = "recommendations.test";

struct TlsRecommendations {
    addr: std::net::SocketAddr,
    _running: Spawned<recommendations::StartError>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Writes `text` into `dir/name`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A real Recommendations with TLS (and, with `clients`, requiring their certificates).
async fn start(ca: &TestCa, clients: Option<&TestCa>) -> TlsRecommendations {
    let (catalog_dir, catalog) = catalog_dir(&["Over TLS"]);
    let certs = tempfile::tempdir().unwrap();
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
    let done = eventually(Duration::from_secs(10), async || {
        let health = health.to_string();
        let status = recommendations::healthcheck::check(&health, Duration::from_millis(500)).await;
        matches!(status, Ok(ServingStatus::Serving))
    })
    .await;
    assert!(done, "gave up waiting for Recommendations to be SERVING");
    TlsRecommendations {
        addr,
        _running: running,
        _dirs: (catalog_dir, certs),
    }
}

/// The Marketplace's home page, with `configure` setting its TLS to `server`.
async fn page(
    server: &TlsRecommendations,
    configure: impl FnOnce(&mut marketplace::settings::ClientTlsSettings, &tempfile::TempDir),
) -> (StatusCode, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_for(server.addr.port(), 1_000);
    settings.recommendations.tls.server_name = Some(NAME.into());
    configure(&mut settings.recommendations.tls, &dir);
    let service = service_for(&settings);
    let mut res = TestClient::get("http://127.0.0.1:5001/?category=mystery")
        .send(&service)
        .await;
    let body = res.take_string().await.unwrap_or_default();
    (
        res.status_code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

#[tokio::test]
async fn the_page_is_served_over_tls_when_the_marketplace_trusts_the_ca() -> TestResult {
    let ca = TestCa::new("Bookshop CA")?;
    let server = start(&ca, None).await;
    let (status, body) = page(&server, |tls, dir| {
        tls.ca_path = Some(file(dir, "ca.pem", &ca.cert));
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body), ["Over TLS"]);
    Ok(())
}

#[tokio::test]
async fn mutual_tls_serves_the_marketplace_with_its_certificate_only() -> TestResult {
    let ca = TestCa::new("Bookshop CA")?;
    let clients = TestCa::new("Bookshop clients")?;
    let server = start(&ca, Some(&clients)).await;
    let identity = clients.client("marketplace")?;
    let (status, body) = page(&server, |tls, dir| {
        tls.ca_path = Some(file(dir, "ca.pem", &ca.cert));
        tls.cert_path = Some(file(dir, "client.pem", &identity.cert));
        tls.key_path = Some(file(dir, "client.key", &identity.key));
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body), ["Over TLS"]);

    let (status, _) = page(&server, |tls, dir| {
        tls.ca_path = Some(file(dir, "ca.pem", &ca.cert));
    })
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "served without a client certificate"
    );
    Ok(())
}

#[tokio::test]
async fn a_tls_failure_is_the_503_notice_without_internals() -> TestResult {
    let ca = TestCa::new("Bookshop CA")?;
    let server = start(&ca, None).await;
    let stranger = TestCa::new("Some other CA")?;
    let (status, body) = page(&server, |tls, dir| {
        tls.ca_path = Some(file(dir, "ca.pem", &stranger.cert));
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("href=\"/?category=science_fiction\""),
        "navigation lost"
    );
    for internal in ["certificate", "UnknownIssuer", "tls", "127.0.0.1"] {
        assert!(!body.contains(internal), "the page shows {internal:?}");
    }

    let (status, _) = page(&server, |tls, dir| {
        tls.ca_path = Some(file(dir, "ca.pem", &ca.cert));
        tls.server_name = Some("not-recommendations.test".into());
    })
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a wrong server name was accepted"
    );
    Ok(())
}

#[tokio::test]
async fn plaintext_to_a_tls_server_is_the_503_notice() -> TestResult {
    let ca = TestCa::new("Bookshop CA")?;
    let server = start(&ca, None).await;
    let (status, _) = page(&server, |_, _| {}).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    Ok(())
}
