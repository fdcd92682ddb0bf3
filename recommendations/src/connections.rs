//! Accepting gRPC connections with bounds: at most `server.max_connections` at once (more are
//! closed as soon as they are accepted, and counted), and no connection kept open by a client
//! that stays silent: one that sends nothing within `server.handshake_timeout_ms` of
//! connecting, or nothing at all for `server.idle_timeout_ms` afterwards, is closed. A client
//! that is merely idle between calls still answers the server's HTTP/2 pings (every 30 s), so it
//! is never idle in that sense.
//!
//! The cap also keeps file descriptors in reserve: it is lowered to the process's open-file
//! limit minus [`RESERVED_FDS`], so a flood of connections can never take the descriptors that
//! reading the catalog, the health and metrics listeners and the log need.
//!
//! On shutdown, a connection that has not said anything yet is closed at once, so a stop never
//! waits for connections that carry no call (tonic lets the others finish their calls).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::Metrics;

/// File descriptors kept out of the connection cap's reach.
pub const RESERVED_FDS: usize = 64;

/// The bounds on connections, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent.
    pub handshake_timeout: Duration,
    /// How long an established connection may stay silent.
    pub idle_timeout: Duration,
}

impl Limits {
    /// The cap, lowered to what the open-file limit leaves (Linux; elsewhere as configured).
    pub fn effective_cap(&self) -> usize {
        match open_file_limit() {
            Some(limit) if limit.saturating_sub(RESERVED_FDS) < self.max_connections => {
                let cap = limit.saturating_sub(RESERVED_FDS).max(1);
                tracing::info!(
                    max_connections = self.max_connections,
                    open_file_limit = limit,
                    cap,
                    "the connection cap is lowered to what the open-file limit leaves"
                );
                cap
            }
            _ => self.max_connections,
        }
    }
}

/// The accepted connections of `listener`, within `limits`, until `stop` turns true.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(16);
    let cap = limits.effective_cap();
    tokio::spawn(async move {
        let stopped = stopped(stop.clone());
        tokio::pin!(stopped);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut stopped => return,
                () = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors would spin: back off.
                        tracing::warn!(%error, "gRPC listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if metrics.open_connections() >= cap {
                metrics.connection_refused();
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let connection = Connection::new(stream, limits, metrics.clone(), stop.clone());
            if tx.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An accepted connection that closes itself when its client stays silent too long, or has
/// said nothing by the time the server stops.
pub struct Connection {
    stream: TcpStream,
    silence: Pin<Box<Sleep>>,
    heard: bool,
    idle_timeout: Duration,
    stopping: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("heard", &self.heard)
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(
        stream: TcpStream,
        limits: Limits,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Connection {
        metrics.connection_opened();
        Connection {
            stream,
            silence: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            heard: false,
            idle_timeout: limits.idle_timeout,
            stopping: Box::pin(stopped(stop)),
            metrics,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.heard && this.stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::other("the server is stopping")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => {
                ready!(this.silence.as_mut().poll(cx));
                let reason = if this.heard {
                    "idle_timeout"
                } else {
                    "handshake_timeout"
                };
                this.metrics.connection_timed_out(reason);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)))
            }
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.heard = true;
                    let deadline = Instant::now() + this.idle_timeout;
                    this.silence.as_mut().reset(deadline);
                }
                Poll::Ready(result)
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The soft limit on open files (`ulimit -n`), from `/proc/self/limits`.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_read_where_the_system_tells_it() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
