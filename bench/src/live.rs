// chromiumoxide, not fantoccini: page events over CDP from Debian's chromium, no chromedriver.

//! Scenario 9, the live catalog: from saving `catalog.toml` to the new title on the screen of
//! an open page, and what the open pages' idle `/events` streams cost the Marketplace.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use chromiumoxide::{
    Browser, BrowserConfig, Page,
    cdp::{
        browser_protocol::log::{EventEntryAdded, LogEntryLevel},
        js_protocol::runtime::{
            AddBindingParams, ConsoleApiCalledType, EventBindingCalled, EventConsoleApiCalled,
            EventExceptionThrown,
        },
    },
};
use futures_util::{FutureExt as _, Stream, StreamExt as _, future, stream::select_all};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::{
    HTTP, catalog,
    load::{self, Server},
};

/// Reports each new book title, and when the DOM changed, through the binding `benchTitleSeen`.
const OBSERVER: &str = r#"(() => {
  const seen = new Set();
  new MutationObserver(() => {
    const at = Date.now();
    for (const { textContent: title } of document.querySelectorAll("ul.books .book-title")) {
      if (!seen.has(title)) {
        seen.add(title);
        window.benchTitleSeen(JSON.stringify({ title, at }));
      }
    }
  }).observe(document, { childList: true, subtree: true, characterData: true });
})();"#;

/// Whether the page is the shelf of a shelf catalog (any run's), with the live script.
const CHECK: &str = r#"document.querySelector("h1")?.textContent.includes("Poetry")
  && [...document.querySelectorAll("ul.books .book-title")].some(t => t.textContent.startsWith("Live edit "))
  && document.querySelector('script[src^="/static/live.js"]') !== null"#;

/// 9 generated books and a shelf `poetry` of three, the first titled anew for each edit.
pub fn catalog(run: u32, version: u64) -> String {
    let mut text = catalog::text(9, 0);
    let first = format!("Live edit {version} of run {run}");
    catalog::book(&mut text, "poetry", 10, &first);
    catalog::book(&mut text, "poetry", 11, "Shelf book 11");
    catalog::book(&mut text, "poetry", 12, "Shelf book 12");
    text
}

/// `bench-tool live-latency`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Marketplace (http://host:port)
    url: String,
    /// The catalog Recommendations watches (gen-catalog --shelf)
    catalog: PathBuf,
    edits: u64,
}

/// Opens the shelf in headless Chromium, then times edits (in place and by rename, 100 ms
/// apart) from the clock just before the write to the clock the page read as the title appeared.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let profile = tempfile::tempdir()?;
    let debian = BrowserConfig::builder().chrome_executable("/usr/bin/chromium");
    // The page is our own, on loopback; and the sandbox cannot run as root (CI, containers).
    let config = debian.new_headless_mode().no_sandbox();
    let config = config.user_data_dir(profile.path()).build();
    let launched = Browser::launch(config.map_err(anyhow::Error::msg)?).await;
    let (mut browser, mut handler) = launched.context("cannot start Debian's chromium")?;
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let measured = measure(&browser, &args).await;
    let _ = browser.close().await;
    let _ = browser.wait().await;
    driver.abort();
    let (latencies, not_seen) = measured?;
    let ([p50, p99, max], edits) = (crate::p50_p99_max(&latencies), args.edits);
    let measured = format!("{edits}\t{p50:.0}\t{p99:.0}\t{max:.0}\t{not_seen}");
    crate::record(&format!("live\tpoetry\t{measured}\tp99 < 500 ms"))?;
    let text = format!("9. Saved catalog on screen: p99 < 500 ms, every edit seen: {p99:.0} ms");
    crate::target(&text, p99 < 500.0 && not_seen == 0)?;
    if not_seen > 0 {
        bail!("an edit of the catalog did not reach the page within 5 s");
    }
    Ok(())
}

/// The edits seen and not (the run stops at the first); fails on any problem of the page.
async fn measure(browser: &Browser, args: &Args) -> anyhow::Result<(Vec<Duration>, u64)> {
    let page = browser.new_page("about:blank").await?;
    let mut problems = problems(&page).await?;
    let mut seen = page.event_listener::<EventBindingCalled>().await?;
    let binding = AddBindingParams::new("benchTitleSeen");
    page.execute(binding).await?;
    page.evaluate_on_new_document(OBSERVER).await?;
    let url = format!("{}/?category=poetry", args.url);
    let checked = page.goto(&url).await?.evaluate(CHECK).await?.into_value();
    if checked.ok() != Some(true) {
        bail!("{url} is not the shelf Poetry of gen-catalog --shelf's catalog, with live.js");
    }
    let (run, mut latencies) = (std::process::id(), Vec::new());
    for version in 1..=args.edits {
        let expected = Value::from(format!("Live edit {version} of run {run}"));
        let (text, renamed) = (catalog(run, version), catalog::renamed(version));
        let written_at = epoch_ms();
        catalog::write(&args.catalog, &text, renamed)?;
        let reported = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = seen.next().await {
                let report: Value = serde_json::from_str(&event.payload)?;
                if report["title"] == expected {
                    return report["at"].as_f64().context("a report without a time");
                }
            }
            bail!("the page's events stopped")
        });
        let Ok(at) = reported.await else {
            eprintln!("live: edit {version} ({expected}) was not on the page within 5 s");
            return Ok((latencies, 1));
        };
        let latency = (at? - written_at).max(0.0) / 1000.0;
        latencies.push(Duration::from_secs_f64(latency));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut found = Vec::new();
    while let Some(Some(problem)) = problems.next().now_or_never() {
        found.push(problem);
    }
    if !found.is_empty() {
        bail!("the page {url} had problems:\n{}", found.join("\n"));
    }
    Ok((latencies, 0))
}

