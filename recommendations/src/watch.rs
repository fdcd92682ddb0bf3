//! When the catalog may have changed, and how: a [`Watcher`] turns filesystem events, polls and
//! SIGHUP into [`Change`]s. `events` (the default) watches the **directory** (editors rename a file
//! over the original; Kubernetes swaps a ConfigMap's `..data` symlink) and the **file** (a bind
//! mount reports only its own writes), and debounces itself (notify's debouncers keep only paths).
//! `poll` looks every `catalog.poll_interval_ms` (Docker Desktop, NFS); `off`: SIGHUP only.

use std::{ffi::OsStr, path::Path, path::PathBuf, time::Duration};

use futures_util::future::OptionFuture;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, time::Interval};

/// `catalog.watch`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    #[default]
    Events,
    Poll,
    Off,
}

/// What an event (or an operator) says of the catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A whole file was renamed into place: complete the moment it appears.
    Replaced,
    /// Its writer closed it after writing.
    Closed,
    /// SIGHUP: take the file as it is.
    Requested,
    /// Written in place, created, or maybe changed (a lost event, a poll): maybe half done.
    Written,
    /// Says nothing of the bytes: attributes, the old file of a rename going away.
    Touched,
}

impl Change {
    /// Whether the file can be taken as it is, rather than once it has settled.
    pub fn is_complete(self) -> bool {
        matches!(self, Change::Replaced | Change::Closed | Change::Requested)
    }

    /// The burst so far, then `next`: the latest change of the bytes decides (a write after a
    /// rename may be half done; a close after writes is whole), and `Touched` decides nothing.
    fn then(self, next: Change) -> Change {
        if next == Change::Touched { self } else { next }
    }
}

/// The changes of one file, as the mode sees them; SIGHUP in every mode.
#[derive(Debug)]
pub struct Watcher {
    file: PathBuf,
    events: mpsc::UnboundedReceiver<Change>,
    /// On the catalog's directory, and on the file itself while it exists.
    os_watch: Option<RecommendedWatcher>,
    /// Device and inode of the file watched, to re-watch only when the path's changed.
    watched: Option<(u64, u64)>,
    poll: Option<Interval>,
    debounce: Duration,
    #[cfg(unix)]
    hangups: Option<tokio::signal::unix::Signal>,
}

