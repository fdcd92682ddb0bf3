//! Scenarios 4, 5 and 8: reload latency, reloads under load, and memory around reloads.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure};
use bookshop_proto::{BookCategory, RecommendationResponse};

use crate::{Client, catalog, load::Server};

/// The latencies of the edits seen, and how many were not.
pub type Edits = (Vec<Duration>, u64);

/// The catalog versions written as valid files.
type Valid = Arc<Mutex<HashSet<u64>>>;

/// Asks for the marker every `every` ms until it is of `version` (true) or `give_up` ms passed.
pub async fn served(client: &mut Client, version: u64, every: u64, give_up: u64) -> bool {
    let (expected, started) = (catalog::marker(version), Instant::now());
    let marker = crate::request(BookCategory::SelfHelp, 1);
    loop {
        let answer = client.recommend(marker).await;
        let books = answer.map(|answer| answer.into_inner().recommendations);
        if books.is_ok_and(|books| books.first().is_some_and(|b| b.title == expected)) {
            return true;
        }
        if started.elapsed() > Duration::from_millis(give_up) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
}

/// `bench-tool reload-latency`: scenario 4's row for one watch mode.
#[derive(Debug, clap::Args)]
pub struct Latency {
    /// Recommendations (host:port)
    addr: String,
    /// The 9-book generated catalog it serves
    catalog: PathBuf,
    edits: u64,
    /// The row's label (the watch mode)
    label: String,
    /// The target p99, ms
    target_ms: f64,
}

/// `n` edits (in place and by rename), each timed from its write to the first answer with it.
pub async fn edits(addr: &str, path: &Path, books: u32, n: u64) -> anyhow::Result<Edits> {
    let (mut client, mut latencies, mut not_seen) = (crate::connect(addr).await?, Vec::new(), 0);
    for version in 1..=n {
        let (text, started) = (catalog::text(books, version), Instant::now());
        catalog::write(path, &text, catalog::renamed(version))?;
        match served(&mut client, version, 1, 10_000).await {
            true => latencies.push(started.elapsed()),
            false => not_seen += 1,
        }
        // A pause, so that each edit is a reload of its own rather than part of a burst.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((latencies, not_seen))
}

/// Scenario 4: a `reload` row and its target.
pub async fn latency(args: Latency) -> anyhow::Result<()> {
    let (latencies, not_seen) = edits(&args.addr, &args.catalog, 9, args.edits).await?;
    let ([p50, p99, max], label) = (crate::p50_p99_max(&latencies), &args.label);
    let (edits, target) = (args.edits, args.target_ms);
    let measured = format!("{edits}\t{p50:.0}\t{p99:.0}\t{max:.0}\t{not_seen}");
    crate::record(&format!("reload\t{label}\t{measured}\tp99 < {target} ms"))?;
    let text = format!("4. Reload latency ({label}): p99 < {target} ms: {p99:.0} ms");
    crate::target(&text, p99 < target && not_seen == 0)
}

/// `bench-tool reload-load`: scenario 5.
#[derive(Debug, clap::Args)]
pub struct UnderLoad {
    /// Recommendations (host:port)
    addr: String,
    /// The generated catalog it serves, and its books
    catalog: PathBuf,
    books: u32,
    seconds: u64,
    /// Catalog writes during the run, and how many of them invalid
    reloads: u64,
    invalid: u64,
}

/// What the calls of one task saw, with the first failure or wrong answer.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    failed: u64,
    wrong: u64,
    example: Option<String>,
    versions: HashSet<u64>,
    latencies_us: Vec<u32>,
}

/// An answer's version, if it is `Recommend(mystery, 5)` from a valid catalog of `books`.
fn check(answer: &RecommendationResponse, books: u32, valid: &Valid) -> Option<u64> {
    let (mystery, mut ids) = (catalog::mystery(books), HashSet::new());
    let mut versions = HashSet::new();
    for book in &answer.recommendations {
        let (id, version) = catalog::parse_title(&book.title)?;
        let right = i64::from(id) == i64::from(book.id) && (1..=mystery).contains(&id);
        if !(right && ids.insert(id)) {
            return None;
        }
        versions.insert(version);
    }
    let version = *versions.iter().next()?;
    let valid = crate::lock(valid).contains(&version);
    (valid && ids.len() == mystery.min(5) as usize && versions.len() == 1).then_some(version)
}

/// Calls `Recommend(mystery, 5)` until `end`, checking every answer.
async fn calls(mut client: Client, end: Instant, books: u32, valid: Valid) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < end {
        let call = Instant::now();
        let answer = client.recommend(crate::request(BookCategory::Mystery, 5));
        let answer = answer.await;
        let micros = call.elapsed().as_micros().try_into();
        tally.latencies_us.push(micros.unwrap_or(u32::MAX));
        tally.requests += 1;
        let (why, count) = match answer.map(tonic::Response::into_inner) {
            Ok(answer) => match check(&answer, books, &valid) {
                Some(version) => {
                    tally.versions.insert(version);
                    continue;
                }
                None => (format!("wrong: {answer:?}"), &mut tally.wrong),
            },
            Err(status) => (format!("failed: {status}"), &mut tally.failed),
        };
        *count += 1;
        tally.example.get_or_insert(why);
    }
    tally
}

