//! The serve path that both binaries share: the runtime, traces, logging, the settings, the service
//! itself until a stop signal, and the exit code. Each `main.rs` only parses its command line
//! and hands its application over.

use std::{fmt::Debug, fmt::Display, future::Future, process::ExitCode, time::Duration};

use crate::{
    logging,
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

    /// Binds the listeners `settings` name (port 0 picks a free port) and reads what must be
    /// read at start-up; nothing is served yet.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Serves until `shutdown` resolves, then stops gracefully.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs the service `name` until SIGTERM or Ctrl-C: builds Tokio's multi-threaded runtime, sets
/// up traces (when `traces` turns them on) and logging, reports bad settings, and serves.
/// Start-up and run-time errors are logged, and turn into a failing exit code. Once the service
/// has stopped, the spans still queued are exported within [`TRACE_FLUSH_TIMEOUT`].
pub fn run<S: App>(
    name: &str,
    settings: Result<S::Settings, SettingsError>,
    traces: Result<Option<TraceSettings>, TelemetryError>,
) -> ExitCode {
    let runtime = match multi_thread_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _logs = logging::init(None);
            tracing::error!(%error, "cannot start the async runtime");
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
        S::build(settings)
            .await?
            .run_until_stopped(shutdown::signal())
            .await
    };
    let outcome = runtime.block_on(serve);
    // Outside the runtime, which still runs the last exports.
    if let Some(traces) = traces {
        traces.shutdown(TRACE_FLUSH_TIMEOUT);
    }
    match outcome {
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

/// How long a thread of Tokio's blocking pool (`tokio::fs`, `spawn_blocking`: catalog reads and
/// parses) waits for more work before it exits.
const BLOCKING_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The services' runtime. An idle blocking-pool thread keeps its allocator's thread caches and
/// arenas, filled by the last task it ran, until it exits: with Tokio's default keep-alive of
/// 10 s, the memory of a large catalog's reload stays resident for 10 s after it. With 1 s it is
/// given back sooner (measured at 00baae8 with mimalloc: RSS within 2 MB of before, 5 s after a
/// 16 MiB catalog was replaced; the target is 20 MB; docs/benchmarks.md, scenario 8). Starting a
/// thread again for the next reload costs far less than the reload.
fn multi_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .build()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{
        cell::RefCell,
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Instant,
    };

    use super::*;

    /// Sets its flag when dropped: held in a thread-local, when its thread exits.
    struct OnExit(Arc<AtomicBool>);

    impl Drop for OnExit {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    thread_local! {
        static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
    }

    #[test]
    fn an_idle_blocking_thread_exits_about_a_second_after_its_work() {
        let runtime = multi_thread_runtime().unwrap();
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        runtime
            .block_on(runtime.spawn_blocking(move || {
                ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(flag)));
            }))
            .unwrap();
        // Tokio's default keeps the thread for 10 s; well before that it must be gone, with the
        // runtime still running.
        let deadline = Instant::now() + BLOCKING_THREAD_KEEP_ALIVE * 5;
        while !exited.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the blocking thread was still alive after {:?}",
                BLOCKING_THREAD_KEEP_ALIVE * 5
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(runtime);
    }
}
