//! Connections that stay silent, too many connections, and stopping with them open.

use std::time::{Duration, Instant};

use tokio::{io::AsyncReadExt, net::TcpStream};

use crate::helpers::*;

/// Opens `n` TCP connections that never send a byte.
async fn silent(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut connections = Vec::new();
    for _ in 0..n {
        connections.push(TcpStream::connect(addr).await.unwrap());
    }
    connections
}

/// Whether the server closed `connection` within `limit`: reading (and ignoring what the server
/// sends first, its HTTP/2 settings) ends in EOF or an error.
async fn closed_within(connection: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let closed = async {
        while let Ok(n) = connection.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(limit, closed).await.is_ok()
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_handshake_timeout() {
    let app = spawn_app_with(&catalog_with(&["A"]), |s| {
        s.server.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let mut connection = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_within(&mut connection, SOON).await, "still open");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "closed after only {elapsed:?}");
    let counted = "bookshop_grpc_connections_closed_silent_total{reason=\"handshake_timeout\"}";
    assert_eq!(app.metric(counted).await, 1.0);
    // A client that speaks is served as usual.
    assert_eq!(app.mystery_titles().await, ["A"]);
}

#[tokio::test]
async fn under_the_cap_calls_are_served_and_beyond_it_connections_are_refused() {
    let app = spawn_app_with(&catalog_with(&["A"]), |s| s.server.max_connections = 20).await;
    let mut idle = silent(app.addr, 15).await;
    assert_eq!(app.mystery_titles().await, ["A"], "served with 15 silent connections open");
    idle.extend(silent(app.addr, 10).await);
    let mut refused = 0;
    for connection in &mut idle[15..] {
        if closed_within(connection, Duration::from_millis(500)).await {
            refused += 1;
        }
    }
    // The cap counts the client's own connection too; at least the ones past 20 were refused.
    assert!(refused >= 5, "only {refused} of the connections past the cap were refused");
    assert!(app.metric("bookshop_grpc_connections_refused_total").await >= 5.0);
    drop(idle);
    let recovered =
        eventually(SOON, async || app.metric("bookshop_grpc_connections ").await <= 1.0).await;
    assert!(recovered, "closed connections were not let go");
    assert_eq!(app.mystery_titles().await, ["A"]);
}

#[tokio::test]
async fn a_stop_does_not_wait_for_connections_that_carry_no_call() {
    let app = spawn_app_with(&catalog_with(&["A"]), |s| {
        s.server.shutdown_timeout = Duration::from_secs(5);
    })
    .await;
    let _idle = silent(app.addr, 10).await;
    let started = Instant::now();
    app.stop().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "the stop took {elapsed:?}");
}
