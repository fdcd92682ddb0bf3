//! Hot reload of the catalog file.
//!
//! [`Reloader`] re-reads the file, skips content it has already seen, parses it, and swaps the
//! catalog in service; a bad file is logged and the last good catalog stays. [`spawn_watcher`]
//! decides *when* to call it:
//!
//! - `events` (default): inotify/FSEvents through `notify`, watching the file's **directory**
//!   (editors save by renaming a temporary file over the original; Kubernetes swaps the `..data`
//!   symlink of a ConfigMap volume) and the **file** itself (a bind-mounted single file only
//!   reports in-place writes on the file). Events are debounced (trailing edge).
//! - `poll`: re-read every `catalog.poll_interval_ms`, for filesystems that deliver no events
//!   (Docker Desktop bind mounts on macOS and Windows, NFS).
//! - `off`: reload only on SIGHUP.
//!
//! Whatever the trigger, a reload is cheap when nothing changed: the content hash is compared
//! before parsing.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use notify::{EventKind, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::{
    catalog::{self, Catalog, CatalogError},
    metrics::Metrics,
    store::CatalogStore,
};

/// How catalog changes are noticed (`catalog.watch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// Filesystem events (inotify, FSEvents), debounced.
    #[default]
    Events,
    /// Re-read the file every `catalog.poll_interval_ms`.
    Poll,
    /// No watching; reload on SIGHUP only.
    Off,
}

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// A new catalog is in service.
    Loaded(Arc<Catalog>),
    /// The file holds content already seen (in service, or already rejected).
    Unchanged,
    /// The file could not be read or is invalid; the catalog in service is kept.
    Rejected(CatalogError),
}

/// The last content a reload looked at, so repeated events for one edit do one parse and one
/// log line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content(u64),
    Failure(String),
}

