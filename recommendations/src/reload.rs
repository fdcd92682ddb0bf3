//! Reloading the catalog file: [`Reloader::reload`] reads it, skips content it has already
//! seen, takes it only once it is complete, parses it, and swaps the catalog in service; a bad
//! file is logged and the last good catalog stays. When to call it is the watcher's business
//! ([`watch`](crate::watch)).
//!
//! **Complete files only.** A save by rename (editors, `sed -i`, Kubernetes' `..data` swap) puts
//! a whole file in place at once, and a writer that closes the file is done with it: the
//! watcher says so with [`Trigger::Complete`], and the file is taken as it is. Anything else (a
//! write seen while the file is still open, a poll that found new content, a look again after a
//! failed read) is [`Trigger::Changed`]: the file is taken only if its size, modification time, inode and bytes
//! are the same as when it was first seen at least `catalog.settle_ms` earlier, so a writer that
//! pauses half-way (at a book boundary, where the prefix is a valid, smaller catalog) is not put
//! in service. What remains: a writer that keeps the file open and stalls for longer than the
//! settle interval.
//!
//! **Passing read errors are retried.** A file that cannot be read (missing in the middle of a
//! swap, permissions, too many open files) is [`Outcome::Unreadable`]; the watcher tries again
//! with a backoff until it can, or a new event comes. Content that is read but invalid is
//! [`Outcome::Rejected`] and waits for the next edit.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bookshop_common::{millis, telemetry};

use crate::{
    catalog::{self, Catalog, CatalogError},
    metrics::Metrics,
    store::CatalogStore,
};

/// Why the file is being looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The file was put in place whole (renamed over, or closed by its writer), or an operator
    /// asked (SIGHUP): take it as it is.
    Complete,
    /// The file may be changing: take it once it stays the same for the settle interval.
    Changed,
}

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// A new catalog is in service.
    Loaded(Arc<Catalog>),
    /// The file holds content already seen (in service, or already rejected).
    Unchanged,
    /// New content, not yet known to be complete: look again after the settle interval.
    Unsettled,
    /// The file could not be read (a passing error, most likely): try again later.
    Unreadable(CatalogError),
    /// The file is invalid; the catalog in service is kept until the next edit.
    Rejected(CatalogError),
}

/// What identifies one version of the file on disk, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let inode = (0, 0);
        Some(Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        })
    }
}

/// What the last reload looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Content with this hash.
    Content(u64),
    /// A file refused before its content was read (too large).
    Failure(String),
}

/// New content seen but not yet taken: when, and what it was.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    stamp: Option<Stamp>,
    hash: u64,
    since: Instant,
}

/// Loads the catalog file into a [`CatalogStore`].
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    max_bytes: u64,
    settle: Duration,
    store: CatalogStore,
    metrics: Arc<Metrics>,
    /// The last content parsed (in service or rejected), so repeated events for one edit do
    /// one parse and one log line.
    last_seen: Mutex<Option<Seen>>,
    candidate: Mutex<Option<Candidate>>,
    /// Failed reads in a row: the first of a streak is logged, the end of it too.
    unreadable: AtomicU64,
    attempts: AtomicU64,
}

