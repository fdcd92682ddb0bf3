//! `marketplace healthcheck`: one HTTP/1.1 `GET` of `/readyz`, for container health checks in
//! images with no shell or curl. Written on a bare `TcpStream` so the binary carries no HTTP
//! client library.

use std::time::Duration;

use salvo::http::uri::Uri;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The most of the answer that is read: the status line is all that matters.
const MAX_HEAD: usize = 8 * 1024;

/// Why the health check got no status.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// `--url` is not a usable `http://` URL.
    #[error("invalid URL {0:?}: {1}")]
    Url(String, &'static str),
    /// Nothing answers there, or the connection broke.
    #[error("cannot reach {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// No complete answer in time.
    #[error("no answer from {0} within {1:?}")]
    TimedOut(String, Duration),
    /// The answer is not HTTP.
    #[error("not an HTTP answer from {0}")]
    Malformed(String),
}

/// The default URL: `/readyz` on the local port.
pub fn default_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/readyz")
}

/// GETs `url` (`http://host[:port]/path`) and returns the status code.
pub async fn check(url: &str, timeout: Duration) -> Result<u16, HealthcheckError> {
    let target = Target::parse(url)?;
    let authority = target.authority.clone();
    match tokio::time::timeout(timeout, target.get()).await {
        Ok(result) => result,
        Err(_) => Err(HealthcheckError::TimedOut(authority, timeout)),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` to connect to and to send as `Host`.
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HealthcheckError> {
        let bad = |why| HealthcheckError::Url(url.to_owned(), why);
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Target {
            authority: format!("{host}:{port}"),
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path
            },
        })
    }

    async fn get(self) -> Result<u16, HealthcheckError> {
        let io = |e| HealthcheckError::Io(self.authority.clone(), e);
        let mut stream = TcpStream::connect(&self.authority).await.map_err(io)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: marketplace-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        parse_status(&head).ok_or_else(|| HealthcheckError::Malformed(self.authority.clone()))
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`).
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3)
        .then(|| code.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_are_split_into_authority_and_path() {
        assert_eq!(
            Target::parse("http://127.0.0.1:5001/readyz").unwrap(),
            Target {
                authority: "127.0.0.1:5001".into(),
                path: "/readyz".into()
            }
        );
        assert_eq!(
            Target::parse("http://localhost/healthz?x=1").unwrap(),
            Target {
                authority: "localhost:80".into(),
                path: "/healthz?x=1".into()
            }
        );
        assert_eq!(Target::parse("http://[::1]:8080").unwrap().path, "/");
        assert_eq!(
            Target::parse("http://[::1]:8080").unwrap().authority,
            "[::1]:8080"
        );
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        for url in [
            "https://example.org/",
            "127.0.0.1:5001",
            "not a url",
            "/readyz",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn the_status_line_gives_the_code() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\nx: y\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = check(&default_url(port), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, HealthcheckError::Io(..)), "{err}");
    }
}
