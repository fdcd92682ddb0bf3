//! The serve path that both binaries share: logging, the settings, the runtime, the service
//! itself until a stop signal, and the exit code. Each `main.rs` only parses its command line
//! and hands its application over.

use std::{fmt::Debug, fmt::Display, future::Future, process::ExitCode};

use crate::{logging, settings::SettingsError, shutdown};

/// A service as its binary runs it: bound first, then served until a stop signal.
pub trait App: Sized {
    /// Its settings.
    type Settings: Debug + Send;
    /// Why it could not start, or stopped abnormally.
    type Error: Display;

    /// Binds the listeners `settings` name (port 0 picks a free port) and reads what must be
    /// read at start-up; nothing is served yet.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Serves until `shutdown` resolves, then stops gracefully.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs the service `name` until SIGTERM or Ctrl-C: sets up logging, reports bad settings, builds
/// Tokio's multi-threaded runtime and serves on it. Start-up and run-time errors are logged,
/// and turn into a failing exit code.
pub fn run<S: App>(name: &str, settings: Result<S::Settings, SettingsError>) -> ExitCode {
    let _logs = logging::init();
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Both binaries are versioned with the workspace.
    let version = env!("CARGO_PKG_VERSION");
    tracing::info!(version, ?settings, "starting {name}");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let serve = async {
        S::build(settings)
            .await?
            .run_until_stopped(shutdown::signal())
            .await
    };
    match runtime.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{name} stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Runs a one-shot client subcommand (a `healthcheck`) on a single-threaded runtime and
/// [`report`]s its outcome.
pub fn once(task: impl Future<Output = Result<String, String>>) -> ExitCode {
    let outcome = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(error) => Err(format!("cannot start the async runtime: {error}")),
    };
    report(outcome)
}

/// The exit of a one-shot subcommand (`check`, `healthcheck`): what it found on stdout and
/// success, or what went wrong on stderr and failure.
#[allow(clippy::print_stdout)]
pub fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            eprintln!("{text}");
            ExitCode::FAILURE
        }
    }
}