impl Reloader {
    /// A reloader for `path` feeding `store`, taking changed content once it stayed the same
    /// for `settle`, and reporting to `metrics`.
    pub fn new(
        path: PathBuf,
        max_bytes: u64,
        settle: Duration,
        store: CatalogStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reloader {
            path,
            max_bytes,
            settle,
            store,
            metrics,
            last_seen: Mutex::new(None),
            candidate: Mutex::new(None),
            unreadable: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        }
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settle interval.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// The first load, at start-up: any error is returned (and the service does not start).
    pub fn load_initial(&self) -> Result<Arc<Catalog>, CatalogError> {
        let catalog = Arc::new(Catalog::load(&self.path, self.max_bytes)?);
        *lock(&self.last_seen) = Some(Seen::Content(catalog.content_hash()));
        self.store.replace(catalog.clone());
        self.metrics.catalog_loaded(&catalog, false);
        tracing::info!(
            path = %self.path.display(),
            books = catalog.len(),
            categories = %catalog.summary(),
            hash = %catalog.short_hash(),
            "catalog loaded"
        );
        Ok(catalog)
    }

    /// Re-reads the file and puts it in service if it is new, complete (see the module's
    /// documentation) and valid. Blocking (file I/O and parsing): call it from a blocking
    /// thread.
    pub fn reload(&self, trigger: Trigger) -> Outcome {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let stamp = Stamp::of(&self.path);
        let bytes = match catalog::read_bytes(&self.path, self.max_bytes) {
            Ok(bytes) => bytes,
            Err(error @ CatalogError::Io { .. }) => return self.unreadable(error),
            Err(error) => return self.rejected(Seen::Failure(error.to_string()), error),
        };
        self.readable_again();
        let hash = bookshop_common::fnv1a(&bytes);
        if *lock(&self.last_seen) == Some(Seen::Content(hash)) {
            *lock(&self.candidate) = None;
            return Outcome::Unchanged;
        }
        if trigger == Trigger::Changed && !self.settled(stamp, hash) {
            return Outcome::Unsettled;
        }
        *lock(&self.candidate) = None;
        *lock(&self.last_seen) = Some(Seen::Content(hash));
        if self.store.current().map(|c| c.content_hash()) == Some(hash) {
            tracing::info!(
                path = %self.path.display(),
                hash = %catalog::short_hash(hash),
                "catalog file is valid again and unchanged from the catalog in service"
            );
            return Outcome::Unchanged;
        }
        // New, complete content: parsed and put in service (or rejected) in a span of its own,
        // so that a trace shows each reload. Looks that find nothing new make none.
        let span = reload_span(&self.path);
        let _inside = span.enter();
        let started = Instant::now();
        let origin = self.path.display().to_string();
        let outcome = match catalog::decode(bytes, &origin)
            .and_then(|text| Catalog::from_toml_str(&text, &origin))
        {
            Ok(catalog) => self.put_in_service(catalog),
            Err(error) => self.rejected(Seen::Content(hash), error),
        };
        match &outcome {
            Outcome::Loaded(catalog) => {
                span.record("result", "loaded");
                span.record("books", i64::try_from(catalog.len()).unwrap_or(i64::MAX));
            }
            _ => {
                span.record("result", "rejected");
                span.record("otel.status_code", "error");
            }
        }
        span.record("duration_ms", millis(started.elapsed()));
        outcome
    }

    /// How many times [`Reloader::reload`] ran (each reads the file once).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Whether content last seen as `(stamp, hash)` has stayed so for the settle interval;
    /// if not, it becomes the candidate (and the interval starts again).
    fn settled(&self, stamp: Option<Stamp>, hash: u64) -> bool {
        let mut candidate = lock(&self.candidate);
        match *candidate {
            Some(c) if c.stamp == stamp && c.hash == hash && c.since.elapsed() >= self.settle => {
                true
            }
            Some(c) if c.stamp == stamp && c.hash == hash => false,
            _ => {
                *candidate = Some(Candidate {
                    stamp,
                    hash,
                    since: Instant::now(),
                });
                false
            }
        }
    }

    fn put_in_service(&self, catalog: Catalog) -> Outcome {
        let catalog = Arc::new(catalog);
        let previous = self.store.current();
        self.store.replace(catalog.clone());
        self.metrics.catalog_loaded(&catalog, true);
        tracing::info!(
            path = %self.path.display(),
            books = catalog.len(),
            categories = %catalog.summary(),
            hash = %catalog.short_hash(),
            previous_hash = %previous.map(|c| c.short_hash()).unwrap_or_default(),
            "catalog reloaded"
        );
        Outcome::Loaded(catalog)
    }

    /// Invalid content: logged and counted once, however many events the edit caused.
    fn rejected(&self, seen: Seen, error: CatalogError) -> Outcome {
        let mut last = lock(&self.last_seen);
        if last.as_ref() == Some(&seen) && matches!(seen, Seen::Failure(_)) {
            return Outcome::Unchanged;
        }
        *last = Some(seen);
        drop(last);
        self.metrics.reload_failed();
        let kept = self.store.current();
        tracing::warn!(
            error = %error,
            kept_hash = %kept.as_ref().map(|c| c.short_hash()).unwrap_or_default(),
            kept_books = kept.map_or(0, |c| c.len()),
            "catalog reload rejected; the last good catalog stays in service"
        );
        Outcome::Rejected(error)
    }

    /// A read that failed: counted, and logged at the start of a streak.
    fn unreadable(&self, error: CatalogError) -> Outcome {
        self.metrics.read_failed();
        if self.unreadable.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                error = %error,
                "cannot read the catalog; trying again until it can be read (the catalog in \
                 service stays)"
            );
        }
        Outcome::Unreadable(error)
    }

    fn readable_again(&self) {
        let failed = self.unreadable.swap(0, Ordering::Relaxed);
        if failed > 0 {
            tracing::info!(failed_reads = failed, path = %self.path.display(), "the catalog can be read again");
        }
    }
}

