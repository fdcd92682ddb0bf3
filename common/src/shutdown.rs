//! The stop signal shared by both services.

/// The first SIGTERM or Ctrl-C from now; call it before anything listens, so every stop drains.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map(|mut signal| async move { signal.recv().await });
        let terminate = listen(SignalKind::terminate());
        let interrupt = listen(SignalKind::interrupt());
        async move {
            tokio::select! {
                () = received(terminate, "SIGTERM") => {}
                () = received(interrupt, "Ctrl-C") => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let ctrl_c = tokio::signal::ctrl_c().await;
        received(ctrl_c.map(|()| std::future::ready(())), "Ctrl-C").await;
    }
}

/// Waits for `signal`, or forever if it could not be listened for.
async fn received(signal: std::io::Result<impl Future>, name: &str) {
    match signal {
        Ok(signal) => {
            signal.await;
            tracing::info!("received {name}, shutting down");
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}