/// Scenario 5: 8 connections × 8 calls, every answer checked, while new versions are written.
pub async fn under_load(args: UnderLoad) -> anyhow::Result<()> {
    let valid = Valid::new(Mutex::new(HashSet::from([0])));
    let (started, duration) = (Instant::now(), Duration::from_secs(args.seconds));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = crate::connect(&args.addr).await?;
        for _ in 0..8 {
            let (client, valid) = (client.clone(), valid.clone());
            let calls = calls(client, started + duration, args.books, valid);
            tasks.push(tokio::spawn(calls));
        }
    }
    // Reload i (from 1) at i/(reloads+1) of the run; every (reloads/invalid)-th one broken,
    // starting half-way into the first stride.
    let stride = args.reloads.checked_div(args.invalid).unwrap_or(u64::MAX);
    let stride = stride.max(1);
    let (mut last_valid, mut invalid) = (0, 0);
    for version in 1..=args.reloads {
        let at = started + duration.mul_f64(version as f64 / (args.reloads + 1) as f64);
        tokio::time::sleep_until(at.into()).await;
        let text = if version % stride == stride / 2 && invalid < args.invalid {
            invalid += 1;
            catalog::invalid_text(args.books, version, version)
        } else {
            // Approved before it is written: no answer can carry it before the write.
            crate::lock(&valid).insert(version);
            last_valid = version;
            catalog::text(args.books, version)
        };
        let path = args.catalog.clone();
        let write = move || catalog::write(&path, &text, catalog::renamed(version));
        tokio::task::spawn_blocking(write).await??;
    }
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.requests += tally.requests;
        all.failed += tally.failed;
        all.wrong += tally.wrong;
        all.example = all.example.or(tally.example);
        all.versions.extend(tally.versions);
        all.latencies_us.extend(tally.latencies_us);
    }
    let rps = all.requests as f64 / started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let p99 = f64::from(crate::percentile(&all.latencies_us, 99.0)) / 1000.0;
    let mut client = crate::connect(&args.addr).await?;
    let served = if served(&mut client, last_valid, 10, 2000).await { "yes" } else { "NO" };
    let (requests, failed, wrong, seen) = (all.requests, all.failed, all.wrong, all.versions.len());
    let written = format!("{}\t{}\t{invalid}", args.seconds, args.reloads);
    let answers = format!("{requests}\t{failed}\t{wrong}\t{seen}\t{rps:.0}\t{p99:.2}");
    crate::record(&format!("reload_load\t{written}\t{answers}\t{served}"))?;
    let text = format!("5. Reload under load: 0 failed, 0 wrong: {failed} failed, {wrong} wrong");
    crate::target(&text, failed == 0 && wrong == 0)?;
    if let Some(example) = all.example.filter(|_| wrong > 0) {
        bail!("{wrong} answers matched no valid catalog, e.g. {example}");
    }
    Ok(())
}

