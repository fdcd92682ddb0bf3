//! `GET /events`: the catalog's changes as Server-Sent Events, for the pages' live script
//! (`static/live.js`). Every stream reads the one [`LiveShelves`] of the process (see
//! [`follow`](crate::follow)), so a thousand open pages cost Recommendations one stream.
//!
//! Each change is one event: `id:` and `data:` carry the new version. A browser that comes back
//! (`Last-Event-ID`, or `?since=` on the first connection) gets an event at once if the version
//! moved meanwhile, and none otherwise. A comment every [`HEARTBEAT`] keeps proxies from closing
//! a quiet stream; `retry:` spreads reconnections after a restart. The number of open streams is
//! bounded (`server.max_event_streams`; beyond it, 503), and every stream ends when the server
//! stops.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use salvo::{
    Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
    sse::{SseEvent, SseKeepAlive},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, shelves::Shelves};

/// The longest quiet time on a stream: proxies commonly close a response idle for 30 to 60 s.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The event's name, which the live script listens to.
pub const EVENT_NAME: &str = "catalog";

/// What every event stream shares.
#[derive(Debug)]
pub struct EventStreams {
    /// The most open at once (`server.max_event_streams`).
    pub limit: usize,
    open: AtomicUsize,
    metrics: Arc<Metrics>,
    /// Cancelled when the server stops: every stream ends.
    pub stop: CancellationToken,
}

impl EventStreams {
    /// No stream open yet.
    pub fn new(limit: usize, metrics: Arc<Metrics>, stop: CancellationToken) -> EventStreams {
        EventStreams {
            limit,
            open: AtomicUsize::new(0),
            metrics,
            stop,
        }
    }

    /// A place for one more stream, unless `limit` are open.
    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok();
        if admitted {
            self.metrics.event_streams.inc();
            Some(Admitted(self.clone()))
        } else {
            self.metrics.event_streams_refused.inc();
            None
        }
    }
}

/// One open stream's place; given back when the stream ends, however it ends.
#[derive(Debug)]
struct Admitted(Arc<EventStreams>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.event_streams.dec();
    }
}

/// `GET /events`
#[derive(Debug, Clone)]
pub struct EventsHandler {
    /// The limit and the stop signal.
    pub streams: Arc<EventStreams>,
    /// The catalog's changes.
    pub shelves: watch::Receiver<Arc<Shelves>>,
}

#[handler]
impl EventsHandler {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let Some(admitted) = self.streams.admit() else {
            // Browsers retry a refused EventSource only after a page reload; the page works
            // without the stream meanwhile.
            res.status_code(StatusCode::SERVICE_UNAVAILABLE);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            res.render("too many open event streams; the page works without live updates\n");
            return;
        };
        let seen = last_seen(req);
        let stream = changes(
            self.shelves.clone(),
            seen,
            self.streams.stop.clone(),
            admitted,
        );
        // Tells proxies such as nginx not to buffer the stream.
        res.headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        SseKeepAlive::new(stream)
            .max_interval(HEARTBEAT)
            .stream(res);
    }
}

/// The version the browser last saw: `Last-Event-ID` when it reconnects, else `?since=`.
fn last_seen(req: &Request) -> String {
    let header = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let since = req.queries().get("since").map(String::as_str);
    header.or(since).unwrap_or_default().to_owned()
}

/// The events of one stream: the first with its `retry:` advice, then one per version that
/// differs from the last one sent (or `seen`), until `stop`.
fn changes(
    mut shelves: watch::Receiver<Arc<Shelves>>,
    seen: String,
    stop: CancellationToken,
    admitted: Admitted,
) -> impl futures_util::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    // The first event advises when to reconnect: 1 to 3 s, randomised, so that the browsers of
    // a restarted Marketplace do not all come back at once.
    let retry = Duration::from_millis(rand::random_range(1_000..3_000));
    let first = SseEvent::default().retry(retry).comment("catalog events");
    let state = (shelves.borrow_and_update().clone(), seen, admitted);
    let rest = futures_util::stream::unfold(
        (state, shelves, stop),
        |((mut current, mut sent, admitted), mut shelves, stop)| async move {
            loop {
                if !current.version.is_empty() && current.version != sent {
                    sent.clone_from(&current.version);
                    let event = SseEvent::default()
                        .name(EVENT_NAME)
                        .id(sent.clone())
                        .text(format!(r#"{{"version":"{sent}"}}"#));
                    return Some((Ok(event), ((current, sent, admitted), shelves, stop)));
                }
                tokio::select! {
                    () = stop.cancelled() => return None,
                    changed = shelves.changed() => {
                        changed.ok()?;
                        current = shelves.borrow_and_update().clone();
                    }
                }
            }
        },
    );
    futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(first) }), rest)
}
