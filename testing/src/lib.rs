//! What the services' tests share: polling with a deadline instead of sleeping, an application
//! on a task of its own, a binary as a child process ([`ChildService`]), settings from given
//! sources, log lines captured for reading, certificates made on the fly ([`TestCa`]) and an
//! OTLP/HTTP receiver ([`otlp_http_receiver`]).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod certs;
mod child;
mod otlp;

pub use certs::{Error as CertError, Pem, TestCa};
pub use child::ChildService;
pub use otlp::{Received, otlp_http_receiver};

use std::{
    fmt::Debug,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bookshop_common::settings::{self, Layered, SettingsError, Sources};

use tokio::{sync::oneshot, task::JoinHandle};

/// Log lines, kept for a test to read: give a clone to the subscriber as its writer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLines(Arc<Mutex<Vec<u8>>>);

impl CapturedLines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls `check` every 20 ms until it returns true (then true) or `limit` has passed (then
/// false). Tests wait for what "should happen soon" with it, never with a fixed sleep.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loads settings `T` for a test from an optional file with `text`, the variables `vars`
/// (never the process's own) and the command-line overrides `flags` (dotted keys).
pub fn load_settings<T: Layered>(
    text: Option<&str>,
    vars: &[(&str, &str)],
    flags: &[(&str, &str)],
) -> Result<T, SettingsError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = text.map(|text| {
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, text).expect("the settings file");
        path
    });
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    };
    let sources = Sources { file, env: pairs(vars).into_iter().collect(), overrides: pairs(flags) };
    settings::load(&sources)
}

/// The error message of loading settings `T` as in [`load_settings`], which must fail.
pub fn settings_error<T: Layered + Debug>(text: Option<&str>, vars: &[(&str, &str)]) -> String {
    match load_settings::<T>(text, vars, &[]) {
        Ok(settings) => panic!("expected an error, loaded {settings:?}"),
        Err(error) => error.to_string(),
    }
}

/// Asserts that `message` mentions every one of `parts` (an error message naming what is wrong
/// and where).
#[track_caller]
pub fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

/// The stop signal handed to a spawned application's `run_until_stopped`.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An application running on a task of its own, as `main` would run it, with a stop signal the
/// test controls. Dropping it sends the signal.
#[derive(Debug)]
pub struct Spawned<E> {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), E>>>,
}

impl<E: Send + 'static> Spawned<E> {
    /// Spawns `run` with a stop signal (`|stop| app.run_until_stopped(stop)`).
    pub fn new<F>(run: impl FnOnce(StopSignal) -> F) -> Spawned<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let signal: StopSignal = Box::pin(async move {
            let _ = stopped.await;
        });
        Spawned { stop: Some(stop), task: Some(tokio::spawn(run(signal))) }
    }

    /// Sends the stop signal without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Sends the stop signal and returns how the application ended, or panics if it does not
    /// end within `limit`.
    pub async fn stop(mut self, limit: Duration) -> Result<(), E> {
        self.signal_stop();
        self.ended(limit).await
    }

    /// Waits for the application to end by itself (a start-up failure, or after
    /// [`Spawned::signal_stop`]); panics if it does not end within `limit`.
    pub async fn ended(mut self, limit: Duration) -> Result<(), E> {
        let task = self.task.take().expect("the task is only taken here");
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => panic!("the application panicked: {error}"),
            Err(_) => panic!("the application did not end within {limit:?}"),
        }
    }
}

impl<E> Drop for Spawned<E> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
