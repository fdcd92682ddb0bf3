//! The serve path that both binaries share: the runtime, traces, logging, the settings, the service
//! itself until a stop signal, and the exit code. Each `main.rs` only parses its command line
//! and hands its application over.

use std::{fmt::Debug, fmt::Display, future::Future, process::ExitCode, time::Duration};

use crate::{
    logging,
    runtime::{self, OneThread},
    settings::SettingsError,
    shutdown,
    telemetry::{self, TelemetryError, TraceSettings},
};

/// A service as its binary runs it: bound first, then served until a stop signal.
pub trait App: Sized {
    /// Its settings.
    type Settings: Debug + Send;
    /// Why it could not start, or stopped abnormally.
    type Error: Display;
    /// Its scheduler when it is given one worker thread ([`runtime`](crate::runtime)).
    const ONE_THREAD: OneThread = OneThread::MultiThread;

    /// Binds the listeners `settings` name (port 0 picks a free port) and reads what must be
    /// read at start-up; nothing is served yet.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Serves until `shutdown` resolves, then stops gracefully.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs the service `name` until SIGTERM or Ctrl-C: builds its Tokio runtime, sets
/// up traces (when `traces` turns them on) and logging, reports bad settings, and serves.
/// Start-up and run-time errors are logged, and turn into a failing exit code. Once the service
/// has stopped, the spans still queued are exported within [`TRACE_FLUSH_TIMEOUT`].
pub fn run<S: App>(
    name: &str,
    settings: Result<S::Settings, SettingsError>,
    traces: Result<Option<TraceSettings>, TelemetryError>,
) -> ExitCode {
    let runtime = match runtime::build(S::ONE_THREAD) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _logs = logging::init(None);
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    // The exporter's connections live on the runtime, so it is made inside it; logging comes
    // after, as the trace layer is one of its layers.
    let traces = traces.and_then(|traces| {
        let Some(traces) = traces else {
            return Ok(None);
        };
        let _inside = runtime.enter();
        let (layer, guard) = telemetry::install(&traces)?;
        Ok(Some((traces, layer, guard)))
    });
    let (traces, layer) = match traces {
        Ok(Some((traces, layer, guard))) => (Ok(Some((traces, guard))), Some(layer)),
        Ok(None) => (Ok(None), None),
        Err(error) => (Err(error), None),
    };
    let _logs = logging::init(layer);
    let traces = match traces {
        Ok(traces) => traces,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
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
    let traces = traces.map(|(settings, guard)| {
        tracing::info!(
            endpoint = %settings.endpoint,
            protocol = %settings.protocol,
            service_name = %settings.service_name,
            sampler = ?settings.sampler,
            "exporting traces"
        );
        guard
    });
    let serve = async {
        // Before anything listens, so that a stop at any moment after start is a graceful one.
        let stop = shutdown::signal();
        let outcome = match S::build(settings).await {
            Ok(app) => app.run_until_stopped(stop).await,
            Err(error) => Err(error),
        };
        // The last exports run on this runtime, which a current-thread runtime drives only
        // inside `block_on`: the flush waits on a blocking thread while it still does.
        if let Some(traces) = traces {
            let flushed = tokio::task::spawn_blocking(move || traces.shutdown(TRACE_FLUSH_TIMEOUT));
            let _ = flushed.await;
        }
        outcome
    };
    match runtime.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{name} stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// How long a stopped service waits for its last spans to be exported: a collector that is
/// down costs the stop at most this, well within the grace period (Docker's 10 s, the
/// Kubernetes manifests' 15 s) after the services' own stop (docs/operations.md).
pub const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

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
