//! Following the catalog: one `CatalogEvents/Watch` stream per process, however many pages are
//! open, brings each version's categories (listed by the same replica) and rejected saves.

use std::{sync::Arc, time::Duration};

use bookshop_common::millis;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::categories::{self, Api, Categories, LiveCategories};
use crate::settings::HomepageSettings;
use crate::{metrics::Metrics, recommendations::CallError, recommendations::Client};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a tutorial's server is asked again: it may have been replaced by ours.
const TUTORIAL_RECHECK: Duration = Duration::from_secs(30);

/// Keeps `live` following the catalog until `stop`; logs one without `homepage.category`.
pub async fn follow(
    client: Client,
    live: LiveCategories,
    metrics: Arc<Metrics>,
    home: HomepageSettings,
    stop: CancellationToken,
) {
    let (show_errors, home) = (home.show_catalog_errors, home.category);
    let put = |new: Categories| {
        let (version, count) = (new.version.clone(), new.list.len());
        let shown = new.get(&home).is_none().then(|| new.list.first().map(|c| c.key.clone()));
        let changed = categories::replace(&live, new);
        if changed {
            metrics.catalog_changes.inc();
            tracing::info!(version, categories = count, "catalog changed");
        }
        if let Some(shown) = shown.filter(|_| changed) {
            let message = "homepage.category is not in the catalog: \
                           the home page shows its first category";
            tracing::warn!(category = home.as_str(), shown = shown.as_deref(), "{message}");
        }
        changed
    };
    let stream = async || -> Result<(), CallError> {
        let (channel, mut versions) = client.watch_catalog().await?;
        metrics.catalog_following.set(1);
        while let Some(version) = versions.message().await.map_err(CallError::Failed)? {
            if version.version != live.borrow().version {
                let listed = client.list_categories(channel.clone()).await?;
                put(Categories { changes: version.changes, ..Categories::from_catalog(listed) });
            }
            let rejected = if show_errors { version.rejected } else { String::new() };
            live.send_modify(|current| Arc::make_mut(current).rejected = rejected);
        }
        Ok(())
    };
    let following = async {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let followed = stream().await;
            metrics.catalog_following.set(0);
            let wait = match followed {
                // The stream was up and ended: its replica went away.
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    FIRST_BACKOFF
                }
                Err(CallError::Failed(status)) if status.code() == Code::Unimplemented => {
                    if put(Categories::tutorial(Api::Tutorial)) {
                        let message = "Recommendations speaks only the tutorial's API: \
                                       showing its three categories";
                        tracing::info!(recheck_s = TUTORIAL_RECHECK.as_secs(), "{message}");
                    }
                    TUTORIAL_RECHECK
                }
                Err(error) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::debug!(%error, backoff_ms = millis(wait), "cannot follow the catalog");
                    wait
                }
            };
            // Randomised, so that many Marketplaces do not come back at one replica at once.
            tokio::time::sleep(wait.mul_f64(rand::random_range(0.5..1.0))).await;
        }
    };
    stop.run_until_cancelled(following).await;
}
