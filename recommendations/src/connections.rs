//! gRPC connections within bounds tonic lacks: a cap (below the fd limit), silent clients cut.

use std::task::{Context, Poll, ready};
use std::{io, pin::Pin, sync::Arc, time::Duration};

use bookshop_common::net::accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::{sync::mpsc, time::Instant, time::Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::{metrics::Metrics, settings::ServerSettings};

pub const RESERVED_FDS: usize = 64;

pub fn incoming(
    listener: TcpListener,
    server: &ServerSettings,
    metrics: Arc<Metrics>,
    stopping: CancellationToken,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(16);
    let server = server.clone();
    let left = open_file_limit().map(|limit| limit.saturating_sub(RESERVED_FDS).max(1));
    let cap = left.map_or(server.max_connections, |left| left.min(server.max_connections));
    if cap < server.max_connections {
        let message = "the connection cap is lowered to what the open-file limit leaves";
        tracing::info!(max_connections = server.max_connections, cap, "{message}");
    }
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = stopping.cancelled() => return,
                () = tx.closed() => return,
                stream = accept(&listener, "gRPC") => stream,
            };
            if usize::try_from(metrics.connections.get()).unwrap_or(0) >= cap {
                metrics.refused.inc();
                continue;
            }
            let _ = stream.set_nodelay(true);
            metrics.connections.inc();
            let connection = Connection {
                stream,
                silence: Box::pin(tokio::time::sleep(server.handshake_timeout)),
                heard: false,
                idle_timeout: server.idle_timeout,
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

/// An accepted connection that closes itself when its client stays silent.
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
        if let Poll::Ready(result) = Pin::new(&mut this.stream).poll_read(cx, buf) {
            if buf.filled().len() > before {
                this.heard = true;
                this.silence.as_mut().reset(Instant::now() + this.idle_timeout);
            }
            return Poll::Ready(result);
        }
        ready!(this.silence.as_mut().poll(cx));
        let reason = if this.heard { "idle_timeout" } else { "handshake_timeout" };
        this.metrics.silent.get_or_create(&[("reason", reason)]).inc();
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)))
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