/// The span of one reload, while traces are on (else none): its result (`loaded` or
/// `rejected`), the books now in service and how long parsing and swapping took. A reload has
/// no caller, so it is the root of a trace of its own.
fn reload_span(path: &Path) -> tracing::Span {
    if !telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "catalog reload",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        path = %path.display(),
        result = tracing::field::Empty,
        books = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    telemetry::record_ids(&span);
    span
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "[[mystery]]\nid = 1\ntitle = \"A\"\n";
    const SETTLE: Duration = Duration::from_millis(30);

    fn reloader(dir: &Path) -> (Reloader, CatalogStore) {
        let store = CatalogStore::default();
        let path = dir.join("catalog.toml");
        (
            Reloader::new(
                path,
                catalog::DEFAULT_MAX_BYTES,
                SETTLE,
                store.clone(),
                Arc::new(Metrics::new()),
            ),
            store,
        )
    }

    #[test]
    fn a_reload_of_unchanged_content_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, _) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        reloader.load_initial().unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Unchanged
        ));
    }

    #[test]
    fn an_invalid_file_keeps_the_last_good_catalog_and_a_fix_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        let first = reloader.load_initial().unwrap();

        std::fs::write(reloader.path(), "[[mystery]]\nid = 0\ntitle = \"B\"\n").unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Rejected(_)
        ));
        assert_eq!(store.current().unwrap(), first);
        // The same bad content again is not re-parsed nor re-logged.
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Unchanged
        ));

        std::fs::remove_file(reloader.path()).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Unreadable(CatalogError::Io { .. })
        ));
        assert_eq!(store.current().unwrap(), first);

        std::fs::write(reloader.path(), GOOD.replace('A', "C")).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Loaded(_)
        ));
        assert_eq!(store.current().unwrap().books("mystery")[0].title, "C");
    }

    #[test]
    fn restoring_the_content_in_service_after_a_bad_edit_swaps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        let first = reloader.load_initial().unwrap();
        std::fs::write(reloader.path(), "broken").unwrap();
        reloader.reload(Trigger::Complete);
        std::fs::write(reloader.path(), GOOD).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Unchanged
        ));
        assert!(Arc::ptr_eq(&store.current().unwrap(), &first));
    }

    #[test]
    fn changed_content_is_taken_only_once_it_stays_the_same_for_the_settle_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        let first = reloader.load_initial().unwrap();
        // A prefix of a catalog that is valid on its own, seen mid-write.
        let whole = format!("{GOOD}\n[[mystery]]\nid = 2\ntitle = \"B\"\n");
        std::fs::write(reloader.path(), whole[..GOOD.len() + 1].replace('A', "a")).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Changed),
            Outcome::Unsettled
        ));
        // The writer goes on before the interval is over: the look starts over.
        std::fs::write(reloader.path(), &whole).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Changed),
            Outcome::Unsettled
        ));
        assert!(
            Arc::ptr_eq(&store.current().unwrap(), &first),
            "a partial file was served"
        );
        std::thread::sleep(SETTLE);
        assert!(matches!(
            reloader.reload(Trigger::Changed),
            Outcome::Loaded(_)
        ));
        assert_eq!(store.current().unwrap().len(), 2);
    }

    #[test]
    fn a_complete_file_is_taken_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        reloader.load_initial().unwrap();
        std::fs::write(reloader.path(), GOOD.replace('A', "B")).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::Complete),
            Outcome::Loaded(_)
        ));
        assert_eq!(store.current().unwrap().books("mystery")[0].title, "B");
    }
}