/// The page's problems as they come: `console.error` and failed `console.assert` calls,
/// uncaught exceptions, and what the browser logged as errors (a CSP violation, a failed load).
async fn problems(page: &Page) -> anyhow::Result<impl Stream<Item = String> + Unpin> {
    use ConsoleApiCalledType::{Assert, Error};
    let console = page.event_listener::<EventConsoleApiCalled>().await?;
    let console = console.filter(|event| future::ready(matches!(event.r#type, Error | Assert)));
    let thrown = page.event_listener::<EventExceptionThrown>().await?;
    let logged = page.event_listener::<EventEntryAdded>().await?;
    let logged = logged.filter(|event| future::ready(event.entry.level == LogEntryLevel::Error));
    let console = console.map(|event| format!("console: {:?}", event.args));
    let thrown = thrown.map(|event| format!("uncaught: {:?}", event.exception_details));
    let logged = logged.map(|event| format!("logged: {:?}", event.entry));
    Ok(select_all([console.boxed(), thrown.boxed(), logged.boxed()]))
}

/// Now, in ms since the epoch: the clock the page's `Date.now()` reads.
fn epoch_ms() -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.unwrap_or_default().as_secs_f64() * 1000.0
}

/// `bench-tool idle-streams`.
#[derive(Debug, clap::Args)]
pub struct Streams {
    /// The Marketplace (host:port)
    addr: String,
    /// The Marketplace and the Recommendations it calls (NAME=PID), for their usage
    marketplace: Server,
    recommendations: Server,
    streams: usize,
    rounds: u32,
}

/// The home page's load without and with the streams open (the best of the rounds, the second
/// in reverse), and the Marketplace's RSS before and after; every stream must stay open.
pub async fn streams(args: Streams) -> anyhow::Result<()> {
    let (n, url) = (args.streams, format!("http://{}/", args.addr));
    let servers = [args.marketplace.clone(), args.recommendations.clone()];
    let (ended, mut open, mut rss) = (Arc::default(), Vec::new(), None);
    let mut best = [0f64; 2];
    for round in 1..=args.rounds {
        for with in [round % 2 == 0, round % 2 == 1] {
            if with && open.is_empty() {
                let before = args.marketplace.mb("VmRSS")?;
                open = open_streams(&args.addr, n, &ended).await?;
                until_counted(&args.addr, n).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                rss.get_or_insert((before, args.marketplace.mb("VmRSS")?));
            } else if !with && !open.is_empty() {
                open.drain(..).for_each(|task: Reader| task.abort());
                until_counted(&args.addr, 0).await?;
            }
            let (system, note) = match with {
                true => (format!("ours-{n}-streams"), format!("{n} streams open")),
                false => ("ours".to_owned(), "no /events streams".to_owned()),
            };
            let label = format!("page-streams-{system}-{round}");
            let measured = load::run(&url, 16, 0, &servers, &label).await?;
            crate::record(&measured.row("page-streams", &system, &note))?;
            best[usize::from(with)] = best[usize::from(with)].max(measured.rps());
            let ended = ended.load(Relaxed);
            if ended > 0 {
                bail!("{ended} of {n} event streams ended during the load");
            }
        }
    }
    open.iter().for_each(Reader::abort);
    let ((before, after), [without, with]) = (rss.context("no round with the streams")?, best);
    let (percent, kb_each) = (with / without * 100.0, (after - before) * 1024.0 / n as f64);
    let measured = format!("{percent:.1}%\t{before:.1}\t{after:.1}\t{kb_each:.1}");
    let row = format!("streams\t{n}\t{without:.0}\t{with:.0}\t{measured}");
    crate::record(&row)?;
    let text = format!("9. Home page req/s with {n} idle streams ≥ 95% of without: {percent:.1}%");
    crate::target(&text, percent >= 95.0)
}

/// The number of streams that ended, and the task reading one.
type Ended = Arc<AtomicUsize>;
type Reader = JoinHandle<()>;

/// Opens `n` streams, 100 at a time, each read by a task of its own until it ends.
async fn open_streams(addr: &str, n: usize, ended: &Ended) -> anyhow::Result<Vec<Reader>> {
    let (url, mut tasks) = (format!("http://{addr}/events"), Vec::with_capacity(n));
    while tasks.len() < n {
        let open = |_| HTTP.get(&url).header("accept", "text/event-stream").send();
        let batch = future::try_join_all((tasks.len()..n.min(tasks.len() + 100)).map(open));
        let opened = tokio::time::timeout(Duration::from_secs(10), batch).await;
        let hint = || format!("with {} open (ulimit -n?)", tasks.len());
        for mut response in opened.context("no answer")?.with_context(hint)? {
            let kind = response.headers().get("content-type").map(|v| v.as_bytes());
            let stream = kind.is_some_and(|kind| kind.starts_with(b"text/event-stream"));
            if response.status() != 200 || !stream {
                bail!("GET /events answered {} {kind:?}", response.status());
            }
            let ended = ended.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok(Some(_)) = response.chunk().await {}
                ended.fetch_add(1, Relaxed);
            }));
        }
    }
    Ok(tasks)
}

/// Waits until the Marketplace's gauge `bookshop_event_streams` counts `streams`.
async fn until_counted(addr: &str, streams: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let metrics = HTTP.get(format!("http://{addr}/metrics")).send();
        let metrics = metrics.await?.text().await?;
        let gauge = crate::after(&metrics, "bookshop_event_streams ");
        let counted: f64 = gauge.context("no bookshop_event_streams")?.parse()?;
        if counted == streams as f64 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("bookshop_event_streams says {counted} after 10 s, with {streams} open");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
