//! `GET /events`: the catalog's changes as Server-Sent Events, for the pages' live script
//! (`static/live.js`). Every stream waits on the one [`LiveCategories`] of the process, so a
//! thousand open pages cost Recommendations one stream.
//!
//! Each change is one event whose `id:` and `data:` carry the new version. A browser that comes
//! back (`Last-Event-ID`, or `?since=` on its first connection) gets an event at once if the
//! version moved meanwhile, and none otherwise. A comment every [`HEARTBEAT`] keeps proxies from
//! closing a quiet stream; `retry:` spreads reconnections after a restart. Open streams are
//! bounded (`server.max_event_streams`; beyond it, 503), and all end when the server stops.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt, stream};
use salvo::{
    Depot, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
    sse::{SseEvent, SseKeepAlive},
};

use crate::{
    categories::LiveCategories,
    web::{AppState, error::AppError, state},
};

pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The open streams and their limit.
#[derive(Debug)]
pub struct EventStreams {
    limit: usize,
    open: AtomicUsize,
}

impl EventStreams {
    pub fn new(limit: usize) -> EventStreams {
        EventStreams { limit, open: AtomicUsize::new(0) }
    }
}

/// One open stream; dropping it closes it.
#[derive(Debug)]
struct Open(Arc<AppState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.event_streams.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.event_streams.dec();
    }
}

fn admit(state: &Arc<AppState>) -> Option<Open> {
    let (streams, metrics) = (&state.event_streams, &state.metrics);
    let below = |open: usize| (open < streams.limit).then_some(open + 1);
    match streams.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, below) {
        Ok(_) => {
            metrics.event_streams.inc();
            Some(Open(state.clone()))
        }
        Err(_) => {
            metrics.event_streams_refused.inc();
            None
        }
    }
}

#[handler]
pub async fn events(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), AppError> {
    let state = state(depot)?;
    let Some(open) = admit(state) else {
        // A browser retries a refused EventSource only after a reload; the page works without.
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        res.render("too many open event streams; the page works without live updates\n");
        return Ok(());
    };
    let header = req.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    let seen = header.or(req.queries().get("since").map(String::as_str)).unwrap_or_default();
    let changes = changes(state.categories.clone(), seen.to_owned(), open);
    // Tells proxies such as nginx not to buffer the stream.
    res.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    SseKeepAlive::new(changes).max_interval(HEARTBEAT).stream(res);
    Ok(())
}

/// The first message advises a reconnection delay of 1 to 3 s, drawn per stream, so that the
/// browsers of a stopped Marketplace do not all come back at once; then an event for each
/// version not `seen` yet, until the server stops.
fn changes(
    live: LiveCategories,
    seen: String,
    open: Open,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let retry = Duration::from_millis(rand::random_range(1_000..3_000));
    let first = SseEvent::default().retry(retry).comment("catalog events");
    let stopping = open.0.stopping.clone();
    let versions = stream::unfold(
        (live.subscribe(), seen, open),
        |(mut categories, mut seen, open)| async move {
            loop {
                let version = categories.borrow_and_update().version.clone();
                if !version.is_empty() && version != seen {
                    let event = SseEvent::default()
                        .name("catalog")
                        .id(version.clone())
                        .text(format!(r#"{{"version":"{version}"}}"#));
                    seen = version;
                    return Some((Ok(event), (categories, seen, open)));
                }
                categories.changed().await.ok()?;
            }
        },
    );
    stream::once(async { Ok(first) }).chain(versions).take_until(stopping.cancelled_owned())
}
