//! `marketplace healthcheck`: one `GET /readyz` with hyper-util, for images with no shell or curl.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor, rt::TokioTimer};
use salvo::http::uri::Uri;

/// GETs `url` (`http://host[:port]/path`) and says what it answered; only 200 is ready.
pub async fn run(url: String, timeout: Duration) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|_| format!("invalid URL {url:?}: not a URL"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!("invalid URL {url:?}: only http://host[:port]/path is supported"));
    }
    let client =
        Client::builder(TokioExecutor::new()).timer(TokioTimer::new()).build_http::<Empty<Bytes>>();
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Ok(Ok(response)) if response.status() == 200 => Ok(format!("{url}: 200 ready")),
        Ok(Ok(response)) => Err(format!("{url}: HTTP {}", response.status().as_u16())),
        Ok(Err(error)) => Err(format!("cannot reach {url}: {error}")),
        Err(_) => Err(format!("no answer from {url} within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn only_plain_http_urls_are_accepted() {
        for url in ["https://example.org/", "127.0.0.1:5001", "not a url", "/readyz"] {
            let error = run(url.into(), Duration::from_secs(1)).await.unwrap_err();
            assert!(error.starts_with("invalid URL"), "{url}: {error}");
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_hang() {
        // Bound but not listening: connections are refused, and no one else can take the port.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/readyz");
        let error = run(url, Duration::from_secs(2)).await.unwrap_err();
        assert!(error.starts_with("cannot reach"), "{error}");
    }
}
