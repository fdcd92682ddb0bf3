//! Scenario 6: Recommendations on a generated catalog of any size. Start → healthy,
//! `Recommend` under the scenario-1 load (best of the rounds), reload time, and the peak RSS
//! over all of it, as one `scale` row.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;

use crate::{
    catalog::{self, Shape},
    load::{Load, Measured},
    reload::{self, LatencyOptions},
    run::{Process, RunDir},
    startup::{self, Probe},
    usage,
};

/// Scenario 6's settings for one catalog size.
#[derive(Debug, Clone)]
pub struct Options {
    /// Books in the generated catalog.
    pub books: u32,
    /// Where the catalog is written (the file `command` serves).
    pub catalog: PathBuf,
    /// Where `command` serves (`host:port`).
    pub addr: String,
    /// The load, against `addr`.
    pub load: Load,
    /// Load runs; the best is kept, as for the load scenarios.
    pub rounds: u32,
    /// Recommendations on `catalog`, serving at `addr`.
    pub command: Vec<String>,
}

/// A big catalog takes seconds to load.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Writes the catalog, measures, and returns the `scale` row: books, file MB, start ms, reload
/// ms (p50 of three edits), peak RSS MB, req/s, p99 ms, CPU µs per request.
pub async fn run(dir: &RunDir, options: &Options) -> anyhow::Result<String> {
    let shape = Shape::with_total(options.books);
    catalog::write_new(&options.catalog, options.books)?;
    let file_mb = std::fs::metadata(&options.catalog)?.len() as f64 / 1_048_576.0;
    let probe = Probe::Grpc(options.addr.clone());

    let first = startup::measure(&options.command, &probe, 1, Duration::ZERO, GIVE_UP).await?;
    let start_ms = first
        .first()
        .map_or(0.0, |s| s.to_healthy.as_secs_f64() * 1000.0);

    let log = dir.log_file("scale")?;
    let (mut server, _) = startup::start(&options.command, Some(&log), &probe, GIVE_UP).await?;
    let process = Process {
        name: "scale".to_owned(),
        pid: server.id(),
    };
    let measured = measure(dir, options, shape, &process).await;
    startup::terminate(&mut server).await?;
    let (best, reload_ms, peak_kb) = measured?;
    Ok(format!(
        "scale\t{}\t{file_mb:.1}\t{start_ms:.0}\t{reload_ms:.0}\t{:.1}\t{:.0}\t{:.2}\t{:.1}",
        options.books,
        peak_kb as f64 / 1024.0,
        best.counted.rps,
        best.counted.p99_ms,
        best.usage.cpu_us
    ))
}

/// The best load run, the reload time in ms, and the peak RSS in kB.
async fn measure(
    dir: &RunDir,
    options: &Options,
    shape: Shape,
    process: &Process,
) -> anyhow::Result<(Measured, f64, u64)> {
    // The peak of loading the catalog; the load runs reset it.
    let loading_kb = usage::status_kb(process.pid, "VmHWM").unwrap_or(0);
    let work = dir.work()?;
    let label = format!("scale-{}", options.books);
    let mut best: Option<Measured> = None;
    for _ in 0..options.rounds.max(1) {
        let measured = options
            .load
            .run(&work, &label, std::slice::from_ref(process))?;
        if best
            .as_ref()
            .is_none_or(|b| measured.counted.rps > b.counted.rps)
        {
            best = Some(measured);
        }
    }
    let best = best.context("no load run")?;
    let edits = LatencyOptions::new(options.addr.clone(), options.catalog.clone(), shape, 3);
    let [reload_ms, _, _] = reload::latency(&edits).await?.percentiles_ms();
    let peak_kb = usage::status_kb(process.pid, "VmHWM")
        .unwrap_or(0)
        .max(loading_kb);
    Ok((best, reload_ms, peak_kb))
}
