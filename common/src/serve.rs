//! The serve path that both binaries share: logging, the settings, the runtime, the service
//! itself until a stop signal, and the exit code. Each `main.rs` only parses its command line
//! and hands its application over.

use std::{fmt::Debug, fmt::Display, future::Future, process::ExitCode};

use crate::{logging, settings::SettingsError};

/// Runs a service until it stops: sets up logging, reports bad settings, builds Tokio's
/// multi-threaded runtime and runs `serve` on it. Start-up and run-time errors are logged, and
/// turn into a failing exit code.
pub fn run<S, E, Fut>(
    name: &str,
    version: &str,
    settings: Result<S, SettingsError>,
    serve: impl FnOnce(S) -> Fut,
) -> ExitCode
where
    S: Debug,
    E: Display,
    Fut: Future<Output = Result<(), E>>,
{
    let _logs = logging::init();
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
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
    match runtime.block_on(serve(settings)) {
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
