//! Scenario 9's first half: the time from saving `catalog.toml` to the new title on the screen
//! of a browser that has the shelf open, against a running Recommendations (watching the
//! catalog at `path`, written beforehand by `bench-tool gen-catalog --shelf KEY`) and a running
//! Marketplace.
//!
//! The page is loaded in headless Chromium (see [`crate::browser`]) with a `MutationObserver`
//! installed before any of its own scripts run: whenever a book title appears in the page that
//! was not there before, it calls a DevTools binding with the title and `Date.now()`, in the same
//! task that changed the DOM. Each edit notes the wall-clock time just before the write, so the
//! latency is the difference of two readings of the same clock, to the millisecond, with no
//! polling in between.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{
    browser::{Browser, Page},
    catalog::{self, Shape},
    reload::{self, WriteMethod},
    stats,
};

/// The binding the page's observer calls.
const BINDING: &str = "benchTitleSeen";

/// Installed in the page before its own scripts: reports each book title the first time it is
/// in the DOM, with the time, from the mutation callback (a microtask right after the change).
const OBSERVER: &str = r#"(() => {
  const seen = new Set();
  const report = () => {
    const at = Date.now();
    for (const title of document.querySelectorAll("ul.books .book-title")) {
      const text = title.textContent;
      if (!seen.has(text)) {
        seen.add(text);
        window.benchTitleSeen(JSON.stringify({ title: text, at }));
      }
    }
  };
  new MutationObserver(report).observe(document, { childList: true, subtree: true, characterData: true });
})();"#;

/// Books on the shelf (all of them on its page, which shows three by default).
const SHELF_BOOKS: u32 = 3;

/// The shelf that is edited, in one run of the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelf {
    /// Its key in `catalog.toml` (snake_case): `poetry`.
    pub key: String,
    /// A number that makes this run's titles its own (0 for `gen-catalog`'s version 0).
    pub run: u32,
}

impl Shelf {
    /// The title of the shelf's first book in `version`: new in every version and run.
    pub fn first_title(&self, version: u64) -> String {
        format!(
            "{}{version} of run {}",
            Self::first_title_prefix(),
            self.run
        )
    }

    /// How every first title starts, whatever its version and run.
    pub fn first_title_prefix() -> &'static str {
        "Live edit "
    }

    /// How the shop names a shelf that `[categories]` does not name: its key in sentence case
    /// (`history_of_art`: "History of art").
    pub fn name(&self) -> String {
        let words = self.key.replace('_', " ");
        let mut chars = words.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }

    /// The catalog of `version`: a 9-book generated catalog (always version 0, so only the
    /// shelf changes) and the shelf of three books, the first one titled for `version`.
    pub fn catalog(&self, version: u64) -> String {
        let shape = Shape::with_total(9);
        let mut text = catalog::text(shape, 0);
        let first_id = shape.marker_id() + 1;
        for id in first_id..first_id + SHELF_BOOKS {
            let title = if id == first_id {
                self.first_title(version)
            } else {
                format!("Shelf book {id}")
            };
            text.push_str(&format!(
                "\n[[{}]]\nid = {id}\ntitle = \"{title}\"\nauthor = \"Author {id}\"\n",
                self.key
            ));
        }
        text
    }
}

/// Scenario 9's latency settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Marketplace (`http://host:port`).
    pub url: String,
    /// The catalog file Recommendations watches.
    pub path: PathBuf,
    /// The shelf whose page is open and whose first title each edit changes.
    pub shelf: Shelf,
    /// How many edits.
    pub edits: u64,
    /// Give up on an edit after this long.
    pub give_up: Duration,
    /// The Chromium to run.
    pub chromium: String,
}

/// What the edits measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Write to screen, per edit seen, in edit order.
    pub latencies: Vec<Duration>,
    /// Edits not seen within `give_up` (the run stops at the first).
    pub not_seen: u64,
}

