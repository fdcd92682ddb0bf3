//! Scenario 9's second half: what open browser tabs cost the Marketplace. Every tab holds a
//! `GET /events` stream open, idle between catalog changes; this loads the home page (scenario
//! 2's `wrk` run) without and with `streams` such streams held open by this process, and reads
//! the Marketplace's RSS before and after they open.
//!
//! Each round runs both loads, the second round in the opposite order, and the best req/s of
//! each is kept (as the load scenarios do: other work on the machine only slows a run down).
//! The streams are checked too: all of them answered 200 `text/event-stream`, the
//! Marketplace's `bookshop_event_streams` gauge counts them, and none ends during the load.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    event_stream::{self, EventStream, Item},
    load::{Load, Target},
    run::{Process, RunDir},
    usage,
};

/// The gauge the Marketplace counts its open streams with.
const GAUGE: &str = "bookshop_event_streams";
/// Streams opened at once (then the next batch), so the opening is no burst of connections.
const BATCH: usize = 100;
/// How long one stream may take to open, and the gauge to agree.
const TIMEOUT: Duration = Duration::from_secs(10);
/// From the last stream open to the RSS reading.
const SETTLE: Duration = Duration::from_secs(1);

/// The scenario's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Marketplace's `host:port`.
    pub addr: String,
    /// How many idle streams.
    pub streams: usize,
    /// Rounds of the two loads.
    pub rounds: u32,
    /// The home page load (its target is set here).
    pub connections: u32,
    /// The measured run, in seconds.
    pub seconds: u64,
    /// The warm-up run before it, in seconds.
    pub warm_up: u64,
    /// The Marketplace, for its RSS.
    pub marketplace: Process,
    /// The Recommendations it calls, for the load rows' usage.
    pub recommendations: Process,
}

/// What the scenario measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Streams held open.
    pub streams: usize,
    /// Best home pages per second without the streams.
    pub rps_without: f64,
    /// Best with them.
    pub rps_with: f64,
    /// The Marketplace's RSS just before the streams opened, kB.
    pub rss_without_kb: u64,
    /// Its RSS once they were open, kB.
    pub rss_with_kb: u64,
}

impl Measured {
    /// Req/s with the streams in % of req/s without.
    pub fn ratio_percent(&self) -> f64 {
        if self.rps_without > 0.0 {
            self.rps_with / self.rps_without * 100.0
        } else {
            0.0
        }
    }

    /// RSS per open stream, kB (negative when the allocator gave back more than they took).
    pub fn kb_per_stream(&self) -> f64 {
        (self.rss_with_kb as f64 - self.rss_without_kb as f64) / self.streams.max(1) as f64
    }

    /// The `streams` row of `results.tsv`: streams, req/s without, req/s with, ratio %, RSS
    /// without MB, RSS with MB, kB per stream.
    pub fn row(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        format!(
            "streams\t{}\t{:.0}\t{:.0}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
            self.streams,
            self.rps_without,
            self.rps_with,
            self.ratio_percent(),
            mb(self.rss_without_kb),
            mb(self.rss_with_kb),
            self.kb_per_stream()
        )
    }
}

/// Runs the rounds; appends a `load` row (scenario `page-streams`) for every load run, and
/// returns what goes in the `streams` row.
pub async fn run(dir: &RunDir, options: &Options) -> anyhow::Result<Measured> {
    let processes = [options.marketplace.clone(), options.recommendations.clone()];
    let load = Load {
        target: Target::Http {
            url: format!("http://{}/", options.addr),
        },
        connections: options.connections,
        seconds: options.seconds,
        warm_up: options.warm_up,
    };
    let work = dir.work()?;
    let with_system = format!("ours-{}-streams", options.streams);
    let with_note = format!("{} idle /events streams open", options.streams);
    let (mut rps_without, mut rps_with) = (0.0_f64, 0.0_f64);
    let mut rss = None;
    let mut open: Option<OpenStreams> = None;
    for round in 1..=options.rounds {
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for with_streams in order {
            if with_streams {
                if open.is_none() {
                    let before = rss_kb(&options.marketplace)?;
                    let streams = OpenStreams::open(&options.addr, options.streams).await?;
                    until_counted(&options.addr, options.streams).await?;
                    tokio::time::sleep(SETTLE).await;
                    rss.get_or_insert((before, rss_kb(&options.marketplace)?));
                    open = Some(streams);
                }
            } else if let Some(streams) = open.take() {
                streams.close();
                until_counted(&options.addr, 0).await?;
            }
            let (system, note) = if with_streams {
                (with_system.as_str(), with_note.as_str())
            } else {
                ("ours", "no /events streams")
            };
            let label = format!("page-streams-{system}-{round}");
            let measured = tokio::task::block_in_place(|| load.run(&work, &label, &processes))
                .with_context(|| format!("the home page load ({note}) failed"))?;
            dir.append(&measured.row("page-streams", system, note))?;
            if with_streams {
                rps_with = rps_with.max(measured.counted.rps);
                if let Some(streams) = &open {
                    streams.check_all_open()?;
                }
            } else {
                rps_without = rps_without.max(measured.counted.rps);
            }
        }
    }
    if let Some(streams) = open.take() {
        streams.close();
    }
    let (rss_without_kb, rss_with_kb) = rss.context("no round ran with the streams open")?;
    Ok(Measured {
        streams: options.streams,
        rps_without,
        rps_with,
        rss_without_kb,
        rss_with_kb,
    })
}

