//! The stop signal shared by both services.

use std::future::Future;

/// Listens for SIGTERM and Ctrl-C (SIGINT) from this call on; the future resolves at the first.
///
/// Call it, inside the runtime, before anything listens: until a handler is installed, SIGTERM
/// kills the process without draining (and PID 1 in a container ignores it), so a stop just
/// after start would drop in-flight calls. A signal that arrives before the future is first
/// polled is kept, not lost.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            tokio::select! {
                () = received(terminate, "SIGTERM") => {}
                () = received(interrupt, "Ctrl-C") => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C, shutting down"),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Waits for `signal`, or forever if it could not be listened for.
#[cfg(unix)]
async fn received(signal: std::io::Result<tokio::signal::unix::Signal>, name: &str) {
    match signal {
        Ok(mut signal) => {
            signal.recv().await;
            tracing::info!("received {name}, shutting down");
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}
