//! `host:port` values, and binding a listener with an error naming the setting behind its port.

use std::{fmt, net::Ipv6Addr, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::net::{TcpListener, TcpStream};

use crate::settings::env_variable;

/// A host name or IP address and a port, written `host:port` (IPv6 in brackets: `[::1]:50051`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Without brackets.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("{0:?} must be host:port (IPv6 in brackets, e.g. [::1]:50051)")]
    NoPort(String),
    #[error("{0:?} has no valid port (1 to 65535)")]
    BadPort(String),
    #[error("{value:?}: the host {problem}")]
    BadHost { value: String, problem: &'static str },
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(value: &str) -> Result<HostPort, HostPortError> {
        let (host, port) =
            value.trim().rsplit_once(':').ok_or_else(|| HostPortError::NoPort(value.to_owned()))?;
        let port = port.parse::<u16>().ok().filter(|port| *port != 0);
        let port = port.ok_or_else(|| HostPortError::BadPort(value.to_owned()))?;
        // `[::1]` unwrapped; a lone bracket is left in, for `check_host` to refuse.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        check_host(host)
            .map_err(|problem| HostPortError::BadHost { value: value.to_owned(), problem })?;
        Ok(HostPort { host: host.to_owned(), port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HostPort, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `host` is a host name or IP address (no scheme, port or path), or what is wrong.
pub fn check_host(host: &str) -> Result<(), &'static str> {
    if host.trim().is_empty() {
        Err("is empty")
    } else if host.contains("://") {
        Err("must be a host name or IP address, without a scheme")
    } else if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
        Err("must be a host name or IP address, without a port")
    } else if host.contains(['/', ' ', '@', '?', '#', '[', ']']) {
        Err("is not a valid host name or IP address")
    } else {
        Ok(())
    }
}

/// `host:port`, with an IPv6 literal in brackets (`[::]:50051`), as sockets and URIs want it.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address}: {source}; the port is set by {setting} (environment variable {variable})"
)]
pub struct BindError {
    pub address: String,
    pub setting: &'static str,
    pub variable: String,
    pub source: std::io::Error,
}

/// Room for a burst of connections (up to `net.core.somaxconn`): past 128, one waits a SYN retry.
const BACKLOG: i32 = 4096;
/// How long data to a peer gone without a FIN (say, a stream's heartbeat) waits, not ~15 minutes.
pub const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(20);

/// Binds `host:port` (port 0 picks a free one); the error names `setting` and its variable.
pub async fn bind(
    host: &str,
    port: u16,
    prefix: &str,
    setting: &'static str,
) -> Result<TcpListener, BindError> {
    let address = join_host_port(host, port);
    let variable = env_variable(prefix, setting);
    let listener = TcpListener::bind(&address).await.and_then(|listener| {
        // listen(2) again sizes the queue; accepted connections inherit the timeout.
        let socket = socket2::SockRef::from(&listener);
        socket.listen(BACKLOG)?;
        #[cfg(target_os = "linux")]
        socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT))?;
        Ok(listener)
    });
    listener.map_err(|source| BindError { address, setting, variable, source })
}

/// The next connection (`name` is for the log); a failed accept pauses: out of fds it would spin.
pub async fn accept(listener: &TcpListener, name: &str) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(error) => tracing::warn!(%error, "{name} listener: accept failed"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<(String, u16), HostPortError> {
        value.parse::<HostPort>().map(|hp| (hp.host, hp.port))
    }

    #[test]
    fn host_port_takes_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(parse("recs:6000"), Ok(("recs".into(), 6000)));
        assert_eq!(parse(" 10.0.0.1:50051 "), Ok(("10.0.0.1".into(), 50051)));
        assert_eq!(parse("[::1]:50051"), Ok(("::1".into(), 50051)));
        assert_eq!(
            "[::1]:50051".parse::<HostPort>().map(|hp| hp.to_string()),
            Ok("[::1]:50051".to_owned())
        );
    }

    #[test]
    fn host_port_refuses_what_is_not_one() {
        let brackets = ["[::1:50051", "::1]:50051", "[recs:1"];
        for bad in ["recs", ":50051", "recs:http", "recs:0", "recs:70000", "http://recs:1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for bad in brackets {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse("a/b:1"), Err(HostPortError::BadHost { .. })));
    }

    #[test]
    fn ipv6_hosts_are_bracketed_when_joined_with_a_port() {
        assert_eq!(join_host_port("::", 50051), "[::]:50051");
        assert_eq!(join_host_port("0.0.0.0", 5001), "0.0.0.0:5001");
    }

    #[tokio::test]
    async fn a_burst_of_connections_is_queued_at_once_and_a_silent_peer_times_out() {
        let listener = bind("127.0.0.1", 0, "TEST", "server.port").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        // Nothing accepts them: past the queue's size a connection would wait for a SYN retry.
        let mut burst = Vec::new();
        for n in 0..600 {
            let connect =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr));
            burst.push(connect.await.unwrap_or_else(|_| panic!("connection {n} waited")));
        }
        let (accepted, _) = listener.accept().await.expect("accept");
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket2::SockRef::from(&accepted).tcp_user_timeout().expect("the option"),
            Some(UNACKNOWLEDGED_LIMIT)
        );
    }

    #[tokio::test]
    async fn a_port_in_use_names_its_setting_and_variable() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = taken.local_addr().expect("address").port();
        let error = bind("127.0.0.1", port, "RECOMMENDATIONS", "metrics.port")
            .await
            .expect_err("the port is taken")
            .to_string();
        for part in ["metrics.port", "RECOMMENDATIONS__METRICS__PORT", &port.to_string()] {
            assert!(error.contains(part), "{part} missing from: {error}");
        }
    }
}