impl Watcher {
    /// Watches `path`; if the OS watch cannot be set up (the inotify limit), polls instead.
    pub fn new(
        path: &Path,
        mut mode: WatchMode,
        debounce: Duration,
        poll_interval: Duration,
    ) -> Watcher {
        let (tx, events) = mpsc::unbounded_channel();
        let os_watch = (mode == WatchMode::Events).then(|| watch_dir(path, tx)).transpose();
        let os_watch = os_watch.unwrap_or_else(|error| {
            tracing::warn!(%error, path = %path.display(), "cannot watch the catalog for changes; polling instead");
            mode = WatchMode::Poll;
            None
        });
        let poll = (mode == WatchMode::Poll).then(|| {
            let start = tokio::time::Instant::now() + poll_interval;
            let mut interval = tokio::time::interval_at(start, poll_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        tracing::info!(path = %path.display(), ?mode, "watching the catalog for changes");
        let mut watcher = Watcher {
            file: path.to_path_buf(),
            events,
            os_watch,
            watched: None,
            poll,
            debounce,
            #[cfg(unix)]
            hangups: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        };
        watcher.rewatch();
        watcher
    }

    /// The next change: a burst of events once it has been quiet for the debounce interval (at
    /// most four of them, so a file that keeps changing is still taken), a poll, or SIGHUP.
    pub async fn next(&mut self) -> Change {
        // A source that is off resolves to `None`, which disables its branch.
        let poll = OptionFuture::from(self.poll.as_mut().map(Interval::tick));
        #[cfg(unix)]
        let hangup = OptionFuture::from(self.hangups.as_mut().map(|hangups| hangups.recv()));
        #[cfg(not(unix))]
        let hangup = OptionFuture::<std::future::Ready<()>>::from(None);
        let mut burst = tokio::select! {
            Some(change) = self.events.recv() => change,
            Some(_) = poll => return Change::Written,
            Some(_) = hangup => {
                tracing::info!("received SIGHUP, reloading the catalog");
                return Change::Requested;
            }
            else => std::future::pending().await,
        };
        let give_up = tokio::time::Instant::now() + self.debounce * 4;
        let quiet = || (tokio::time::Instant::now() + self.debounce).min(give_up);
        while let Ok(Some(change)) = tokio::time::timeout_at(quiet(), self.events.recv()).await {
            burst = burst.then(change);
        }
        burst
    }

    /// A rename or a delete and create gave the path a new inode: watch that one.
    pub fn rewatch(&mut self) {
        let Some(os_watch) = &mut self.os_watch else { return };
        let current = std::fs::metadata(&self.file).ok().and_then(|m| file_id(&m));
        if current.is_some() && current == self.watched {
            return;
        }
        if self.watched.take().is_some() {
            let _ = os_watch.unwatch(&self.file);
        }
        if os_watch.watch(&self.file, RecursiveMode::NonRecursive).is_ok() {
            self.watched = current;
        }
    }
}

/// Watches the directory of `file`, sending what its events say of `file` to `tx`.
fn watch_dir(file: &Path, tx: mpsc::UnboundedSender<Change>) -> notify::Result<RecommendedWatcher> {
    let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = file.file_name().map(ToOwned::to_owned);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let change = match &event {
            Ok(event) if event.need_rescan() => Some(Change::Written),
            Ok(event) => {
                let relevant = event.paths.is_empty()
                    || event.paths.iter().any(|path| is_relevant(path, name.as_deref()));
                change_of(&event.kind).filter(|_| relevant)
            }
            // Errors (a queue overflow) may hide a change: look again.
            Err(_) => Some(Change::Written),
        };
        if let Some(change) = change {
            let _ = tx.send(change);
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// What an event says of the file: none for opens and reads (ours would loop); created is written.
fn change_of(kind: &EventKind) -> Option<Change> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Closed),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some(Change::Touched),
        EventKind::Modify(ModifyKind::Name(_)) => Some(Change::Replaced),
        EventKind::Modify(ModifyKind::Metadata(_)) | EventKind::Remove(_) => Some(Change::Touched),
        _ => Some(Change::Written),
    }
}

#[cfg(unix)]
pub fn file_id(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
pub fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The catalog file, or a `..data`-style entry through which Kubernetes swaps a ConfigMap.
fn is_relevant(path: &Path, name: Option<&OsStr>) -> bool {
    let Some(file_name) = path.file_name() else { return true };
    Some(file_name) == name || file_name.to_string_lossy().starts_with("..")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    use super::*;

    fn data() -> EventKind {
        EventKind::Modify(ModifyKind::Data(DataChange::Any))
    }

    fn rename(mode: RenameMode) -> EventKind {
        EventKind::Modify(ModifyKind::Name(mode))
    }

    const CLOSED: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));
    const ATTRIBUTES: EventKind = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
    const REMOVED: EventKind = EventKind::Remove(RemoveKind::File);

    #[test]
    fn each_event_says_what_kind_of_change_it_was() {
        assert_eq!(change_of(&rename(RenameMode::To)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::Both)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::Any)), Some(Change::Replaced));
        assert_eq!(change_of(&rename(RenameMode::From)), Some(Change::Touched));
        assert_eq!(change_of(&CLOSED), Some(Change::Closed));
        assert_eq!(change_of(&data()), Some(Change::Written));
        assert_eq!(change_of(&EventKind::Create(CreateKind::File)), Some(Change::Written));
        assert_eq!(change_of(&ATTRIBUTES), Some(Change::Touched));
        assert_eq!(change_of(&REMOVED), Some(Change::Touched));
        assert_eq!(change_of(&EventKind::Access(AccessKind::Open(AccessMode::Any))), None);
    }

    /// What a debounced burst of these events says.
    fn burst(kinds: &[EventKind]) -> Change {
        let mut changes = kinds.iter().filter_map(change_of);
        let first = changes.next().unwrap();
        changes.fold(first, Change::then)
    }

    #[test]
    fn a_rename_over_the_file_is_complete_though_the_old_file_reports_its_end_after_it() {
        // inotify's events for `catalog.toml` when a temporary file is renamed over it: the
        // rename, then the replaced file's attributes (its link count) and its removal.
        let saved = burst(&[rename(RenameMode::To), rename(RenameMode::Both), ATTRIBUTES, REMOVED]);
        assert_eq!(saved, Change::Replaced);
        assert!(saved.is_complete());
    }

    #[test]
    fn a_write_in_place_settles_even_after_a_rename_and_a_close_ends_it() {
        assert!(!burst(&[rename(RenameMode::To), data()]).is_complete());
        assert!(burst(&[data(), CLOSED]).is_complete());
        assert!(!burst(&[REMOVED]).is_complete());
    }

    #[test]
    fn event_paths_are_relevant_for_the_file_and_configmap_entries_only() {
        let name = Some(OsStr::new("catalog.toml"));
        assert!(is_relevant(Path::new("/c/catalog.toml"), name));
        assert!(is_relevant(Path::new("/c/..data"), name));
        assert!(is_relevant(Path::new("/c/..2026_11_29_10_00_00.123"), name));
        assert!(!is_relevant(Path::new("/c/other.toml"), name));
        assert!(!is_relevant(Path::new("/c/.catalog.toml.swp"), name));
    }

    #[tokio::test]
    async fn reading_the_file_is_no_change_and_writing_it_is() {
        // A reload reads the file; were its own reads a change, every reload would trigger the
        // next one forever.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, "a").unwrap();
        let mut watcher = Watcher::new(
            &path,
            WatchMode::Events,
            Duration::from_millis(20),
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            std::fs::read(&path).unwrap();
        }
        let quiet = tokio::time::timeout(Duration::from_millis(500), watcher.next()).await;
        assert!(quiet.is_err(), "reads were taken for a change: {quiet:?}");
        std::fs::write(&path, "b").unwrap();
        let written = tokio::time::timeout(Duration::from_secs(5), watcher.next()).await;
        assert_eq!(written.unwrap(), Change::Closed);
    }
}
