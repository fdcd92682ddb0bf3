//! The catalog in service: one `Arc<Catalog>` swapped atomically on reload.
//!
//! A request loads the current `Arc` once and works on that snapshot, so it sees one whole
//! catalog, old or new, never a mix, and a reload never blocks or fails a request.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::catalog::Catalog;

/// Shared handle to the catalog in service (`None` until the first successful load).
#[derive(Debug, Clone, Default)]
pub struct CatalogStore {
    current: Arc<ArcSwapOption<Catalog>>,
}

impl CatalogStore {
    /// A snapshot of the catalog in service, if one has been loaded.
    pub fn current(&self) -> Option<Arc<Catalog>> {
        self.current.load_full()
    }

    /// Puts a new catalog in service; requests already running keep their snapshot.
    pub fn replace(&self, catalog: Arc<Catalog>) {
        self.current.store(Some(catalog));
    }
}
