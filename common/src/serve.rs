//! The serve path of both binaries: the Tokio runtime, traces, logging, the settings, the
//! service itself until a stop signal, and the exit code. Each `main.rs` only parses its command
//! line and hands its application over.

use std::{
    fmt::{Debug, Display},
    future::Future,
    num::NonZeroUsize,
    process::ExitCode,
    time::Duration,
};

use tokio::runtime::{Builder, Runtime};

use crate::{logging, settings::SettingsError, shutdown, telemetry};

/// A service as its binary runs it: bound first, then served until a stop signal.
pub trait App: Sized {
    type Settings: Debug + Send;
    type Error: Display;
    /// On one worker thread, Tokio's current-thread scheduler: it runs a connection's task once
    /// every ready stream has answered, so answers of calls in flight together leave in one
    /// write, where the multi-threaded scheduler runs the woken task at once (docs/benchmarks.md).
    const CURRENT_THREAD_ON_ONE: bool = false;

    /// Binds the listeners (port 0 picks a free port) and reads what start-up must read.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// Serves until `shutdown` resolves, then stops gracefully.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How long a stopped service waits for its last spans to reach the collector: well within the
/// grace period of Docker (10 s) and the Kubernetes manifests (15 s).
pub const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the service `name` until SIGTERM or Ctrl-C. Start-up and run-time errors are logged and
/// make a failing exit code.
pub fn run<A: App>(name: &str, settings: Result<A::Settings, SettingsError>) -> ExitCode {
    let threads = std::env::var("TOKIO_WORKER_THREADS").ok();
    let runtime = match runtime(threads.as_deref(), A::CURRENT_THREAD_ON_ONE) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _logs = logging::init(None);
            return failed(&error);
        }
    };
    // The exporter's connections live on the runtime; logging comes after, as its trace layer
    // is one of logging's layers.
    let traces = {
        let _inside = runtime.enter();
        telemetry::install(&name.to_lowercase())
    };
    let _logs =
        logging::init(traces.as_ref().ok().and_then(Option::as_ref).map(telemetry::Traces::layer));
    let traces = match traces {
        Ok(traces) => traces,
        Err(error) => return failed(&error),
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => return failed(&error),
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), ?settings, "starting {name}");
    if let Some(traces) = &traces {
        tracing::info!(exporter = %traces, "exporting traces");
    }
    let serve = async {
        // Before anything listens, so that a stop at any moment after start is a graceful one.
        let stop = shutdown::signal();
        let outcome = match A::build(settings).await {
            Ok(app) => app.run_until_stopped(stop).await,
            Err(error) => Err(error),
        };
        // The exports run on this runtime, which a current-thread runtime drives only inside
        // `block_on`: the flush waits on a blocking thread while it still does.
        if let Some(traces) = traces {
            let _ = tokio::task::spawn_blocking(move || traces.shutdown(TRACE_FLUSH_TIMEOUT)).await;
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

fn failed(error: &dyn Display) -> ExitCode {
    tracing::error!(%error, "cannot start");
    ExitCode::FAILURE
}

/// The worker threads `TOKIO_WORKER_THREADS` gives (`threads`; Tokio's default of one per CPU
/// when unset); with one, the current-thread scheduler if the service asks for it.
fn runtime(threads: Option<&str>, current_thread_on_one: bool) -> Result<Runtime, String> {
    let threads = match threads {
        None => None,
        Some(value) => Some(value.trim().parse::<NonZeroUsize>().map_err(|_| {
            format!(
                "TOKIO_WORKER_THREADS={value:?} is not a number of threads: give a whole number \
                 of 1 or more, or unset it for one per CPU"
            )
        })?),
    };
    let mut builder = match threads.map(NonZeroUsize::get) {
        Some(1) if current_thread_on_one => Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => Builder::new_multi_thread(),
    };
    // An idle blocking thread keeps the allocator caches of its last task (a large catalog's
    // parse) until it exits: Tokio's default of 10 s holds that memory for as long.
    builder
        .enable_all()
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
}

/// Runs a one-shot client subcommand (a `healthcheck`) on a single-threaded runtime and
/// [`report`]s its outcome.
pub fn once(task: impl Future<Output = Result<String, String>>) -> ExitCode {
    let outcome = match Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(task),
        Err(error) => Err(format!("cannot start the async runtime: {error}")),
    };
    report(outcome)
}

/// The exit of a one-shot subcommand: what it found on stdout and success, or what went wrong
/// on stderr and failure.
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

    use tokio::runtime::RuntimeFlavor;

    use super::*;

    #[test]
    fn the_worker_threads_variable_picks_threads_and_scheduler() {
        let flavor = |value, current_thread_on_one| {
            runtime(value, current_thread_on_one).map(|r| r.handle().runtime_flavor())
        };
        assert_eq!(flavor(Some("1"), true), Ok(RuntimeFlavor::CurrentThread));
        assert_eq!(flavor(Some("1"), false), Ok(RuntimeFlavor::MultiThread));
        assert_eq!(flavor(Some(" 2 "), true), Ok(RuntimeFlavor::MultiThread));
        assert_eq!(flavor(None, true), Ok(RuntimeFlavor::MultiThread));
        for bad in ["0", "-1", "two", "1.5", ""] {
            let error = flavor(Some(bad), true).unwrap_err();
            assert!(error.contains(&format!("TOKIO_WORKER_THREADS={bad:?}")), "{error}");
        }
    }

    /// Sets its flag when its thread exits (held in a thread-local).
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
    fn an_idle_blocking_thread_exits_about_a_second_after_its_work_with_either_scheduler() {
        for current_thread in [true, false] {
            let runtime = runtime(Some("1"), current_thread).unwrap();
            let exited = Arc::new(AtomicBool::new(false));
            let flag = exited.clone();
            let work = runtime.spawn_blocking(move || {
                ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(flag)));
            });
            runtime.block_on(work).unwrap();
            // Tokio's default keeps the thread for 10 s.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !exited.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the blocking thread was still alive after 5 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
