//! When to reload the catalog: [`spawn_watcher`] runs a task that calls
//! [`Reloader::reload`](crate::reload::Reloader::reload) on each change, and again after the
//! settle interval (a change not yet known to be complete) or after a backoff (a failed read).
//!
//! - `events` (default): inotify/FSEvents through `notify`, watching the file's **directory**
//!   (editors save by renaming a temporary file over the original; Kubernetes swaps the `..data`
//!   symlink of a ConfigMap volume) and the **file** itself (a bind-mounted single file only
//!   reports in-place writes on the file). Events are debounced (trailing edge). A rename into
//!   place, or the writer closing the file, says the file is complete; a write seen while the
//!   file is open does not.
//! - `poll`: re-read every `catalog.poll_interval_ms`, for filesystems that deliver no events
//!   (Docker Desktop bind mounts on macOS and Windows, NFS).
//! - `off`: reload only on SIGHUP.
//!
//! Whatever the trigger, a reload is cheap when nothing changed: the content hash is compared
//! before parsing.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{
    EventKind, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode, ModifyKind, RenameMode},
};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::reload::{Outcome, Reloader, Trigger};

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

/// The first wait before a failed read is tried again; doubled on each further failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two tries of a failed read.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// The running watcher. Dropping it stops watching.
#[derive(Debug)]
pub struct WatchHandle {
    trigger: mpsc::UnboundedSender<Trigger>,
    task: JoinHandle<()>,
}

impl WatchHandle {
    /// Asks for a reload now, of the file as it is (SIGHUP uses it).
    pub fn trigger(&self) {
        let _ = self.trigger.send(Trigger::Complete);
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

/// A look at the file to take later: after the settle interval, or after a failed read.
#[derive(Debug, Clone, Copy)]
struct Later {
    at: Instant,
    trigger: Trigger,
}

async fn watch_loop(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    mut fs_watch: Option<FsWatch>,
    mode: WatchMode,
    options: WatchOptions,
) {
    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    let mut later: Option<Later> = None;
    let mut retry = RETRY_FIRST;
    loop {
        let until = later.map_or_else(far_future, |l| l.at);
        let (trigger, again) = tokio::select! {
            message = rx.recv() => {
                let Some(trigger) = message else { return };
                let trigger = match fs_watch {
                    Some(_) => debounce(&mut rx, trigger, options.debounce).await,
                    None => trigger,
                };
                (trigger, false)
            }
            _ = poll.tick(), if mode == WatchMode::Poll => (Trigger::Changed, false),
            () = tokio::time::sleep_until(until), if later.is_some() => {
                let trigger = later.take().map_or(Trigger::Changed, |l| l.trigger);
                (trigger, true)
            }
        };
        if !again {
            // A new change supersedes a pending retry and starts its backoff over.
            retry = RETRY_FIRST;
        }
        let worker = reloader.clone();
        let outcome = tokio::task::spawn_blocking(move || worker.reload(trigger)).await;
        later = match outcome {
            Ok(Outcome::Unsettled) => Some(Later {
                at: Instant::now() + reloader.settle(),
                trigger: Trigger::Changed,
            }),
            Ok(Outcome::Unreadable(_)) => {
                let at = Instant::now() + retry;
                retry = (retry * 2).min(RETRY_MAX);
                Some(Later { at, trigger })
            }
            Ok(_) => None,
            Err(error) => {
                tracing::error!(%error, "catalog reload task failed");
                None
            }
        };
        if let Some(watch) = fs_watch.as_mut() {
            // A rename or delete-and-create gave the path a new inode: watch that one.
            watch.rewatch_file();
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Waits until no trigger arrived for `quiet`, but at most 4 × `quiet` in all, so a file that
/// keeps changing is still reloaded. The last trigger decides: a rename or close after writes
/// says the file is complete, a write after them says it may not be.
async fn debounce(
    rx: &mut mpsc::UnboundedReceiver<Trigger>,
    mut last: Trigger,
    quiet: Duration,
) -> Trigger {
    let give_up = Instant::now() + quiet * 4;
    loop {
        let deadline = (Instant::now() + quiet).min(give_up);
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(trigger)) if Instant::now() < give_up => last = trigger,
            Ok(Some(trigger)) => return trigger,
            _ => return last,
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
    fn new(file: &Path, tx: mpsc::UnboundedSender<Trigger>) -> notify::Result<Self> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = file.file_name().map(ToOwned::to_owned);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let trigger = match &event {
                    Ok(event) => {
                        let relevant = event.need_rescan()
                            || event.paths.is_empty()
                            || event.paths.iter().any(|p| is_relevant(p, name.as_deref()));
                        trigger_of(&event.kind).filter(|_| relevant)
                    }
                    // Errors (such as a queue overflow) may hide a change: look again.
                    Err(_) => Some(Trigger::Changed),
                };
                if let Some(trigger) = trigger {
                    let _ = tx.send(trigger);
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

/// What an event says of the file: complete (renamed into place, closed by its writer),
/// changed, or nothing (an open or read, ours included: reacting to them would loop forever).
fn trigger_of(kind: &EventKind) -> Option<Trigger> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Trigger::Complete),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some(Trigger::Changed),
        EventKind::Modify(ModifyKind::Name(_)) => Some(Trigger::Complete),
        _ => Some(Trigger::Changed),
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
    use crate::{catalog, metrics::Metrics, store::CatalogStore};

    const GOOD: &str = "[[mystery]]\nid = 1\ntitle = \"A\"\n";

    #[tokio::test]
    async fn the_watcher_goes_quiet_after_a_reload_instead_of_triggering_itself() {
        // Reading the file produces Access events; if they were not ignored, every reload
        // would trigger the next one forever.
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::default();
        let path = dir.path().join("catalog.toml");
        let settle = Duration::from_millis(50);
        let metrics = Arc::new(Metrics::new());
        let reloader = Reloader::new(
            path,
            catalog::DEFAULT_MAX_BYTES,
            settle,
            store.clone(),
            metrics,
        );
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
        let title = || store.current().unwrap().books("mystery")[0].title.clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while title() != "B" {
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
    fn a_rename_into_place_or_a_closed_write_is_complete_and_a_write_is_not() {
        let complete = Some(Trigger::Complete);
        let changed = Some(Trigger::Changed);
        let rename = |mode| EventKind::Modify(ModifyKind::Name(mode));
        assert_eq!(trigger_of(&rename(RenameMode::To)), complete);
        assert_eq!(trigger_of(&rename(RenameMode::Both)), complete);
        assert_eq!(trigger_of(&rename(RenameMode::From)), changed);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(trigger_of(&closed), complete);
        let written = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert_eq!(trigger_of(&written), changed);
        assert_eq!(
            trigger_of(&EventKind::Access(AccessKind::Open(AccessMode::Any))),
            None
        );
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
