//! The services' Tokio runtime: as many worker threads as `TOKIO_WORKER_THREADS` gives (one per
//! CPU when it is unset, Tokio's default), and, for a service that asks for it, the
//! current-thread scheduler when that is one.
//!
//! Why a service may want the current-thread scheduler for one thread: with one worker, Tokio's
//! multi-threaded scheduler runs a task woken by another at once (its "LIFO slot"), so an HTTP/2
//! connection task is run, and writes, after each stream's answer; the current-thread scheduler
//! runs it after every stream that is ready, and writes their answers together. With many calls
//! in flight that is far fewer writes: Recommendations, `TOKIO_WORKER_THREADS=1`, 8 connections
//! × 8 streams, served 66% more calls with 40% less CPU a call (docs/benchmarks.md, "One
//! thread: which scheduler"). The Marketplace keeps the multi-threaded one: with both services
//! batching, the two overlap less on shared cores, and the home page was 4% slower.

use std::{num::NonZeroUsize, time::Duration};

use tokio::runtime::{Builder, Runtime};

/// The variable Tokio reads for the number of worker threads; docker-compose.yaml and the
/// Kubernetes manifests set it from the CPUs each service is given.
const WORKER_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// How long a thread of Tokio's blocking pool (`tokio::fs`, `spawn_blocking`: catalog reads and
/// parses) waits for more work before it exits.
const BLOCKING_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Which scheduler a service runs on when it has one worker thread (see the module's
/// documentation); with more, both run the multi-threaded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneThread {
    /// Tokio's multi-threaded scheduler with one worker.
    MultiThread,
    /// Tokio's current-thread scheduler.
    CurrentThread,
}

/// The runtime cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `TOKIO_WORKER_THREADS` is not a whole number of 1 or more.
    #[error(
        "{WORKER_THREADS_VAR}={value:?} is not a number of threads: give a whole number of 1 or \
         more, or unset it for one per CPU"
    )]
    WorkerThreads {
        /// The value.
        value: String,
    },
    /// The operating system refused (threads, the I/O driver).
    #[error("cannot start the async runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// The worker threads `value` of `TOKIO_WORKER_THREADS` asks for; `None` when it is unset.
pub fn worker_threads(value: Option<&str>) -> Result<Option<NonZeroUsize>, RuntimeError> {
    value
        .map(|value| {
            value
                .trim()
                .parse()
                .map_err(|_| RuntimeError::WorkerThreads {
                    value: value.to_owned(),
                })
        })
        .transpose()
}

/// The services' runtime, with the worker threads `TOKIO_WORKER_THREADS` gives and the
/// scheduler `one_thread` names when that is one. An idle blocking-pool thread keeps its
/// allocator's thread caches and arenas, filled by the last task it ran, until it exits: with
/// Tokio's default keep-alive of 10 s, the memory of a large catalog's reload stays resident for
/// 10 s after it. With 1 s it is given back sooner (measured at 00baae8 with mimalloc: RSS
/// within 2 MB of before, 5 s after a 16 MiB catalog was replaced; the target is 20 MB;
/// docs/benchmarks.md, scenario 8). Starting a thread again for the next reload costs far less
/// than the reload.
pub fn build(one_thread: OneThread) -> Result<Runtime, RuntimeError> {
    let value = std::env::var(WORKER_THREADS_VAR).ok();
    Ok(build_with(worker_threads(value.as_deref())?, one_thread)?)
}

/// The runtime with `threads` worker threads (`None`: Tokio's default, one per CPU).
fn build_with(threads: Option<NonZeroUsize>, one_thread: OneThread) -> std::io::Result<Runtime> {
    let mut builder = match threads {
        Some(one) if one.get() == 1 && one_thread == OneThread::CurrentThread => {
            Builder::new_current_thread()
        }
        Some(threads) => {
            let mut builder = Builder::new_multi_thread();
            builder.worker_threads(threads.get());
            builder
        }
        None => Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .build()
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
    fn an_idle_blocking_thread_exits_about_a_second_after_its_work_with_either_scheduler() {
        for one_thread in [OneThread::CurrentThread, OneThread::MultiThread] {
            let runtime = build_with(NonZeroUsize::new(1), one_thread).unwrap();
            let exited = Arc::new(AtomicBool::new(false));
            let flag = exited.clone();
            runtime
                .block_on(runtime.spawn_blocking(move || {
                    ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(flag)));
                }))
                .unwrap();
            // Tokio's default keeps the thread for 10 s; well before that it must be gone, with
            // the runtime still running.
            let deadline = Instant::now() + BLOCKING_THREAD_KEEP_ALIVE * 5;
            while !exited.load(Ordering::SeqCst) {
                assert!(
                    Instant::now() < deadline,
                    "{one_thread:?}: the blocking thread was still alive after {:?}",
                    BLOCKING_THREAD_KEEP_ALIVE * 5
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(runtime);
        }
    }

    fn flavor(threads: Option<usize>, one_thread: OneThread) -> RuntimeFlavor {
        let threads = threads.and_then(NonZeroUsize::new);
        build_with(threads, one_thread)
            .unwrap()
            .handle()
            .runtime_flavor()
    }

    #[test]
    fn only_one_thread_asked_for_by_a_service_that_wants_it_is_a_current_thread_runtime() {
        use OneThread::*;
        assert_eq!(flavor(Some(1), CurrentThread), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(Some(1), MultiThread), RuntimeFlavor::MultiThread);
        assert_eq!(flavor(Some(2), CurrentThread), RuntimeFlavor::MultiThread);
        assert_eq!(flavor(None, CurrentThread), RuntimeFlavor::MultiThread);
    }

    #[test]
    fn worker_threads_takes_a_positive_whole_number_or_nothing() {
        assert_eq!(worker_threads(None).unwrap(), None);
        assert_eq!(worker_threads(Some("1")).unwrap(), NonZeroUsize::new(1));
        assert_eq!(worker_threads(Some(" 4 ")).unwrap(), NonZeroUsize::new(4));
        for bad in ["0", "-1", "two", "1.5", ""] {
            let error = worker_threads(Some(bad)).unwrap_err().to_string();
            assert!(
                error.contains(&format!("TOKIO_WORKER_THREADS={bad:?}"))
                    && error.contains("whole number of 1 or more"),
                "{error}"
            );
        }
    }
}