/// Loads the catalog file into a [`CatalogStore`].
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    max_bytes: u64,
    store: CatalogStore,
    last_seen: Mutex<Option<Seen>>,
    attempts: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Reloader {
    /// A reloader for `path` feeding `store`, reporting loads and failures to `metrics`.
    pub fn new(path: PathBuf, max_bytes: u64, store: CatalogStore, metrics: Arc<Metrics>) -> Self {
        Reloader {
            path,
            max_bytes,
            store,
            last_seen: Mutex::new(None),
            attempts: AtomicU64::new(0),
            metrics,
        }
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first load, at start-up: any error is returned (and the service does not start).
    pub fn load_initial(&self) -> Result<Arc<Catalog>, CatalogError> {
        let catalog = Arc::new(Catalog::load(&self.path, self.max_bytes)?);
        self.remember(Seen::Content(catalog.content_hash()));
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

    /// Re-reads the file and puts it in service if it is new and valid. Blocking (file I/O and
    /// parsing): call it from a blocking thread.
    pub fn reload(&self) -> Outcome {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let text = match catalog::read_limited(&self.path, self.max_bytes) {
            Ok(text) => text,
            Err(error) => {
                if self.remember(Seen::Failure(error.to_string())) {
                    self.warn_kept(&error);
                }
                return Outcome::Rejected(error);
            }
        };
        let hash = bookshop_common::fnv1a(text.as_bytes());
        if !self.remember(Seen::Content(hash)) {
            return Outcome::Unchanged;
        }
        if self.store.current().map(|c| c.content_hash()) == Some(hash) {
            tracing::info!(
                path = %self.path.display(),
                hash = %catalog::short_hash(hash),
                "catalog file is valid again and unchanged from the catalog in service"
            );
            return Outcome::Unchanged;
        }
        match Catalog::from_toml_str(&text, &self.path.display().to_string()) {
            Ok(catalog) => {
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
            Err(error) => {
                self.warn_kept(&error);
                Outcome::Rejected(error)
            }
        }
    }

    /// How many times [`Reloader::reload`] ran (each reads the file once).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Records what was seen; true if it differs from the previous reload.
    fn remember(&self, seen: Seen) -> bool {
        let mut last = self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() == Some(&seen) {
            return false;
        }
        *last = Some(seen);
        true
    }

    fn warn_kept(&self, error: &CatalogError) {
        self.metrics.reload_failed();
        let kept = self.store.current();
        tracing::warn!(
            error = %error,
            kept_hash = %kept.as_ref().map(|c| c.short_hash()).unwrap_or_default(),
            kept_books = kept.map_or(0, |c| c.len()),
            "catalog reload rejected; the last good catalog stays in service"
        );
    }
}

/// Watcher settings, from `catalog.*`.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// How changes are noticed.
    pub mode: WatchMode,
    /// Quiet time after the last event before reloading (`events` mode).
    pub debounce: Duration,
    /// Re-read interval (`poll` mode).
    pub poll_interval: Duration,
}

/// The running watcher. Dropping it stops watching.
#[derive(Debug)]
pub struct WatchHandle {
    trigger: mpsc::UnboundedSender<()>,
    task: JoinHandle<()>,
}

impl WatchHandle {
    /// Asks for a reload now (SIGHUP uses it).
    pub fn trigger(&self) {
        let _ = self.trigger.send(());
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching the reloader's file. Must run inside a Tokio runtime.
///
/// In `events` mode, a failure to set up the OS watch (for example the inotify watch limit) is
/// not fatal: it is logged and the watcher falls back to polling.
pub fn spawn_watcher(reloader: Arc<Reloader>, options: WatchOptions) -> WatchHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut mode = options.mode;
    let mut fs_watch = None;
    if mode == WatchMode::Events {
        match FsWatch::new(reloader.path(), tx.clone()) {
            Ok(watch) => fs_watch = Some(watch),
            Err(error) => {
                tracing::warn!(
                    %error,
                    path = %reloader.path().display(),
                    poll_interval_ms = options.poll_interval.as_millis(),
                    "cannot watch the catalog for changes; polling instead"
                );
                mode = WatchMode::Poll;
            }
        }
    }
    tracing::info!(
        path = %reloader.path().display(),
        mode = ?mode,
        "watching the catalog for changes"
    );
    let task = tokio::spawn(watch_loop(reloader, rx, fs_watch, mode, options));
    WatchHandle { trigger: tx, task }
}

async fn watch_loop(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<()>,
    mut fs_watch: Option<FsWatch>,
    mode: WatchMode,
    options: WatchOptions,
) {
    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                if msg.is_none() {
                    return;
                }
                if fs_watch.is_some() {
                    debounce(&mut rx, options.debounce).await;
                }
            }
            _ = poll.tick(), if mode == WatchMode::Poll => {}
        }
        let worker = reloader.clone();
        let outcome = tokio::task::spawn_blocking(move || worker.reload()).await;
        if let Err(error) = outcome {
            tracing::error!(%error, "catalog reload task failed");
        }
        if let Some(watch) = fs_watch.as_mut() {
            // A rename or delete-and-create gave the path a new inode: watch that one.
            watch.rewatch_file();
        }
    }
}

/// Waits until no trigger arrived for `quiet`, but at most 4 × `quiet` in all, so a file that
/// keeps changing is still reloaded.
async fn debounce(rx: &mut mpsc::UnboundedReceiver<()>, quiet: Duration) {
    let give_up = Instant::now() + quiet * 4;
    loop {
        let deadline = (Instant::now() + quiet).min(give_up);
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) if Instant::now() < give_up => continue,
            _ => return,
        }
    }
}

/// The OS watches: the catalog's directory and the file itself.
struct FsWatch {
    watcher: notify::RecommendedWatcher,
    file: PathBuf,
    /// The identity of the file last watched, to re-watch only when the path's inode changed.
    watched: Option<FileId>,
}

impl std::fmt::Debug for FsWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsWatch").field("file", &self.file).finish()
    }
}

impl FsWatch {
    fn new(file: &Path, tx: mpsc::UnboundedSender<()>) -> notify::Result<Self> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = file.file_name().map(ToOwned::to_owned);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    // Our own reads show up as Access events; reacting to them would loop forever.
                    Ok(event) => {
                        !matches!(event.kind, EventKind::Access(_))
                            && (event.need_rescan()
                                || event.paths.is_empty()
                                || event.paths.iter().any(|p| is_relevant(p, name.as_deref())))
                    }
                    // Errors (such as a queue overflow) may hide a change: reload to be sure.
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let mut watch = FsWatch {
            watcher,
            file: file.to_path_buf(),
            watched: None,
        };
        watch.rewatch_file();
        Ok(watch)
    }

    /// (Re)watches the file itself: on a single-file bind mount only the file's own watch sees
    /// in-place writes from the host. Fails quietly while the file is missing.
    fn rewatch_file(&mut self) {
        let current = file_id(&self.file);
        if current.is_some() && current == self.watched {
            return;
        }
        if self.watched.take().is_some() {
            let _ = self.watcher.unwatch(&self.file);
        }
        if self
            .watcher
            .watch(&self.file, RecursiveMode::NonRecursive)
            .is_ok()
        {
            self.watched = current;
        }
    }
}

