//! `bookshop.catalog.v1.CatalogEvents/Watch`: the version of the catalog in service, then each
//! new one, and why the newest save was rejected, so that the Marketplace, and through it every
//! open page, learns of an edit at once.

use bookshop_proto::catalog::{CatalogVersion, WatchRequest, catalog_events_server::CatalogEvents};
use futures_util::stream::BoxStream;
use tokio_stream::{StreamExt, wrappers::WatchStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::catalog::Store;
use crate::reload::{Reported, Reports};

#[derive(Debug, Clone)]
pub struct CatalogEventsService {
    pub store: Store,
    pub reports: Reports,
    /// Every stream ends when the server stops, so that a graceful stop does not wait for them.
    pub stopping: CancellationToken,
}

#[tonic::async_trait]
impl CatalogEvents for CatalogEventsService {
    type WatchStream = BoxStream<'static, Result<CatalogVersion, Status>>;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let (store, reports) = (self.store.clone(), self.reports.clone());
        let changes = WatchStream::new(store.subscribe()).map(drop);
        let changes = changes.merge(WatchStream::new(reports.subscribe()).map(drop));
        // Each change of either, as the state it leaves; both streams start with the same one.
        let mut last = None;
        let versions = changes.filter_map(move |()| {
            let catalog = store.borrow().clone()?;
            let books = u32::try_from(catalog.len()).unwrap_or(u32::MAX);
            let Reported { hash, changes, rejected } = reports.borrow().clone();
            if hash != catalog.content_hash() {
                return None;
            }
            let now = CatalogVersion { version: catalog.version(), books, rejected, changes };
            (last.as_ref() != Some(&now)).then(|| Ok(last.insert(now).clone()))
        });
        let stopped = self.stopping.clone().cancelled_owned();
        Ok(Response::new(Box::pin(futures_util::StreamExt::take_until(versions, stopped))))
    }
}
