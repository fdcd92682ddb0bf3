//! Scenario 4 (hot reload latency) and scenario 5 (reload under load), against a running
//! Recommendations that serves the generated catalog at `path` (version 0 written beforehand).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bookshop_proto::{
    BookCategory, RecommendationRequest, RecommendationResponse,
    recommendations_client::RecommendationsClient,
};
use tonic::transport::Channel;

use crate::{
    catalog::{self, Shape},
    grpc, stats,
};

/// How a new catalog reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// Truncate and write the file itself (`echo > file`, many editors' plain save).
    InPlace,
    /// Write a temporary file beside it and rename it over (vim, `sed -i`, atomic writers).
    Rename,
}

impl WriteMethod {
    /// Edit `n` (from 1) alternates: odd in place, even by rename.
    pub fn alternating(n: u64) -> WriteMethod {
        if n % 2 == 1 {
            WriteMethod::InPlace
        } else {
            WriteMethod::Rename
        }
    }
}

/// Writes `text` to `path` by `method`.
pub fn write(path: &Path, text: &str, method: WriteMethod) -> anyhow::Result<()> {
    match method {
        WriteMethod::InPlace => std::fs::write(path, text),
        WriteMethod::Rename => {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path))
        }
    }
    .with_context(|| format!("cannot write {}", path.display()))
}

/// The marker question: which version is in service?
fn marker_request() -> RecommendationRequest {
    RecommendationRequest {
        user_id: 1,
        category: BookCategory::SelfHelp as i32,
        max_results: 1,
    }
}

fn served_marker(response: &RecommendationResponse) -> Option<&str> {
    response.recommendations.first().map(|b| b.title.as_str())
}

