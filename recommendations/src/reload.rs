//! Taking a changed catalog file into service once complete and valid; a bad one is logged, the
//! last good catalog stays. Complete: renamed into place, closed by its writer, or else with size,
//! mtime, inode and bytes unchanged for `catalog.settle_ms`, so a writer pausing at a book boundary
//! (a valid, smaller catalog) is not served. Failed reads are retried with a backoff.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bookshop_common::{millis, telemetry};
use bookshop_proto::catalog::CategoryChange;
use futures_util::future::OptionFuture;

use crate::catalog::{self, Catalog, CatalogError, Store};
use crate::changes;
use crate::{metrics::Metrics, watch::Watcher, watch::file_id};

/// The first wait before a failed read is tried again, doubled on each further failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Outcome {
    Loaded(Arc<Catalog>),
    /// Content already seen: in service, or already rejected.
    Unchanged,
    /// New content not yet known to be complete, and when it will have settled.
    Unsettled(Instant),
    /// The file could not be read (a passing error, most likely): try again later.
    Unreadable(CatalogError),
    /// Invalid: the catalog in service is kept until the next edit.
    Rejected(CatalogError),
}

/// One version of the file on disk, known without reading it: size, modification time, inode.
type Stamp = (u64, Option<SystemTime>, Option<(u64, u64)>);

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok(), file_id(&metadata)))
}

/// Told on the Watch stream with the version: what putting the catalog `hash` in service changed
/// (once it is in the store too), and why the newest save is not, with the file's name only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    pub hash: u64,
    pub changes: Vec<CategoryChange>,
    pub rejected: String,
}

pub type Reports = tokio::sync::watch::Sender<Reported>;

/// What the last look found: content with this hash, or a file refused unread (too large).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content(u64),
    Refused(String),
}