/// What identifies a file across renames: device and inode (following symlinks).
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

/// An event path is relevant if it is the catalog file, or one of the `..data`-style entries
/// through which Kubernetes swaps a ConfigMap volume's content.
fn is_relevant(path: &Path, name: Option<&std::ffi::OsStr>) -> bool {
    match path.file_name() {
        Some(file_name) => Some(file_name) == name || file_name.to_string_lossy().starts_with(".."),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "[[mystery]]\nid = 1\ntitle = \"A\"\n";

    fn reloader(dir: &Path) -> (Reloader, CatalogStore) {
        let store = CatalogStore::default();
        let path = dir.join("catalog.toml");
        (
            Reloader::new(
                path,
                catalog::DEFAULT_MAX_BYTES,
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
        assert!(matches!(reloader.reload(), Outcome::Unchanged));
    }

    #[test]
    fn an_invalid_file_keeps_the_last_good_catalog_and_a_fix_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        let first = reloader.load_initial().unwrap();

        std::fs::write(reloader.path(), "[[mystery]]\nid = 0\ntitle = \"B\"\n").unwrap();
        assert!(matches!(reloader.reload(), Outcome::Rejected(_)));
        assert_eq!(store.current().unwrap(), first);
        // The same bad content again is not re-parsed nor re-logged.
        assert!(matches!(reloader.reload(), Outcome::Unchanged));

        std::fs::remove_file(reloader.path()).unwrap();
        assert!(matches!(
            reloader.reload(),
            Outcome::Rejected(CatalogError::Io { .. })
        ));
        assert_eq!(store.current().unwrap(), first);

        std::fs::write(reloader.path(), GOOD.replace('A', "C")).unwrap();
        assert!(matches!(reloader.reload(), Outcome::Loaded(_)));
        assert_eq!(
            store
                .current()
                .unwrap()
                .books(bookshop_proto::BookCategory::Mystery)[0]
                .title,
            "C"
        );
    }

    #[test]
    fn restoring_the_content_in_service_after_a_bad_edit_swaps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        let first = reloader.load_initial().unwrap();
        std::fs::write(reloader.path(), "broken").unwrap();
        reloader.reload();
        std::fs::write(reloader.path(), GOOD).unwrap();
        assert!(matches!(reloader.reload(), Outcome::Unchanged));
        assert!(Arc::ptr_eq(&store.current().unwrap(), &first));
    }

    #[tokio::test]
    async fn the_watcher_goes_quiet_after_a_reload_instead_of_triggering_itself() {
        // Reading the file produces Access events; if they were not ignored, every reload
        // would trigger the next one forever.
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path());
        std::fs::write(reloader.path(), GOOD).unwrap();
        reloader.load_initial().unwrap();
        let reloader = Arc::new(reloader);
        let options = WatchOptions {
            mode: WatchMode::Events,
            debounce: Duration::from_millis(20),
            poll_interval: Duration::from_secs(60),
        };
        let _watch = spawn_watcher(reloader.clone(), options);
        std::fs::write(reloader.path(), GOOD.replace('A', "B")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while store
            .current()
            .unwrap()
            .books(bookshop_proto::BookCategory::Mystery)[0]
            .title
            != "B"
        {
            assert!(Instant::now() < deadline, "the edit was not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled = reloader.attempts();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            reloader.attempts(),
            settled,
            "reloads keep happening with no edits"
        );
        assert!(settled <= 3, "{settled} reloads for one edit");
    }

    #[test]
    fn event_paths_are_relevant_for_the_file_and_configmap_entries_only() {
        let name = Some(std::ffi::OsStr::new("catalog.toml"));
        assert!(is_relevant(Path::new("/c/catalog.toml"), name));
        assert!(is_relevant(Path::new("/c/..data"), name));
        assert!(is_relevant(Path::new("/c/..2026_11_29_10_00_00.123"), name));
        assert!(!is_relevant(Path::new("/c/other.toml"), name));
        assert!(!is_relevant(Path::new("/c/.catalog.toml.swp"), name));
    }
}
