//! `GET /events`: the catalog's changes as Server-Sent Events, for the pages' live script. Every
//! stream waits on the one [`LiveCategories`] of the process, so a thousand open pages cost
//! Recommendations one stream (docs/architecture.md, "The live catalog").

use std::{convert::Infallible, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt, stream};
use salvo::http::{HeaderValue, StatusCode, header};
use salvo::sse::{SseEvent, SseKeepAlive};
use salvo::{Depot, Request, Response, handler};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{categories::LiveCategories, web::error::AppResult, web::state};

/// A comment at least this often keeps proxies from closing a quiet stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The open streams, each holding a permit, their limit and heartbeat.
#[derive(Debug)]
pub struct EventStreams {
    limit: usize,
    permits: Arc<Semaphore>,
    heartbeat: Duration,
}

impl EventStreams {
    /// The heartbeat also comes well within `idle_timeout`, after which the server closes a
    /// quiet connection.
    pub fn new(limit: usize, idle_timeout: Duration) -> EventStreams {
        let heartbeat = HEARTBEAT.min(idle_timeout / 2);
        EventStreams { limit, permits: Arc::new(Semaphore::new(limit)), heartbeat }
    }

    pub fn open(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

#[handler]
pub async fn events(req: &Request, depot: &Depot, res: &mut Response) -> AppResult {
    let state = state(depot)?;
    let Ok(open) = state.event_streams.permits.clone().try_acquire_owned() else {
        state.metrics.event_streams_refused.inc();
        // A browser retries a refused EventSource only after a reload; the page works without.
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        res.render("too many open event streams; the page works without live updates\n");
        return Ok(());
    };
    let header = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    let seen = header.or(req.queries().get("since").map(String::as_str)).unwrap_or_default();
    let changes = changes(state.categories.clone(), seen.to_owned(), open, state.stopping.clone());
    // Tells proxies such as nginx not to buffer the stream.
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    SseKeepAlive::new(changes).max_interval(state.event_streams.heartbeat).stream(res);
    Ok(())
}

/// A retry delay of 1 to 3 s per stream (browsers come back spread out), then each new version,
/// and each rejected save (an empty message once one is served again).
fn changes(
    live: LiveCategories,
    seen: String,
    open: OwnedSemaphorePermit,
    stopping: CancellationToken,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let retry = Duration::from_millis(rand::random_range(1_000..3_000));
    let first = SseEvent::default().retry(retry).comment("catalog events");
    // The permit goes along: the stream counts as open until it is dropped.
    let start = (live.subscribe(), seen, String::new(), open);
    let versions = stream::unfold(start, |(mut categories, seen, told, open)| async move {
        loop {
            let now = categories.borrow_and_update().clone();
            if !now.version.is_empty() && now.version != seen {
                let data = json!({ "version": now.version, "changes": now.changes }).to_string();
                let event = SseEvent::default().name("catalog").id(now.version.clone()).text(data);
                return Some((Ok(event), (categories, now.version.clone(), told, open)));
            }
            if now.rejected != told {
                let data = json!({ "message": now.rejected }).to_string();
                let event = SseEvent::default().name("rejected").text(data);
                return Some((Ok(event), (categories, seen, now.rejected.clone(), open)));
            }
            categories.changed().await.ok()?;
        }
    });
    stream::once(async { Ok(first) }).chain(versions).take_until(stopping.cancelled_owned())
}