/// Loads the catalog file into the [`Store`]; each look runs on a blocking thread.
#[derive(Debug, Default)]
pub struct Reloader {
    path: PathBuf,
    max_bytes: u64,
    settle: Duration,
    store: Store,
    reports: Reports,
    metrics: Arc<Metrics>,
    /// So that the many events of one edit make one parse and one log line.
    last_seen: Option<Seen>,
    /// New content not yet taken: what it was, and since when.
    candidate: Option<((Option<Stamp>, u64), Instant)>,
    /// Failed reads in a row: the first is logged, and the end of the streak.
    unreadable: u64,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        max_bytes: u64,
        settle: Duration,
        store: Store,
        reports: Reports,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        Reloader { path, max_bytes, settle, store, reports, metrics, ..Default::default() }
    }

    pub fn load_initial(&mut self) -> Result<Arc<Catalog>, CatalogError> {
        let catalog = Arc::new(Catalog::load(&self.path, self.max_bytes)?);
        self.last_seen = Some(Seen::Content(catalog.content_hash()));
        self.put_in_service(catalog.clone(), "catalog loaded");
        Ok(catalog)
    }

    /// Puts the file in service if it is new, complete and valid; blocking (I/O and parsing).
    pub fn reload(&mut self, complete: bool) -> Outcome {
        let stamp = stamp(&self.path);
        let bytes = match catalog::read_bytes(&self.path, self.max_bytes) {
            Ok(bytes) => bytes,
            Err(error @ CatalogError::Io { .. }) => {
                self.metrics.read_errors.inc();
                if self.unreadable == 0 {
                    tracing::warn!(%error, "cannot read the catalog; trying again until it can be read (the catalog in service stays)");
                }
                self.unreadable += 1;
                return Outcome::Unreadable(error);
            }
            Err(error) => return self.rejected(Seen::Refused(error.to_string()), error),
        };
        if self.unreadable > 0 {
            tracing::info!(failed_reads = self.unreadable, path = %self.path.display(), "the catalog can be read again");
            self.unreadable = 0;
        }
        let hash = bookshop_common::fnv1a(&bytes);
        if self.last_seen == Some(Seen::Content(hash)) {
            self.candidate = None;
            return Outcome::Unchanged;
        }
        if !complete && let Some(until) = self.unsettled_until(stamp, hash) {
            return Outcome::Unsettled(until);
        }
        self.candidate = None;
        self.last_seen = Some(Seen::Content(hash));
        if self.store.borrow().as_ref().map(|c| c.content_hash()) == Some(hash) {
            self.reports.send_modify(|reported| reported.rejected.clear());
            tracing::info!(path = %self.path.display(), "catalog file is valid again and unchanged from the catalog in service");
            return Outcome::Unchanged;
        }
        // Only new, complete content makes a span: a reload's trace of its own.
        let span = reload_span(&self.path);
        let _inside = span.enter();
        let started = Instant::now();
        let origin = self.path.display().to_string();
        let parsed =
            catalog::decode(bytes, &origin).and_then(|text| Catalog::from_toml_str(&text, &origin));
        let outcome = match parsed {
            Ok(catalog) => {
                span.record("books", i64::try_from(catalog.len()).unwrap_or(i64::MAX));
                let catalog = Arc::new(catalog);
                self.put_in_service(catalog.clone(), "catalog reloaded");
                Outcome::Loaded(catalog)
            }
            Err(error) => {
                span.record("otel.status_code", "error");
                self.rejected(Seen::Content(hash), error)
            }
        };
        let result = if matches!(outcome, Outcome::Loaded(_)) { "loaded" } else { "rejected" };
        span.record("result", result);
        span.record("duration_ms", millis(started.elapsed()));
        outcome
    }

    /// Until when `(stamp, hash)` must stay the candidate; `None` once it stayed for `settle`.
    fn unsettled_until(&mut self, stamp: Option<Stamp>, hash: u64) -> Option<Instant> {
        let seen = (stamp, hash);
        let since = match self.candidate {
            Some((candidate, since)) if candidate == seen => since,
            _ => self.candidate.insert((seen, Instant::now())).1,
        };
        let until = since + self.settle;
        (until > Instant::now()).then_some(until)
    }

    fn put_in_service(&self, catalog: Arc<Catalog>, message: &str) {
        self.metrics.catalog_loaded(&catalog);
        let previous = self.store.borrow().clone();
        let changes = previous.as_ref().map_or(Vec::new(), |old| changes::between(old, &catalog));
        let summary = changes::summary(&changes);
        let hash = catalog.content_hash();
        self.reports.send_replace(Reported { hash, changes, rejected: String::new() });
        self.store.send_replace(Some(catalog.clone()));
        tracing::info!(
            path = %self.path.display(),
            books = catalog.len(),
            categories = %catalog.summary(),
            changes = %summary,
            hash = %catalog.short_hash(),
            previous_hash = %previous.map(|c| c.short_hash()).unwrap_or_default(),
            "{message}"
        );
    }

    /// Logged and counted once, however many events the edit caused.
    fn rejected(&mut self, seen: Seen, error: CatalogError) -> Outcome {
        if matches!(seen, Seen::Refused(_)) && self.last_seen.as_ref() == Some(&seen) {
            return Outcome::Unchanged;
        }
        self.last_seen = Some(seen);
        self.metrics.reloads.get_or_create(&[("result", "failure")]).inc();
        let kept = self.store.borrow().clone();
        let kept_hash = kept.as_ref().map(|c| c.short_hash()).unwrap_or_default();
        let message = "catalog reload rejected; the last good catalog stays in service";
        tracing::warn!(%error, %kept_hash, kept_books = kept.map_or(0, |c| c.len()), "{message}");
        // Pages show it: no directory of the server's in it.
        let name = self.path.file_name().map_or("catalog".into(), |name| name.to_string_lossy());
        let text = error.to_string().replace(&self.path.display().to_string(), &name);
        self.reports.send_modify(|reported| reported.rejected = text);
        Outcome::Rejected(error)
    }
}

/// Takes each change the watcher sees, and looks again after the settle interval or a failed read.
pub async fn run(mut reloader: Reloader, mut watcher: Watcher) {
    let mut again: Option<tokio::time::Instant> = None;
    let mut retry = RETRY_FIRST;
    loop {
        let complete = tokio::select! {
            change = watcher.next() => {
                retry = RETRY_FIRST;
                change.is_complete()
            }
            Some(()) = OptionFuture::from(again.map(tokio::time::sleep_until)) => false,
        };
        let looked = tokio::task::spawn_blocking(move || (reloader.reload(complete), reloader));
        let outcome;
        (outcome, reloader) = match looked.await {
            Ok(looked) => looked,
            Err(error) => {
                return tracing::error!(%error, "the catalog reload failed; reloading stops");
            }
        };
        again = match outcome {
            // From when it was first seen, whatever looked at it since (a poll).
            Outcome::Unsettled(until) => Some(until.into()),
            Outcome::Unreadable(_) => {
                let at = tokio::time::Instant::now() + retry;
                retry = (retry * 2).min(RETRY_MAX);
                Some(at)
            }
            _ => None,
        };
        watcher.rewatch();
    }
}