fn rss_kb(process: &Process) -> anyhow::Result<u64> {
    usage::status_kb(process.pid, "VmRSS").with_context(|| format!("{} has exited", process.name))
}

/// Waits until the Marketplace's gauge counts `streams` open streams.
async fn until_counted(addr: &str, streams: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (status, metrics) = event_stream::get_text(addr, "/metrics", TIMEOUT).await?;
        if status != 200 {
            bail!("GET /metrics on {addr} answered {status}");
        }
        let counted = event_stream::gauge(&metrics, GAUGE)
            .with_context(|| format!("no {GAUGE} on /metrics"))?;
        if counted == streams as f64 {
            return Ok(());
        }
        if started.elapsed() > TIMEOUT {
            bail!(
                "{GAUGE} on {addr} says {counted} after {TIMEOUT:?}, with {streams} streams open"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the open streams have seen.
#[derive(Debug, Default)]
struct Tally {
    events: AtomicU64,
    comments: AtomicU64,
    ended: AtomicU64,
    /// Why the first stream that ended did.
    first_end: Mutex<Option<String>>,
}

/// Streams held open, each read by a task of its own.
#[derive(Debug)]
struct OpenStreams {
    tasks: Vec<JoinHandle<()>>,
    tally: Arc<Tally>,
}

impl OpenStreams {
    /// Opens `count` streams to `addr`, `BATCH` at a time; fails with the first that does not
    /// open (a 503 beyond `server.max_event_streams`, too few open files, …).
    async fn open(addr: &str, count: usize) -> anyhow::Result<OpenStreams> {
        let started = Instant::now();
        let tally = Arc::new(Tally::default());
        let mut streams = OpenStreams {
            tasks: Vec::with_capacity(count),
            tally: tally.clone(),
        };
        while streams.tasks.len() < count {
            let batch = BATCH.min(count - streams.tasks.len());
            let mut opened = Vec::with_capacity(batch);
            for _ in 0..batch {
                let (done, open) = oneshot::channel();
                streams
                    .tasks
                    .push(tokio::spawn(hold(addr.to_owned(), done, tally.clone())));
                opened.push(open);
            }
            let first = streams.tasks.len() - batch + 1;
            for (number, open) in (first..).zip(opened) {
                match open.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        streams.close();
                        return Err(error.context(format!(
                            "event stream {number} of {count} did not open (ulimit -n is enough?)"
                        )));
                    }
                    Err(_) => bail!("an event stream's task ended before it opened"),
                }
            }
        }
        eprintln!(
            "{count} event streams open on {addr} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(streams)
    }

    /// Fails if a stream has ended since it opened.
    fn check_all_open(&self) -> anyhow::Result<()> {
        let ended = self.tally.ended.load(Ordering::Relaxed);
        if ended > 0 {
            let why = self
                .tally
                .first_end
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            bail!(
                "{ended} of {} event streams ended while they should stay open (the first: {why})",
                self.tasks.len()
            );
        }
        eprintln!(
            "all {} event streams still open ({} events, {} comments read in all)",
            self.tasks.len(),
            self.tally.events.load(Ordering::Relaxed),
            self.tally.comments.load(Ordering::Relaxed)
        );
        Ok(())
    }

    /// Closes every stream (its connection with it).
    fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One stream: opens it, says whether it opened, then reads it until it ends.
async fn hold(addr: String, opened: oneshot::Sender<anyhow::Result<()>>, tally: Arc<Tally>) {
    let mut stream = match EventStream::open(&addr, "/events", TIMEOUT).await {
        Ok(stream) => {
            let _ = opened.send(Ok(()));
            stream
        }
        Err(error) => {
            let _ = opened.send(Err(error));
            return;
        }
    };
    let why = loop {
        match stream.next().await {
            Ok(Some(items)) => {
                for item in items {
                    let counter = match item {
                        Item::Event { .. } => &tally.events,
                        Item::Comment(_) => &tally.comments,
                        Item::Retry(_) => continue,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => break "the Marketplace ended it".to_owned(),
            Err(error) => break format!("{error:#}"),
        }
    };
    tally.ended.fetch_add(1, Ordering::Relaxed);
    tally
        .first_end
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(why);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_gives_the_ratio_and_the_memory_per_stream() {
        let measured = Measured {
            streams: 1000,
            rps_without: 20000.0,
            rps_with: 19500.0,
            rss_without_kb: 10 * 1024,
            rss_with_kb: 10 * 1024 + 30_000,
        };
        assert_eq!(
            measured.row(),
            "streams\t1000\t20000\t19500\t97.5\t10.0\t39.3\t30.0"
        );
    }
}
