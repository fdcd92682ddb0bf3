//! `marketplace healthcheck`: one `GET` of `/readyz`, for container health checks in images
//! with no shell or curl, with the HTTP client that is compiled in already (hyper-util's).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioTimer},
};
use salvo::http::uri::Uri;

/// Why the health check got no status.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// `--url` is not a usable `http://` URL.
    #[error("invalid URL {0:?}: {1}")]
    Url(String, &'static str),
    /// Nothing answers there, or the connection broke.
    #[error("cannot reach {0}: {1}")]
    Request(String, #[source] hyper_util::client::legacy::Error),
    /// No answer in time.
    #[error("no answer from {0} within {1:?}")]
    TimedOut(String, Duration),
}

/// The subcommand: GETs `url` and says what it answered; only 200 counts as ready.
pub async fn run(url: String, timeout: Duration) -> Result<String, String> {
    match check(&url, timeout).await {
        Ok(200) => Ok(format!("{url}: 200 ready")),
        Ok(status) => Err(format!("{url}: HTTP {status}")),
        Err(error) => Err(error.to_string()),
    }
}

/// GETs `url` (`http://host[:port]/path`) and returns the status code.
pub async fn check(url: &str, timeout: Duration) -> Result<u16, HealthcheckError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| HealthcheckError::Url(url.to_owned(), "not a URL"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(HealthcheckError::Url(
            url.to_owned(),
            "only http://host[:port]/path is supported",
        ));
    }
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .build_http::<Empty<Bytes>>();
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Ok(Ok(response)) => Ok(response.status().as_u16()),
        Ok(Err(error)) => Err(HealthcheckError::Request(url.to_owned(), error)),
        Err(_) => Err(HealthcheckError::TimedOut(url.to_owned(), timeout)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn only_plain_http_urls_are_accepted() {
        for url in [
            "https://example.org/",
            "127.0.0.1:5001",
            "not a url",
            "/readyz",
        ] {
            let error = check(url, Duration::from_secs(1)).await.unwrap_err();
            assert!(matches!(error, HealthcheckError::Url(..)), "{url}: {error}");
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_hang() {
        // Bound but not listening: connections are refused, and no one else can take the port.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/readyz");
        let error = check(&url, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(error, HealthcheckError::Request(..)), "{error}");
    }
}
