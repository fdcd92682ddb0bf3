//! When to reload the catalog: [`spawn_watcher`] runs a task that calls
//! [`Reloader::reload`](crate::reload::Reloader::reload) on each change, and again after the
//! settle interval (a change not yet known to be complete) or after a backoff (a failed read).
//!
//! - `events` (default): inotify/FSEvents through `notify`, watching the file's **directory**
//!   (editors save by renaming a temporary file over the original; Kubernetes swaps the `..data`
//!   symlink of a ConfigMap volume) and the **file** itself (a bind-mounted single file only
//!   reports in-place writes on the file). Each event is read as a [`Change`]: the file was
//!   replaced whole (renamed into place), closed by its writer, written in place, or only
//!   touched. Events are debounced (trailing edge), and what the burst saw decides how the file
//!   is taken: a replaced or closed file at once, a file written in place once it has settled.
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
    trigger: mpsc::UnboundedSender<Change>,
    task: JoinHandle<()>,
}

impl WatchHandle {
    /// Asks for a reload now, of the file as it is (SIGHUP uses it).
    pub fn trigger(&self) {
        let _ = self.trigger.send(Change::Requested);
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
    mut rx: mpsc::UnboundedReceiver<Change>,
    mut fs_watch: Option<FsWatch>,
    mode: WatchMode,
    options: WatchOptions,
) {
    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    // When to look at the file again: after the settle interval, or after a failed read. Such a
    // look is always `Changed`: a file that could not be read was not seen put in place whole,
    // so whatever is found there later is taken once it has settled.
    let mut later: Option<Instant> = None;
    let mut retry = RETRY_FIRST;
    loop {
        let until = later.unwrap_or_else(far_future);
        let (trigger, again) = tokio::select! {
            message = rx.recv() => {
                let Some(change) = message else { return };
                let change = match fs_watch {
                    Some(_) => debounce(&mut rx, change, options.debounce).await,
                    None => change,
                };
                (change.trigger(), false)
            }
            _ = poll.tick(), if mode == WatchMode::Poll => (Trigger::Changed, false),
            () = tokio::time::sleep_until(until), if later.is_some() => (Trigger::Changed, true),
        };
        if !again {
            // A new change supersedes a pending retry and starts its backoff over.
            retry = RETRY_FIRST;
        }
        let worker = reloader.clone();
        let outcome = tokio::task::spawn_blocking(move || worker.reload(trigger)).await;
        later = match outcome {
            Ok(Outcome::Unsettled) => Some(Instant::now() + reloader.settle()),
            Ok(Outcome::Unreadable(_)) => {
                let at = Instant::now() + retry;
                retry = (retry * 2).min(RETRY_MAX);
                Some(at)
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

/// Waits until no change arrived for `quiet`, but at most 4 × `quiet` in all, so a file that
/// keeps changing is still reloaded; returns what the burst says of the file
/// ([`Change::then`]).
async fn debounce(
    rx: &mut mpsc::UnboundedReceiver<Change>,
    mut seen: Change,
    quiet: Duration,
) -> Change {
    let give_up = Instant::now() + quiet * 4;
    loop {
        let deadline = (Instant::now() + quiet).min(give_up);
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(change)) if Instant::now() < give_up => seen = seen.then(change),
            Ok(Some(change)) => return seen.then(change),
            _ => return seen,
        }
    }
}

/// What an event (or an operator) says about the catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A whole file was renamed into place (editors, `mv`, Kubernetes' `..data` swap): it is
    /// complete the moment it appears.
    Replaced,
    /// Its writer closed it after writing: done.
    Closed,
    /// An operator asked for a reload (SIGHUP): take the file as it is.
    Requested,
    /// Bytes were written in place (or created, or an event may have been lost): the writer
    /// may not be done.
    WrittenInPlace,
    /// Something that says nothing of the bytes: attributes, a link count, the old file of a
    /// rename going away, the file moved off its name.
    Touched,
}

impl Change {
    /// The burst so far followed by `next`. The latest change that concerns the bytes
    /// decides (a write after a rename may be half done; a rename or close after writes is
    /// whole), and a touch decides nothing. A rename over the file is followed by the old
    /// file's own events (its attributes, its removal): were they counted as writes, every save
    /// by rename would wait the settle interval.
    fn then(self, next: Change) -> Change {
        match next {
            Change::Touched => self,
            _ => next,
        }
    }

    /// How the reloader is to take the file.
    fn trigger(self) -> Trigger {
        match self {
            Change::Replaced | Change::Closed | Change::Requested => Trigger::Complete,
            Change::WrittenInPlace | Change::Touched => Trigger::Changed,
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
    fn new(file: &Path, tx: mpsc::UnboundedSender<Change>) -> notify::Result<Self> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = file.file_name().map(ToOwned::to_owned);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let change = match &event {
                    Ok(event) if event.need_rescan() => Some(Change::WrittenInPlace),
                    Ok(event) => {
                        let relevant = event.paths.is_empty()
                            || event.paths.iter().any(|p| is_relevant(p, name.as_deref()));
                        change_of(&event.kind).filter(|_| relevant)
                    }
                    // Errors (such as a queue overflow) may hide a change: look again.
                    Err(_) => Some(Change::WrittenInPlace),
                };
                if let Some(change) = change {
                    let _ = tx.send(change);
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

/// What an event says of the file, or nothing for an open or a read (ours included: reacting
/// to them would loop forever). A created file is being written, not yet whole: it counts as
/// written in place, and its writer's close says when it is done.
fn change_of(kind: &EventKind) -> Option<Change> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Closed),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some(Change::Touched),
        EventKind::Modify(ModifyKind::Name(_)) => Some(Change::Replaced),
        EventKind::Modify(ModifyKind::Metadata(_)) | EventKind::Remove(_) => Some(Change::Touched),
        _ => Some(Change::WrittenInPlace),
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

    fn data() -> EventKind {
        EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))
    }

    fn rename(mode: RenameMode) -> EventKind {
        EventKind::Modify(ModifyKind::Name(mode))
    }

    #[test]
    fn each_event_says_what_kind_of_change_it_was() {
        assert_eq!(change_of(&rename(RenameMode::To)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::Both)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::Any)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::From)), Some(Change::Touched));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(change_of(&closed), Some(Change::Closed));
        assert_eq!(change_of(&data()), Some(Change::WrittenInPlace));
        let created = EventKind::Create(notify::event::CreateKind::File);
        assert_eq!(change_of(&created), Some(Change::WrittenInPlace));
        let attributes = EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any));
        assert_eq!(change_of(&attributes), Some(Change::Touched));
        let removed = EventKind::Remove(notify::event::RemoveKind::File);
        assert_eq!(change_of(&removed), Some(Change::Touched));
        assert_eq!(
            change_of(&EventKind::Access(AccessKind::Open(AccessMode::Any))),
            None
        );
    }

    /// What a debounced burst of these events says.
    fn burst(kinds: &[EventKind]) -> Change {
        let mut changes = kinds.iter().filter_map(change_of);
        let first = changes.next().unwrap();
        changes.fold(first, Change::then)
    }

    #[test]
    fn a_rename_over_the_file_is_complete_though_the_old_file_reports_its_end_after_it() {
        // The events inotify gives for `catalog.toml` when a temporary file is renamed over it,
        // in their order: the rename, then the replaced file's attributes (its link count) and
        // its removal, through the watch on the file itself.
        let saved = burst(&[
            rename(RenameMode::To),
            rename(RenameMode::Both),
            EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ]);
        assert_eq!(saved, Change::Replaced);
        assert_eq!(saved.trigger(), Trigger::Complete);
    }

    #[test]
    fn a_write_in_place_settles_even_after_a_rename_and_a_close_ends_it() {
        let written = burst(&[rename(RenameMode::To), data()]);
        assert_eq!(written.trigger(), Trigger::Changed);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(burst(&[data(), closed]).trigger(), Trigger::Complete);
        let removed = EventKind::Remove(notify::event::RemoveKind::File);
        assert_eq!(burst(&[removed]).trigger(), Trigger::Changed);
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