/// Asks which version is in service every `every` until it is `version`: true once it is,
/// false if it is not within `give_up`.
pub async fn until_served(
    client: &mut RecommendationsClient<Channel>,
    version: u64,
    every: Duration,
    give_up: Duration,
) -> bool {
    let expected = catalog::marker_title(version);
    let started = Instant::now();
    loop {
        let answer = grpc::recommend(client, marker_request()).await;
        if answer.as_ref().ok().and_then(served_marker) == Some(expected.as_str()) {
            return true;
        }
        if started.elapsed() > give_up {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Scenario 4's settings.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// The service (`host:port`).
    pub addr: String,
    /// The catalog file it watches.
    pub path: PathBuf,
    /// The catalog's shape (kept for every edit).
    pub shape: Shape,
    /// How many edits.
    pub edits: u64,
    /// How often to ask whether an edit is in service.
    pub probe_every: Duration,
    /// Give up on one edit after this long.
    pub give_up: Duration,
}

impl LatencyOptions {
    /// `edits` edits of the catalog of `shape` at `path`, served at `addr`; asks every
    /// millisecond, gives up on an edit after 10 s.
    pub fn new(addr: String, path: PathBuf, shape: Shape, edits: u64) -> LatencyOptions {
        LatencyOptions {
            addr,
            path,
            shape,
            edits,
            probe_every: Duration::from_millis(1),
            give_up: Duration::from_secs(10),
        }
    }
}

/// Scenario 4's result: one latency per edit that was seen in time.
#[derive(Debug, Clone, Default)]
pub struct LatencyResult {
    /// Write start to first answer with the new version, per edit, in edit order.
    pub latencies: Vec<Duration>,
    /// Edits not seen within `give_up`.
    pub timeouts: u64,
}

impl LatencyResult {
    /// The p50, p99 and max of the latencies (0 when none was seen), in ms.
    pub fn percentiles_ms(&self) -> [f64; 3] {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        [50.0, 99.0, 100.0].map(|p| stats::ms(stats::percentile(&sorted, p)))
    }
}

/// Makes `edits` edits (alternating in place and by rename), each a new version, and times each
/// from the start of the write to the first answer that carries the new version.
pub async fn latency(options: &LatencyOptions) -> anyhow::Result<LatencyResult> {
    let mut client = grpc::connect(&options.addr).await?;
    let mut result = LatencyResult::default();
    for version in 1..=options.edits {
        let text = catalog::text(options.shape, version);
        let started = Instant::now();
        write(&options.path, &text, WriteMethod::alternating(version))?;
        if until_served(&mut client, version, options.probe_every, options.give_up).await {
            result.latencies.push(started.elapsed());
        } else {
            result.timeouts += 1;
        }
        // A pause between edits, so that each is its own reload rather than one debounced
        // burst.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(result)
}

/// Scenario 5's settings.
#[derive(Debug, Clone)]
pub struct UnderLoadOptions {
    /// The service (`host:port`).
    pub addr: String,
    /// The catalog file it watches.
    pub path: PathBuf,
    /// The catalog's shape.
    pub shape: Shape,
    /// How long the load runs.
    pub duration: Duration,
    /// Catalog writes during the run, evenly spaced.
    pub reloads: u64,
    /// How many of them are invalid (evenly spread among them).
    pub invalid: u64,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Calls in flight on each connection.
    pub streams: usize,
    /// Books asked for in each call.
    pub max_results: u32,
}

/// Scenario 5's result.
#[derive(Debug, Clone, Default)]
pub struct UnderLoadResult {
    /// Calls made.
    pub requests: u64,
    /// Calls that ended in a gRPC error.
    pub failed: u64,
    /// Answers that match no catalog that was valid at some point.
    pub wrong: u64,
    /// The first few wrong answers, for the log.
    pub wrong_examples: Vec<String>,
    /// Distinct catalog versions seen in answers.
    pub versions_seen: usize,
    /// Valid and invalid files written.
    pub written_valid: u64,
    /// Invalid files written.
    pub written_invalid: u64,
    /// Whether the last valid version was in service once writing stopped.
    pub converged: bool,
    /// Call latencies, sorted, in µs.
    pub latencies_us: Vec<u32>,
    /// The load's wall time.
    pub elapsed: Duration,
}

/// The catalog versions that were written as valid files (never an invalid one).
#[derive(Debug, Default)]
struct Versions {
    valid: Mutex<HashSet<u64>>,
    latest: AtomicU64,
}

impl Versions {
    fn contains(&self, version: u64) -> bool {
        self.valid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&version)
    }

    fn add(&self, version: u64) {
        self.valid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(version);
        self.latest.store(version, Ordering::SeqCst);
    }
}

/// Checks one answer; returns its version, or why it is wrong.
fn check_answer(
    response: &RecommendationResponse,
    shape: Shape,
    max_results: u32,
    versions: &Versions,
) -> Result<u64, String> {
    let books = &response.recommendations;
    let expected = max_results.min(shape.mystery) as usize;
    if books.len() != expected {
        return Err(format!("{} books, expected {expected}", books.len()));
    }
    let mut ids = HashSet::new();
    let mut version = None;
    for book in books {
        let (id, v) = catalog::parse_title(&book.title)
            .ok_or_else(|| format!("unexpected title {:?}", book.title))?;
        let id_ok =
            u32::try_from(book.id).is_ok_and(|bid| bid == id && (1..=shape.mystery).contains(&id));
        if !id_ok {
            return Err(format!(
                "book {} titled {:?} in mystery",
                book.id, book.title
            ));
        }
        if !ids.insert(id) {
            return Err(format!("book {id} twice"));
        }
        if *version.get_or_insert(v) != v {
            return Err(format!("versions mixed in one answer: {version:?} and {v}"));
        }
    }
    let version = version.unwrap_or_default();
    if !versions.contains(version) {
        return Err(format!("version {version} was never a valid catalog"));
    }
    Ok(version)
}

#[derive(Debug, Default)]
struct WorkerTally {
    requests: u64,
    failed: u64,
    wrong: u64,
    wrong_examples: Vec<String>,
    versions: HashSet<u64>,
    latencies_us: Vec<u32>,
}

/// Runs the load on `connections × streams` calls in flight while a writer puts `reloads` new
/// catalog files in place (alternating in place and by rename, `invalid` of them broken), and
/// checks every answer.
pub async fn under_load(options: &UnderLoadOptions) -> anyhow::Result<UnderLoadResult> {
    let versions = Arc::new(Versions::default());
    versions.add(0);
    let started = Instant::now();
    let deadline = started + options.duration;

    let mut workers = Vec::new();
    for _ in 0..options.connections {
        let client = grpc::connect(&options.addr).await?;
        for _ in 0..options.streams {
            let mut client = client.clone();
            let versions = versions.clone();
            let (shape, max_results) = (options.shape, options.max_results);
            workers.push(tokio::spawn(async move {
                let mut tally = WorkerTally::default();
                let request = RecommendationRequest {
                    user_id: 1,
                    category: BookCategory::Mystery as i32,
                    max_results: i32::try_from(max_results).unwrap_or(i32::MAX),
                };
                while Instant::now() < deadline {
                    let call = Instant::now();
                    let answer = grpc::recommend(&mut client, request).await;
                    tally.requests += 1;
                    tally
                        .latencies_us
                        .push(u32::try_from(call.elapsed().as_micros()).unwrap_or(u32::MAX));
                    match answer {
                        Err(status) => {
                            tally.failed += 1;
                            if tally.wrong_examples.len() < 3 {
                                tally.wrong_examples.push(format!("failed: {status}"));
                            }
                        }
                        Ok(response) => {
                            match check_answer(&response, shape, max_results, &versions) {
                                Ok(version) => {
                                    tally.versions.insert(version);
                                }
                                Err(why) => {
                                    tally.wrong += 1;
                                    if tally.wrong_examples.len() < 3 {
                                        tally.wrong_examples.push(why);
                                    }
                                }
                            }
                        }
                    }
                }
                tally
            }));
        }
    }

    // The writer: reload i (from 1) at i/(reloads+1) of the run; every (reloads/invalid)-th one
    // broken, starting half-way into the first stride.
    let stride = options
        .reloads
        .checked_div(options.invalid)
        .unwrap_or(u64::MAX)
        .max(1);
    let (mut written_valid, mut written_invalid) = (0, 0);
    for version in 1..=options.reloads {
        let at = started
            + options
                .duration
                .mul_f64(version as f64 / (options.reloads + 1) as f64);
        tokio::time::sleep_until(at.into()).await;
        let method = WriteMethod::alternating(version);
        let path = options.path.clone();
        let broken = options.invalid > 0
            && version % stride == stride / 2
            && written_invalid < options.invalid;
        let text = if broken {
            written_invalid += 1;
            catalog::invalid_text(
                options.shape,
                version,
                usize::try_from(version).unwrap_or(0),
            )
        } else {
            written_valid += 1;
            // Approved before it is written: no answer can carry it before the write.
            versions.add(version);
            catalog::text(options.shape, version)
        };
        tokio::task::spawn_blocking(move || write(&path, &text, method)).await??;
    }

    let mut result = UnderLoadResult {
        written_valid,
        written_invalid,
        ..UnderLoadResult::default()
    };
    let mut seen = HashSet::new();
    for worker in workers {
        let tally = worker.await?;
        result.requests += tally.requests;
        result.failed += tally.failed;
        result.wrong += tally.wrong;
        result.latencies_us.extend(tally.latencies_us);
        seen.extend(tally.versions);
        for example in tally.wrong_examples {
            if result.wrong_examples.len() < 5 {
                result.wrong_examples.push(example);
            }
        }
    }
    result.elapsed = started.elapsed();
    result.versions_seen = seen.len();
    result.latencies_us.sort_unstable();
    result.converged = converged(options, versions.latest.load(Ordering::SeqCst)).await?;
    Ok(result)
}

/// Whether the service ends up serving `version` within two seconds.
async fn converged(options: &UnderLoadOptions, version: u64) -> anyhow::Result<bool> {
    let mut client = grpc::connect(&options.addr).await?;
    let every = Duration::from_millis(10);
    Ok(until_served(&mut client, version, every, Duration::from_secs(2)).await)
}

impl UnderLoadResult {
    /// Calls per second over the run.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in ms.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        f64::from(stats::percentile(&self.latencies_us, p)) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bookshop_proto::BookRecommendation;

    use super::*;

    fn answer(books: &[(i32, &str)]) -> RecommendationResponse {
        RecommendationResponse {
            recommendations: books
                .iter()
                .map(|(id, title)| BookRecommendation {
                    id: *id,
                    title: (*title).to_owned(),
                    author: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn answers_are_checked_against_the_valid_versions() {
        let shape = Shape {
            mystery: 5,
            science_fiction: 5,
        };
        let versions = Versions::default();
        versions.add(0);
        versions.add(2);
        let check = |books: &[(i32, &str)]| check_answer(&answer(books), shape, 2, &versions);
        assert_eq!(check(&[(1, "Book 1 v2"), (4, "Book 4 v2")]), Ok(2));
        // Version 1 was the broken file.
        assert!(check(&[(1, "Book 1 v1"), (4, "Book 4 v1")]).is_err());
        assert!(check(&[(1, "Book 1 v0"), (4, "Book 4 v2")]).is_err());
        assert!(check(&[(1, "Book 1 v2"), (1, "Book 1 v2")]).is_err());
        assert!(check(&[(1, "Book 1 v2")]).is_err());
        // A science-fiction book in a mystery answer, or a title under the wrong id.
        assert!(check(&[(1, "Book 1 v2"), (7, "Book 7 v2")]).is_err());
        assert!(check(&[(1, "Book 2 v2"), (4, "Book 4 v2")]).is_err());
    }

    #[test]
    fn both_write_methods_leave_exactly_the_new_text() {
        let dir = std::env::temp_dir().join(format!("bench-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.toml");
        write(&path, "one", WriteMethod::InPlace).unwrap();
        write(&path, "two", WriteMethod::Rename).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let files = std::fs::read_dir(&dir).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((text.as_str(), files), ("two", 1));
    }
}