impl Measured {
    /// The p50, p99 and max of the latencies (0 when none was seen), in ms.
    pub fn percentiles_ms(&self) -> [f64; 3] {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        [50.0, 99.0, 100.0].map(|p| stats::ms(stats::percentile(&sorted, p)))
    }

    /// The `live` row of `results.tsv`: shelf, edits, p50, p99, max ms, not seen, target ms.
    pub fn row(&self, shelf: &str, edits: u64, target_ms: u64) -> String {
        let [p50, p99, max] = self.percentiles_ms();
        format!(
            "live\t{shelf}\t{edits}\t{p50:.0}\t{p99:.0}\t{max:.0}\t{}\t{target_ms}",
            self.not_seen
        )
    }
}

/// Opens the shelf's page, checks it, then makes the edits (alternating in place and by
/// rename) and times each from just before its write to its title in the page. Fails if the
/// page had any problem (see [`crate::browser::problem`]).
pub async fn run(options: &Options) -> anyhow::Result<Measured> {
    let browser = Browser::launch(&options.chromium).await?;
    let mut page = browser.new_page().await?;
    watch_titles(&page).await?;
    let url = format!("{}/?category={}", options.url, options.shelf.key);
    page.goto(&url, Duration::from_secs(10)).await?;
    check_page(&page, &url, &options.shelf).await?;

    let mut measured = Measured::default();
    for version in 1..=options.edits {
        let expected = options.shelf.first_title(version);
        let text = options.shelf.catalog(version);
        let written_at = epoch_ms();
        reload::write(&options.path, &text, WriteMethod::alternating(version))?;
        match seen_at(&mut page, &expected, options.give_up).await? {
            Some(at) => measured
                .latencies
                .push(Duration::from_secs_f64((at - written_at).max(0.0) / 1000.0)),
            None => {
                measured.not_seen += 1;
                eprintln!(
                    "live: edit {version} ({expected:?}) was not on the page within {:?}; stopping",
                    options.give_up
                );
                break;
            }
        }
        // A pause, so that each edit is a reload of its own rather than part of a burst.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let problems = browser.problems();
    if !problems.is_empty() {
        bail!(
            "the page {url} had {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(measured)
}

/// Has every page loaded from now on report its book titles (see [`OBSERVER`]), for
/// [`seen_at`].
async fn watch_titles(page: &Page) -> anyhow::Result<()> {
    page.call("Runtime.addBinding", json!({ "name": BINDING }))
        .await?;
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": OBSERVER }),
    )
    .await?;
    Ok(())
}

/// Checks the loaded page before any edit: the shelf's name in its heading, a first title
/// among its books, the live script, and no problem so far.
async fn check_page(page: &Page, url: &str, shelf: &Shelf) -> anyhow::Result<()> {
    let found = page
        .evaluate(
            r#"({
                h1: document.querySelector("h1")?.textContent.trim() ?? null,
                titles: [...document.querySelectorAll("ul.books .book-title")].map(t => t.textContent),
                live: document.querySelector('script[src^="/static/live.js"]') !== null,
            })"#,
        )
        .await?;
    let h1 = found["h1"].as_str().unwrap_or("(none)");
    if !h1.contains(&shelf.name()) {
        bail!("{url}: the heading is {h1:?}, without {:?}", shelf.name());
    }
    // Any run's first title (an earlier run may have left the catalog at its last edit).
    let titles = found["titles"].as_array().cloned().unwrap_or_default();
    let any_first = Shelf::first_title_prefix();
    if !titles
        .iter()
        .any(|t| t.as_str().is_some_and(|t| t.starts_with(any_first)))
    {
        bail!(
            "{url}: the books are {titles:?}, none \"{any_first}…\" (not gen-catalog --shelf's catalog?)"
        );
    }
    if found["live"] != Value::Bool(true) {
        bail!(
            "{url} has no <script src=\"/static/live.js…\">: this Marketplace does not update its page"
        );
    }
    Ok(())
}

