//! `bookshop.catalog.v1.CatalogEvents/Watch`: the version of the catalog in service at once,
//! then each new version as it is put in service, so that clients (the Marketplace, and through
//! it every open page) learn of an edit without asking. A rejected edit changes nothing in the
//! store, so it sends nothing.

use std::pin::Pin;

use bookshop_proto::catalog::{CatalogVersion, WatchRequest, catalog_events_server::CatalogEvents};
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{
    connections::stopped,
    store::{CatalogStore, Version},
};

/// The service: the store's versions, until the server stops.
#[derive(Debug, Clone)]
pub struct CatalogEventsService {
    store: CatalogStore,
    stop: watch::Receiver<bool>,
}

impl CatalogEventsService {
    /// Versions of `store`'s catalog; every stream ends when `stop` turns true, so that a
    /// graceful stop does not wait for watchers.
    pub fn new(store: CatalogStore, stop: watch::Receiver<bool>) -> Self {
        CatalogEventsService { store, stop }
    }
}

/// The version as the API writes it: 16 lower-case hex digits.
pub fn version_text(hash: u64) -> String {
    format!("{hash:016x}")
}

fn message(version: Version) -> CatalogVersion {
    CatalogVersion {
        version: version_text(version.hash),
        books: u32::try_from(version.books).unwrap_or(u32::MAX),
    }
}

type Versions = Pin<Box<dyn Stream<Item = Result<CatalogVersion, Status>> + Send>>;

#[tonic::async_trait]
impl CatalogEvents for CatalogEventsService {
    type WatchStream = Versions;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Versions>, Status> {
        let mut versions = self.store.watch();
        let stop = stopped(self.stop.clone());
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                let current = *versions.borrow_and_update();
                if let Some(version) = current
                    && tx.send(Ok(message(version))).await.is_err()
                {
                    return;
                }
                tokio::select! {
                    () = &mut stop => return,
                    () = tx.closed() => return,
                    changed = versions.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
