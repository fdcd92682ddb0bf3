//! The serve path of both binaries: runtime, traces, logging, settings, service, exit code.

use std::fmt::{Debug, Display};
use std::{num::NonZeroUsize, process::ExitCode, time::Duration};

use tokio::runtime::{Builder, Runtime};

use crate::{logging, settings::SettingsError, shutdown, telemetry};

/// A service as its binary runs it: bound first, then served until a stop signal.
pub trait App: Sized {
    type Settings: Debug + Send;
    type Error: Display;
    /// On one worker, the current-thread scheduler: answers ready together leave in one write.
    const CURRENT_THREAD_ON_ONE: bool = false;

    /// Binds the listeners (port 0 picks a free port) and reads what start-up must read.
    fn build(settings: Self::Settings) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// For the last spans to reach the collector: within the grace periods of Docker and Kubernetes.
pub const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the service `name` until SIGTERM or Ctrl-C; an error is logged and fails the exit code.
/// `settings` are loaded once logging is on, so that what they warn of is seen.
pub fn run<A: App>(
    name: &str,
    settings: impl FnOnce() -> Result<A::Settings, SettingsError>,
) -> ExitCode {
    let threads = std::env::var("TOKIO_WORKER_THREADS").ok();
    let runtime = match runtime(threads.as_deref(), A::CURRENT_THREAD_ON_ONE) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _logs = logging::init(None);
            return failed(&error);
        }
    };
    // The exporter's connections live on the runtime; logging takes its trace layer.
    let traces = {
        let _inside = runtime.enter();
        telemetry::install(&name.to_lowercase())
    };
    let _logs =
        logging::init(traces.as_ref().ok().and_then(Option::as_ref).map(telemetry::Traces::layer));
    let (traces, settings) = match (traces, settings()) {
        (Ok(traces), Ok(settings)) => (traces, settings),
        (Err(error), _) => return failed(&error),
        (_, Err(error)) => return failed(&error),
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
        // A current-thread runtime drives exports only in `block_on`: flush on a blocking thread.
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

/// With `threads` workers (else one per CPU); with one, current-thread if the service asks.
fn runtime(threads: Option<&str>, current_thread_on_one: bool) -> Result<Runtime, String> {
    let parse = |value: &str| value.trim().parse::<NonZeroUsize>().map_err(|_| value.to_owned());
    let threads = threads.map(parse).transpose().map_err(|value| {
        format!(
            "TOKIO_WORKER_THREADS={value:?} is not a number of threads: give a whole number of 1 \
             or more, or unset it for one per CPU"
        )
    })?;
    let mut builder = match threads.map(NonZeroUsize::get) {
        Some(1) if current_thread_on_one => Builder::new_current_thread(),
        _ => Builder::new_multi_thread(),
    };
    if let Some(threads) = threads {
        builder.worker_threads(threads.get());
    }
    // An idle blocking thread keeps its allocator caches (a catalog's parse) until it exits.
    builder.enable_all().thread_keep_alive(Duration::from_secs(1));
    builder.build().map_err(|error| format!("cannot start the async runtime: {error}"))
}

pub fn once(task: impl Future<Output = Result<String, String>>) -> ExitCode {
    let runtime = Builder::new_current_thread().enable_all().build();
    let runtime = runtime.map_err(|error| format!("cannot start the async runtime: {error}"));
    report(runtime.and_then(|runtime| runtime.block_on(task)))
}

/// A one-shot subcommand's exit: what it found on stdout, or what went wrong on stderr.
#[allow(clippy::print_stdout)]
pub fn report(outcome: Result<String, String>) -> ExitCode {
    let code = if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    match outcome {
        Ok(text) => println!("{text}"),
        Err(text) => eprintln!("{text}"),
    }
    code
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