/// Waits for the page to report `title`; when it first appeared (ms since the epoch), or `None`
/// if not within `give_up`.
async fn seen_at(page: &mut Page, title: &str, give_up: Duration) -> anyhow::Result<Option<f64>> {
    let deadline = Instant::now() + give_up;
    while let Some(event) = page.next_event(deadline).await? {
        if event.method != "Runtime.bindingCalled" || event.params["name"] != BINDING {
            continue;
        }
        let payload = event.params["payload"].as_str().unwrap_or_default();
        let report: Value = serde_json::from_str(payload)
            .with_context(|| format!("the page reported {payload:?}"))?;
        if report["title"].as_str() == Some(title) {
            return report["at"]
                .as_f64()
                .map(Some)
                .with_context(|| format!("the page reported {payload:?}, without a time"));
        }
    }
    Ok(None)
}

/// Now, in ms since the epoch: the clock the page's `Date.now()` reads.
fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use recommendations::catalog::Catalog;

    use super::*;

    #[test]
    fn every_version_is_a_valid_catalog_with_a_new_first_title() {
        let shelf = Shelf {
            key: "poetry".to_owned(),
            run: 42,
        };
        for version in [0, 1, 2] {
            let text = shelf.catalog(version);
            let catalog = Catalog::from_toml_str(&text, "live").unwrap();
            assert_eq!(catalog.len(), 12);
            assert!(text.contains(&format!("title = \"{}\"", shelf.first_title(version))));
        }
        assert_ne!(shelf.first_title(1), shelf.first_title(2));
        assert_ne!(
            shelf.first_title(1),
            Shelf {
                run: 43,
                ..shelf.clone()
            }
            .first_title(1)
        );
    }

    #[test]
    fn a_shelf_is_named_after_its_key() {
        let name = |key: &str| {
            Shelf {
                key: key.to_owned(),
                run: 0,
            }
            .name()
        };
        assert_eq!(name("poetry"), "Poetry");
        assert_eq!(name("history_of_art"), "History of art");
    }

    /// A page whose script puts a title in after a while is timed to it, with the clock the
    /// edits read. Needs Chromium: without it, says so and passes.
    #[tokio::test]
    async fn a_title_the_page_puts_in_is_timed() {
        let Some(browser) = Browser::for_test().await else {
            return;
        };
        let mut page = browser.new_page().await.unwrap();
        watch_titles(&page).await.unwrap();
        let html = r#"<h1>Poetry</h1><ul class="books"><li class="book"><span class="book-title">Old</span></li></ul>
            <script>setTimeout(() => { document.querySelector("ul.books").innerHTML =
            '<li class="book"><span class="book-title">New</span></li>'; }, 200)</script>"#;
        let before = epoch_ms();
        page.goto(&format!("data:text/html,{html}"), Duration::from_secs(10))
            .await
            .unwrap();
        let old = seen_at(&mut page, "Old", Duration::from_secs(5))
            .await
            .unwrap();
        let new = seen_at(&mut page, "New", Duration::from_secs(5))
            .await
            .unwrap();
        let (old, new) = (old.unwrap(), new.unwrap());
        assert!(before <= old + 1.0 && old < new, "{before} {old} {new}");
        assert!(
            new - old >= 150.0 && new - before < 5000.0,
            "{before} {old} {new}"
        );
        assert!(
            seen_at(&mut page, "Never", Duration::from_millis(100))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(browser.problems(), Vec::<String>::new());
    }

    #[test]
    fn the_row_gives_the_percentiles_in_ms() {
        let measured = Measured {
            latencies: [120, 80, 100].map(Duration::from_millis).to_vec(),
            not_seen: 0,
        };
        assert_eq!(
            measured.row("poetry", 3, 500),
            "live\tpoetry\t3\t100\t120\t120\t0\t500"
        );
    }
}
