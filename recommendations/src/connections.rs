//! Accepting gRPC connections with bounds: at most `server.max_connections` at once (more are
//! closed as soon as accepted, and counted), lowered to the open-file limit minus a reserve so
//! that a flood never takes the descriptors the catalog, the listeners and the log need; and no
//! connection kept for a client that stays silent, one that sends nothing within
//! `server.handshake_timeout_ms` of connecting, or nothing at all (not even an answer to the
//! server's pings) for `server.idle_timeout_ms`. On stop, a connection that has said nothing is
//! closed at once, so a stop never waits for connections that carry no call. tonic has none of
//! these bounds.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::{Metrics, Reason};

/// File descriptors kept out of the connection cap's reach.
pub const RESERVED_FDS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The accepted connections of `listener`, within `limits`, until `stopping` is cancelled.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    stopping: CancellationToken,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(16);
    let cap = match open_file_limit().map(|limit| limit.saturating_sub(RESERVED_FDS).max(1)) {
        Some(cap) if cap < limits.max_connections => {
            tracing::info!(
                max_connections = limits.max_connections,
                cap,
                "the connection cap is lowered to what the open-file limit leaves"
            );
            cap
        }
        _ => limits.max_connections,
    };
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = stopping.cancelled() => return,
                () = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors would spin: back off.
                        tracing::warn!(%error, "gRPC listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if usize::try_from(metrics.connections.get()).unwrap_or(0) >= cap {
                metrics.refused.inc();
                continue;
            }
            let _ = stream.set_nodelay(true);
            metrics.connections.inc();
            let connection = Connection {
                stream,
                silence: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
                heard: false,
                idle_timeout: limits.idle_timeout,
                stopping: Box::pin(stopping.clone().cancelled_owned()),
                metrics: metrics.clone(),
            };
            if tx.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An accepted connection that closes itself when its client stays silent too long, or has
/// said nothing by the time the server stops.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    silence: Pin<Box<Sleep>>,
    heard: bool,
    idle_timeout: Duration,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    metrics: Arc<Metrics>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connections.dec();
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
                let reason = if this.heard { "idle_timeout" } else { "handshake_timeout" };
                this.metrics.silent.get_or_create(&Reason { reason }).inc();
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)))
            }
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.heard = true;
                    this.silence.as_mut().reset(Instant::now() + this.idle_timeout);
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
