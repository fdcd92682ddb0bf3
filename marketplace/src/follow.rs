//! Following the catalog in service: one version stream (`CatalogEvents/Watch`) per process,
//! whatever the number of open pages. Each new version brings the categories of that version
//! (`Catalog/ListCategories`, asked of the same replica) into [`LiveShelves`], which the pages
//! read and the event streams (see [`events`](crate::events)) pass on to browsers.
//!
//! With several replicas the stream goes to one of them; when it ends (the replica stops or
//! goes away) another is tried, with a randomised backoff. Versions are compared by content
//! hash, so a stream re-opened on another replica serving the same file changes nothing.
//! Against a server that only speaks the seed's API (`UNIMPLEMENTED`) the shelves are the
//! seed's three, and the catalog API is tried again now and then.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::{
    client::{GatewayError, RecommendationsGateway},
    metrics::Metrics,
    shelves::{LiveShelves, Shelves, Source},
};

/// The first wait before opening the stream again after it failed or ended.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a server found to speak only the seed's API is asked again (it may have been
/// replaced by ours).
const SEED_RECHECK: Duration = Duration::from_secs(30);

/// Keeps `shelves` following the catalog until `stop` is cancelled. `home` is
/// `homepage.category`: a catalog without it is logged, as the home page then falls back.
pub async fn follow(
    gateway: RecommendationsGateway,
    shelves: LiveShelves,
    metrics: Arc<Metrics>,
    home: Arc<str>,
    stop: CancellationToken,
) {
    let following = Following {
        gateway,
        shelves,
        metrics,
        home,
    };
    stop.run_until_cancelled(following.run()).await;
}

struct Following {
    gateway: RecommendationsGateway,
    shelves: LiveShelves,
    metrics: Arc<Metrics>,
    home: Arc<str>,
}

impl Following {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wait = match self.stream().await {
                // The stream was up and ended: the replica went away. Try again soon.
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    FIRST_BACKOFF
                }
                Err(GatewayError::Failed(status)) if status.code() == Code::Unimplemented => {
                    self.put(Shelves::seed(Source::Seed));
                    tracing::info!(
                        recheck_s = SEED_RECHECK.as_secs(),
                        "Recommendations speaks only the seed's API: showing the seed's three \
                         categories"
                    );
                    SEED_RECHECK
                }
                Err(error) => {
                    tracing::debug!(%error, backoff_ms = backoff.as_millis(), "cannot follow the catalog");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            // Randomised, so that many Marketplaces do not come back at one replica at once.
            let jitter = rand::random_range(0.5..1.0);
            tokio::time::sleep(wait.mul_f64(jitter)).await;
        }
    }

    /// Opens the version stream and follows it until it ends (`Ok`) or fails.
    async fn stream(&self) -> Result<(), GatewayError> {
        let (channel, mut versions) = self.gateway.watch_catalog().await?;
        self.metrics.catalog_following.set(1);
        let followed = async {
            while let Some(version) = versions.message().await.map_err(GatewayError::Failed)? {
                if version.version != self.shelves.current().version {
                    let listed = self.gateway.list_categories(channel.clone()).await?;
                    self.put(Shelves::from_catalog(listed));
                }
            }
            Ok(())
        }
        .await;
        self.metrics.catalog_following.set(0);
        followed
    }

    /// Puts `shelves` in service, counting and logging a change.
    fn put(&self, shelves: Shelves) {
        let missing_home = shelves.get(&self.home).is_none();
        let (version, count) = (shelves.version.clone(), shelves.list.len());
        if !self.shelves.replace(shelves) {
            return;
        }
        self.metrics.catalog_changes.inc();
        tracing::info!(version, categories = count, "catalog changed");
        if missing_home {
            tracing::warn!(
                category = &*self.home,
                shown = self.shelves.current().list.first().map(|s| &*s.key),
                "homepage.category is not in the catalog: the home page shows its first category"
            );
        }
    }
}