/// A reload's span while traces are on: the root of a trace of its own, as nothing calls it.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "[[mystery]]\nid = 1\ntitle = \"A\"\n";
    const SETTLE: Duration = Duration::from_millis(30);

    fn reloader(dir: &Path) -> (Reloader, Store) {
        let store = Store::new(None);
        let path = dir.join("catalog.toml");
        std::fs::write(&path, GOOD).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (max_bytes, reports) = (catalog::DEFAULT_MAX_BYTES, Reports::default());
        let reloader = Reloader::new(path, max_bytes, SETTLE, store.clone(), reports, metrics);
        (reloader, store)
    }

    fn current(store: &Store) -> Arc<Catalog> {
        store.borrow().clone().unwrap()
    }

    #[test]
    fn a_reload_of_unchanged_content_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, _) = reloader(dir.path());
        reloader.load_initial().unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Unchanged));
    }

    #[test]
    fn an_invalid_file_keeps_the_last_good_catalog_and_a_fix_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, store) = reloader(dir.path());
        let first = reloader.load_initial().unwrap();
        std::fs::write(&reloader.path, "[[mystery]]\nid = 0\ntitle = \"B\"\n").unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Rejected(_)));
        assert_eq!(current(&store), first);
        // The same bad content again is not re-parsed nor re-logged.
        assert!(matches!(reloader.reload(true), Outcome::Unchanged));
        std::fs::remove_file(&reloader.path).unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Unreadable(CatalogError::Io { .. })));
        assert_eq!(current(&store), first);
        std::fs::write(&reloader.path, GOOD.replace('A', "C")).unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Loaded(_)));
        assert_eq!(current(&store).books("mystery")[0].title, "C");
    }

    #[test]
    fn a_rejection_names_the_file_without_its_directory_until_a_good_save() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, _) = reloader(dir.path());
        reloader.load_initial().unwrap();
        std::fs::write(&reloader.path, "[[mystery]]\nid = 1\ntitle = \"A\n").unwrap();
        reloader.reload(true);
        let shown = reloader.reports.borrow().rejected.clone();
        assert!(shown.starts_with("catalog.toml:3:11: invalid basic string"), "{shown}");
        assert!(!shown.contains(&*dir.path().to_string_lossy()), "{shown}");
        // The content in service saved again clears it, as a new good catalog does.
        std::fs::write(&reloader.path, GOOD).unwrap();
        reloader.reload(true);
        assert_eq!(reloader.reports.borrow().rejected, "");
    }

    #[test]
    fn restoring_the_content_in_service_after_a_bad_edit_swaps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, store) = reloader(dir.path());
        let first = reloader.load_initial().unwrap();
        std::fs::write(&reloader.path, "broken").unwrap();
        reloader.reload(true);
        std::fs::write(&reloader.path, GOOD).unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Unchanged));
        assert!(Arc::ptr_eq(&current(&store), &first));
    }

    #[test]
    fn changed_content_is_taken_only_once_it_stays_the_same_for_the_settle_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, store) = reloader(dir.path());
        let first = reloader.load_initial().unwrap();
        // A prefix of a catalog that is valid on its own, seen mid-write.
        let whole = format!("{GOOD}\n[[mystery]]\nid = 2\ntitle = \"B\"\n");
        std::fs::write(&reloader.path, whole[..GOOD.len() + 1].replace('A', "a")).unwrap();
        assert!(matches!(reloader.reload(false), Outcome::Unsettled(_)));
        // The writer goes on before the interval is over: the look starts over.
        std::fs::write(&reloader.path, &whole).unwrap();
        assert!(matches!(reloader.reload(false), Outcome::Unsettled(_)));
        assert!(Arc::ptr_eq(&current(&store), &first), "a partial file was served");
        std::thread::sleep(SETTLE);
        assert!(matches!(reloader.reload(false), Outcome::Loaded(_)));
        assert_eq!(current(&store).len(), 2);
    }

    #[test]
    fn a_complete_file_is_taken_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, store) = reloader(dir.path());
        reloader.load_initial().unwrap();
        std::fs::write(&reloader.path, GOOD.replace('A', "B")).unwrap();
        assert!(matches!(reloader.reload(true), Outcome::Loaded(_)));
        assert_eq!(current(&store).books("mystery")[0].title, "B");
    }
}
