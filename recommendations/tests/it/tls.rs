//! TLS and mutual TLS on the gRPC port, with certificates made in the test.

use std::{net::SocketAddr, path::Path, time::Duration};

use bookshop_proto::{RecommendationRequest, recommendations_client::RecommendationsClient};
use bookshop_testing::{Pem, TestCa};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::helpers::*;

const NAME: &str = "recommendations.test";

struct Certs {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Certs {
    fn new() -> Certs {
        Certs { dir: tempfile::tempdir().unwrap(), ca: TestCa::new("Bookshop test CA").unwrap() }
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a server certificate and key; returns their paths.
    fn server(&self, pem: &Pem) -> (std::path::PathBuf, std::path::PathBuf) {
        (self.write("server.pem", &pem.cert), self.write("server.key", &pem.key))
    }
}

/// A TLS-enabled server: `client_ca` requires client certificates signed by it.
async fn tls_app(certs: &Certs, server: &Pem, client_ca: Option<&str>) -> TestApp {
    let (cert, key) = certs.server(server);
    let client_ca = client_ca.map(|ca| certs.write("client-ca.pem", ca));
    spawn_app_with(&catalog_with(&["Secret"]), |s| {
        s.tls.cert_path = Some(cert);
        s.tls.key_path = Some(key);
        s.tls.client_ca_path = client_ca;
        s.server.health_port = Some(0);
    })
    .await
}

/// A TLS-enabled server with a certificate for `NAME`, and the certificates it was made with.
async fn tls_app_for_name() -> (Certs, TestApp) {
    let certs = Certs::new();
    let app = tls_app(&certs, &certs.ca.server(&[NAME]).unwrap(), None).await;
    (certs, app)
}

/// Asserts that a client trusting `ca` and expecting `name` refuses the server's certificate.
async fn assert_certificate_refused(app: &TestApp, ca: &str, name: &str) {
    let error = call(app.addr, ca, name, None).await.unwrap_err();
    assert!(error.contains("NotValidForName") || error.contains("certificate"), "{error}");
}

/// One `Recommend` over TLS trusting `ca`, expecting `name`, optionally with a client identity.
async fn call(
    addr: SocketAddr,
    ca: &str,
    name: &str,
    identity: Option<&Pem>,
) -> Result<Vec<String>, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name(name);
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let books = recommend(&mut RecommendationsClient::new(channel), 1, MYSTERY, 3)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(titles_of(books))
}

#[tokio::test]
async fn tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext() {
    let certs = Certs::new();
    let app = tls_app(&certs, &certs.ca.server(&[NAME, "localhost"]).unwrap(), None).await;
    assert_eq!(call(app.addr, &certs.ca.cert, NAME, None).await.unwrap(), ["Secret"]);

    let plaintext = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(channel) => RecommendationsClient::new(channel)
            .recommend(RecommendationRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client was served by a TLS server");
}

#[tokio::test]
async fn a_wrong_server_name_is_rejected() {
    let (certs, app) = tls_app_for_name().await;
    assert_certificate_refused(&app, &certs.ca.cert, "other.test").await;
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_rejected() {
    let (_certs, app) = tls_app_for_name().await;
    let stranger = TestCa::new("Someone else").unwrap();
    assert!(call(app.addr, &stranger.cert, NAME, None).await.is_err());
}

#[tokio::test]
async fn a_certificate_with_only_a_common_name_is_rejected_by_rustls() {
    // The tutorial's openssl scripts make CN-only certificates; rustls checks subjectAltNames.
    let certs = Certs::new();
    let app = tls_app(&certs, &certs.ca.server_cn_only(NAME).unwrap(), None).await;
    assert_certificate_refused(&app, &certs.ca.cert, NAME).await;
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_of_its_ca_and_rejects_the_others() {
    let certs = Certs::new();
    let clients = TestCa::new("Bookshop clients").unwrap();
    let app = tls_app(&certs, &certs.ca.server(&[NAME]).unwrap(), Some(&clients.cert)).await;

    let marketplace = clients.client("marketplace").unwrap();
    assert_eq!(call(app.addr, &certs.ca.cert, NAME, Some(&marketplace)).await.unwrap(), ["Secret"]);
    assert!(
        call(app.addr, &certs.ca.cert, NAME, None).await.is_err(),
        "a client without a certificate was served"
    );
    let intruder = TestCa::new("Another CA").unwrap().client("marketplace").unwrap();
    assert!(
        call(app.addr, &certs.ca.cert, NAME, Some(&intruder)).await.is_err(),
        "a client certificate from another CA was accepted"
    );
}

#[tokio::test]
async fn the_plaintext_health_listener_answers_while_tls_is_on() {
    let (_certs, app) = tls_app_for_name().await;
    let health = app.health_addr.unwrap();
    assert_ne!(health, app.addr);
    assert_eq!(
        app.health("").await.unwrap(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // The health listener serves nothing else.
    let channel =
        Endpoint::from_shared(format!("http://{health}")).unwrap().connect().await.unwrap();
    let status = RecommendationsClient::new(channel)
        .recommend(RecommendationRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn a_missing_tls_file_stops_start_up_with_its_name() {
    let error = start_up_error(|s| {
        s.tls.cert_path = Some(Path::new("/nonexistent/server.pem").into());
        s.tls.key_path = Some(Path::new("/nonexistent/server.key").into());
    })
    .await
    .to_string();
    assert!(
        error.contains("tls.cert_path") && error.contains("/nonexistent/server.pem"),
        "{error}"
    );
}
