//! `bookshop.catalog.v1.CatalogEvents/Watch`: the version of the catalog in service, then each
//! new one, so that the Marketplace, and through it every open page, learns of an edit at once.

use bookshop_proto::catalog::{CatalogVersion, WatchRequest, catalog_events_server::CatalogEvents};
use futures_util::{StreamExt, stream::BoxStream};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::catalog::Store;

#[derive(Debug, Clone)]
pub struct CatalogEventsService {
    pub store: Store,
    /// Every stream ends when the server stops, so that a graceful stop does not wait for them.
    pub stopping: CancellationToken,
}

#[tonic::async_trait]
impl CatalogEvents for CatalogEventsService {
    type WatchStream = BoxStream<'static, Result<CatalogVersion, Status>>;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let versions = WatchStream::new(self.store.subscribe()).filter_map(|catalog| async move {
            let catalog = catalog?;
            let books = u32::try_from(catalog.len()).unwrap_or(u32::MAX);
            Some(Ok(CatalogVersion { version: catalog.version(), books }))
        });
        Ok(Response::new(versions.take_until(self.stopping.clone().cancelled_owned()).boxed()))
    }
}