/// `bench-tool reload-memory`: scenario 8.
#[derive(Debug, clap::Args)]
pub struct Memory {
    /// Recommendations (host:port)
    addr: String,
    /// The 9-book generated catalog it serves
    catalog: PathBuf,
    /// The server (NAME=PID), for its memory
    server: Server,
    /// The large catalogs' size: catalog.max_bytes' default (docs/configuration.md)
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    bytes: usize,
}

/// Scenario 8: RSS with the small catalog, its peak small → large, 5 s after large → small,
/// and its peak large → large (both in memory at once: the most a reload takes).
pub async fn memory(args: Memory) -> anyhow::Result<()> {
    let (mut client, server) = (crate::connect(&args.addr).await?, &args.server);
    let mut replace = async |version, text: Option<String>| -> anyhow::Result<f64> {
        crate::load::reset_peak(std::slice::from_ref(server));
        if let Some(text) = text {
            catalog::write(&args.catalog, &text, true)?;
        }
        // A 16 MiB catalog takes about a second to parse in a release build.
        if !served(&mut client, version, 10, 60_000).await {
            bail!("catalog version {version} not in service within 60 s");
        }
        server.mb("VmHWM")
    };
    let large = |version| Some(catalog::text_of_size(args.bytes, version));
    replace(0, None).await?;
    let before = server.mb("VmRSS")?;
    let peak = replace(1, large(1)).await?;
    replace(2, Some(catalog::text(9, 2))).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = server.mb("VmRSS")?;
    replace(3, large(3)).await?;
    let both = replace(4, large(4)).await?;
    replace(5, Some(catalog::text(9, 5))).await?;
    let file = args.bytes as f64 / 1_048_576.0;
    let (factor, above, both_factor) = (peak / file, after - before, both / file);
    let small = format!("{file:.1}\t{before:.1}\t{peak:.1}\t{factor:.1}×\t{after:.1}\t{above:+.1}");
    let row = format!("reload_memory\t{small}\t{both:.1}\t{both_factor:.1}×");
    crate::record(&row)?;
    let text = format!("8. Peak RSS of a reload ≤ 8× the file ({file:.1} MB): {factor:.1}×");
    crate::target(&text, factor <= 8.0)?;
    let text = format!("8. RSS 5 s after the large catalog ≤ 20 MB more: {above:+.1} MB");
    crate::target(&text, above <= 20.0)?;
    // Each shape, then the small catalog after it: the shape was loaded or rejected by then.
    for (version, (shape, text)) in (6..).zip(catalog::shapes(args.bytes)) {
        crate::load::reset_peak(std::slice::from_ref(server));
        let (read, started) = (server.read_bytes()?, Instant::now());
        catalog::write(&args.catalog, &text, true)?;
        while server.read_bytes()? < read + text.len() as u64 {
            ensure!(started.elapsed() < Duration::from_secs(60), "{shape}: not read in 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        catalog::write(&args.catalog, &catalog::text(9, version), true)?;
        ensure!(served(&mut client, version, 10, 60_000).await, "not served after {shape}");
        let (file, peak) = (text.len() as f64 / 1_048_576.0, server.mb("VmHWM")?);
        crate::record(&format!(
            "reload_shape\t{shape}\t{file:.1}\t{peak:.1}\t{:.1}×",
            peak / file
        ))?;
        crate::target(&format!("8. {shape}: peak RSS ≤ 8× the file"), peak / file <= 8.0)?;
    }
    Ok(())
}
