//! The catalog in service: one `Arc<Catalog>` swapped atomically on reload, and its version for
//! whoever watches it.
//!
//! A request loads the current `Arc` once and works on that snapshot, so it sees one whole
//! catalog, old or new, never a mix, and a reload never blocks or fails a request.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::catalog::Catalog;

/// Which catalog is in service: its content hash and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The content hash.
    pub hash: u64,
    /// The number of books.
    pub books: usize,
}

/// Shared handle to the catalog in service (`None` until the first successful load).
#[derive(Debug, Clone)]
pub struct CatalogStore {
    current: Arc<ArcSwapOption<Catalog>>,
    versions: Arc<watch::Sender<Option<Version>>>,
}

impl Default for CatalogStore {
    fn default() -> Self {
        CatalogStore {
            current: Arc::default(),
            versions: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl CatalogStore {
    /// A snapshot of the catalog in service, if one has been loaded.
    pub fn current(&self) -> Option<Arc<Catalog>> {
        self.current.load_full()
    }

    /// Puts a new catalog in service; requests already running keep their snapshot, and
    /// watchers are told its version.
    pub fn replace(&self, catalog: Arc<Catalog>) {
        let version = Version {
            hash: catalog.content_hash(),
            books: catalog.len(),
        };
        self.current.store(Some(catalog));
        self.versions.send_replace(Some(version));
    }

    /// The version in service now and at every change from here on.
    pub fn watch(&self) -> watch::Receiver<Option<Version>> {
        self.versions.subscribe()
    }
}
