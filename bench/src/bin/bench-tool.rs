//! `bench-tool`: what `bench/run.sh` runs its scenarios with. It starts, waits for and stops
//! the servers, runs the load generators, samples `/proc`, checks answers, and appends each
//! measurement to the run's `results.tsv` as one tab-separated row (see
//! `bookshop_bench::report`); what a person reads goes to stderr. The run directory comes
//! from `--dir` or `BENCH_DIR` (see `bookshop_bench::run`).

#![allow(clippy::print_stdout)] // printing results is this tool's job

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bookshop_bench::{
    catalog::{self, Shape},
    grpc, idle_streams,
    live::{self, Shelf},
    load::{Load, Target},
    memory, otlp_sink,
    reload::{self, LatencyOptions},
    report,
    run::RunDir,
    scale,
    startup::{self, Probe},
    stats::{self, ms},
    usage,
};
use clap::{Parser, Subcommand};
use recommendations::catalog::DEFAULT_MAX_BYTES;

#[derive(Debug, Parser)]
#[command(name = "bench-tool")]
struct Cli {
    /// The run directory (pids, logs, work files, results.tsv)
    #[arg(long, env = "BENCH_DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Become the server NAME: record this pid, log to logs/NAME.log, execute COMMAND (run it
    /// in the background: `bench-tool launch NAME -- COMMAND &`)
    Launch {
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Wait until the probe answers while the servers NAME... keep running; fail with the end
    /// of their logs if one exits or the probe times out
    Ready {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        probe: ProbeArgs,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// Stop servers: SIGTERM, then SIGKILL after 5 s
    Stop {
        names: Vec<String>,
        /// Every server of the run still running
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Print the RSS of the server NAME, in MB
    Rss { name: String },
    /// Scenario 1: h2load's `Recommend` load against ADDR; a `load` row with the usage of the
    /// servers PROCESS...
    GrpcLoad {
        scenario: String,
        system: String,
        addr: String,
        #[arg(short = 'c', long, default_value_t = 8)]
        connections: u32,
        /// Calls in flight on each connection
        #[arg(short = 'm', long, default_value_t = 8)]
        streams: u32,
        #[command(flatten)]
        row: RowArgs,
    },
    /// Scenarios 2 and 3: wrk's load against URL; a `load` row with the usage of the servers
    /// PROCESS...
    HttpLoad {
        scenario: String,
        system: String,
        url: String,
        #[arg(short = 'c', long, default_value_t = 16)]
        connections: u32,
        #[command(flatten)]
        row: RowArgs,
    },
    /// Write the gRPC-framed `Recommend` request h2load sends (user 1, 3 mystery books)
    RequestBody { out: PathBuf },
    /// A minimal OTLP/gRPC trace receiver that counts the spans it is sent; on SIGTERM or
    /// Ctrl-C it prints one line per service, `SERVICE SPANS`, and exits
    OtlpSink {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// Call `Recommend` N times and check each answer: OK, 3 distinct books, ids 1 to 3
    Check {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 20)]
        calls: u32,
    },
    /// Wait until a server is ready (by the probe given)
    Wait {
        #[command(flatten)]
        probe: ProbeArgs,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Write a generated catalog of N books (version 0)
    GenCatalog {
        #[arg(long)]
        books: u32,
        /// With a shelf KEY of three books as well, as scenario 9 edits it (then N is 9)
        #[arg(long)]
        shelf: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Scenario 4: edits of the catalog, each timed to the first answer that reflects it
    ReloadLatency {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        catalog: PathBuf,
        /// Books in the catalog (as written by gen-catalog)
        #[arg(long, default_value_t = 9)]
        books: u32,
        #[arg(long, default_value_t = 50)]
        edits: u64,
        /// The label of the row (the watch mode)
        #[arg(long)]
        label: String,
        /// The target p99, for the row
        #[arg(long)]
        target_ms: u64,
    },
    /// Scenario 9: edits of the shelf's first title in the catalog, each timed from the write to
    /// the new title in a headless Chromium that has the shelf's page open; a `live` row
    LiveLatency {
        /// The Marketplace (http://host:port)
        #[arg(long)]
        url: String,
        /// The catalog Recommendations watches (written by gen-catalog --shelf KEY)
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long, default_value = "poetry")]
        shelf: String,
        #[arg(long, default_value_t = 50)]
        edits: u64,
        /// Give up on an edit (and fail) after this long
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
        /// The target p99, for the row
        #[arg(long, default_value_t = 500)]
        target_ms: u64,
        #[arg(long, default_value = "chromium")]
        chromium: String,
    },
    /// Scenario 9: the home page's load (16 connections) without and with N idle `/events`
    /// streams held open; `load` rows (scenario `page-streams`) and a `streams` row with the
    /// req/s ratio and the Marketplace's RSS per stream
    IdleStreams {
        /// The Marketplace, by the name it was launched as (for its RSS)
        marketplace: String,
        /// The Recommendations it calls (for the load rows' usage)
        recommendations: String,
        /// The Marketplace (host:port)
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        #[command(flatten)]
        timing: Timing,
    },
    /// Scenario 5: catalog writes (some invalid) during a load run; every answer checked
    ReloadLoad {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long, default_value_t = 41)]
        books: u32,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 100)]
        reloads: u64,
        #[arg(long, default_value_t = 10)]
        invalid: u64,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 8)]
        streams: usize,
    },
    /// Scenario 8: the RSS of the server NAME (serving a 9-book gen-catalog at ADDR) around
    /// reloads of catalogs of BYTES; a `reload_memory` row
    ReloadMemory {
        name: String,
        #[arg(long)]
        addr: String,
        #[arg(long)]
        catalog: PathBuf,
        /// The large catalogs' size [default: catalog.max_bytes' default]
        #[arg(long, default_value_t = DEFAULT_MAX_BYTES)]
        bytes: u64,
        /// Seconds from the small catalog's return to the RSS reading
        #[arg(long, default_value_t = 5)]
        settle_s: u64,
    },
    /// Scenario 6: write a catalog of N books, start COMMAND (serving it at ADDR), time it to
    /// healthy, load it (scenario 1's load, best of the rounds), time a reload; a `scale` row
    Scale {
        #[arg(long)]
        books: u32,
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        #[command(flatten)]
        timing: Timing,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Scenario 7: start COMMAND N times; a `footprint` row with start→healthy p50 and max,
    /// SIGTERM→exit max (ms) and idle RSS (MB)
    Footprint {
        name: String,
        /// The binary, for its size
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The idle RSS of the long-running server after the load runs, MB (from `rss`)
        #[arg(long)]
        idle_after_load: Option<String>,
        #[command(flatten)]
        probe: ProbeArgs,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Append an `info` row (machine, mode, …)
    Info { key: String, value: String },
    /// Render a results.tsv as markdown
    Report { file: PathBuf },
}

/// How long a load runs.
#[derive(Debug, clap::Args)]
struct Timing {
    /// The measured run, in seconds
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The warm-up run before it, in seconds
    #[arg(long, default_value_t = 2)]
    warm_up: u64,
}

/// The rest of a load row: how long, a note, and whose usage.
#[derive(Debug, clap::Args)]
struct RowArgs {
    #[command(flatten)]
    timing: Timing,
    /// A note shown beside the system
    #[arg(long, default_value = "")]
    note: String,
    /// The servers that answer (by the names they were launched as), for CPU, switches and RSS
    #[arg(required = true)]
    processes: Vec<String>,
}

/// Which readiness probe: one of the three.
#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The gRPC health service answers SERVING (host:port)
    #[arg(long, group = "probe")]
    health: Option<String>,
    /// A `Recommend` call succeeds (host:port)
    #[arg(long, group = "probe")]
    recommend: Option<String>,
    /// GET answers 200 (URL)
    #[arg(long, group = "probe")]
    http: Option<String>,
}

impl ProbeArgs {
    fn probe(self) -> anyhow::Result<Probe> {
        match (self.health, self.recommend, self.http) {
            (Some(addr), None, None) => Ok(Probe::Grpc(addr)),
            (None, Some(addr), None) => Ok(Probe::Recommend(addr)),
            (None, None, Some(url)) => Ok(Probe::Http(url)),
            _ => bail!("give one of --health ADDR, --recommend ADDR, --http URL"),
        }
    }
}

async fn check(addr: &str, calls: u32) -> anyhow::Result<()> {
    let mut client = grpc::connect(addr).await?;
    for call in 1..=calls {
        let answer = grpc::recommend(&mut client, grpc::seed_request())
            .await
            .with_context(|| format!("call {call} failed"))?;
        let mut ids: Vec<i32> = answer.recommendations.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        if ids != [1, 2, 3] || answer.recommendations.iter().any(|b| b.title.is_empty()) {
            bail!("call {call}: unexpected answer {answer:?}");
        }
    }
    eprintln!("{addr}: {calls} calls answered OK with the three mystery books");
    Ok(())
}

async fn wait(probe: &Probe, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while !probe.healthy().await {
        if started.elapsed() > timeout {
            bail!("{probe:?} not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs `target`'s load and appends its `load` row.
fn load(
    dir: &RunDir,
    scenario: &str,
    system: &str,
    target: Target,
    connections: u32,
    row: RowArgs,
) -> anyhow::Result<()> {
    let load = Load {
        target,
        connections,
        seconds: row.timing.seconds,
        warm_up: row.timing.warm_up,
    };
    let processes = dir.processes(&row.processes)?;
    let measured = load
        .run(&dir.work()?, &format!("{scenario}-{system}"), &processes)
        .with_context(|| format!("the load against {system} failed"))?;
    dir.append(&measured.row(scenario, system, &row.note))
}

/// The file's size in MB, for the footprint table.
fn size_mb(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    Ok(format!("{:.1}", bytes as f64 / 1_048_576.0))
}

async fn run(dir: Option<PathBuf>, command: Command) -> anyhow::Result<()> {
    let run_dir = || {
        dir.clone()
            .map(RunDir::new)
            .context("no run directory: give --dir or set BENCH_DIR")
    };
    match command {
        Command::Launch { name, command } => {
            run_dir()?.launch(&name, &command)?;
        }
        Command::Ready {
            names,
            probe,
            timeout_ms,
        } => {
            run_dir()?
                .ready(&names, &probe.probe()?, Duration::from_millis(timeout_ms))
                .await?;
        }
        Command::Stop { names, all } => {
            let dir = run_dir()?;
            if all {
                dir.stop_all().await?;
            }
            for name in names {
                dir.stop(&name).await?;
            }
        }
        Command::Rss { name } => {
            let process = run_dir()?.process(&name)?;
            let kb = usage::status_kb(process.pid, "VmRSS").context("the server is gone")?;
            println!("{:.1}", kb as f64 / 1024.0);
        }
        Command::GrpcLoad {
            scenario,
            system,
            addr,
            connections,
            streams,
            row,
        } => {
            let target = Target::Grpc { addr, streams };
            load(&run_dir()?, &scenario, &system, target, connections, row)?;
        }
        Command::HttpLoad {
            scenario,
            system,
            url,
            connections,
            row,
        } => {
            load(
                &run_dir()?,
                &scenario,
                &system,
                Target::Http { url },
                connections,
                row,
            )?;
        }
        Command::RequestBody { out } => {
            std::fs::write(&out, grpc::framed(&grpc::seed_request()))
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        Command::OtlpSink { addr } => {
            let sink = otlp_sink::Sink::default();
            otlp_sink::serve(addr, sink.clone()).await?;
            for (service, spans) in sink.counts() {
                println!("{service} {spans}");
            }
        }
        Command::Check { addr, calls } => check(&addr, calls).await?,
        Command::Wait { probe, timeout_ms } => {
            wait(&probe.probe()?, Duration::from_millis(timeout_ms)).await?;
        }
        Command::GenCatalog {
            books: _,
            shelf: Some(key),
            out,
        } => {
            let shelf = Shelf { key, run: 0 };
            catalog::write_text(&out, &shelf.catalog(0))?;
        }
        Command::GenCatalog {
            books,
            shelf: None,
            out,
        } => catalog::write_new(&out, books)?,
        Command::LiveLatency {
            url,
            catalog,
            shelf,
            edits,
            timeout_ms,
            target_ms,
            chromium,
        } => {
            let options = live::Options {
                url,
                path: catalog,
                shelf: Shelf {
                    key: shelf.clone(),
                    run: std::process::id(),
                },
                edits,
                give_up: Duration::from_millis(timeout_ms),
                chromium,
            };
            let measured = live::run(&options).await?;
            let [p50, p99, max] = measured.percentiles_ms();
            eprintln!(
                "live catalog ({shelf}): {} edits on screen, {} not; save to screen p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                measured.latencies.len(),
                measured.not_seen,
            );
            run_dir()?.append(&measured.row(&shelf, edits, target_ms))?;
            if measured.not_seen > 0 {
                bail!("an edit of the catalog did not reach the page within {timeout_ms} ms");
            }
        }
        Command::ReloadLatency {
            addr,
            catalog,
            books,
            edits,
            label,
            target_ms,
        } => {
            let options = LatencyOptions::new(addr, catalog, Shape::with_total(books), edits);
            let result = reload::latency(&options).await?;
            let [p50, p99, max] = result.percentiles_ms();
            eprintln!(
                "reload latency ({label}): {} edits seen, {} not seen; p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                result.latencies.len(),
                result.timeouts,
            );
            run_dir()?.append(&format!(
                "reload\t{label}\t{edits}\t{p50:.0}\t{p99:.0}\t{max:.0}\t{}\t{target_ms}",
                result.timeouts
            ))?;
        }
        Command::IdleStreams {
            marketplace,
            recommendations,
            addr,
            streams,
            rounds,
            timing,
        } => {
            let dir = run_dir()?;
            let options = idle_streams::Options {
                addr,
                streams,
                rounds,
                connections: 16,
                seconds: timing.seconds,
                warm_up: timing.warm_up,
                marketplace: dir.process(&marketplace)?,
                recommendations: dir.process(&recommendations)?,
            };
            let measured = idle_streams::run(&dir, &options).await?;
            eprintln!(
                "idle streams: home page {:.0} req/s without, {:.0} with {streams} open ({:.1}%); Marketplace RSS {:.1} → {:.1} MB, {:.1} kB per stream",
                measured.rps_without,
                measured.rps_with,
                measured.ratio_percent(),
                measured.rss_without_kb as f64 / 1024.0,
                measured.rss_with_kb as f64 / 1024.0,
                measured.kb_per_stream()
            );
            dir.append(&measured.row())?;
        }
        Command::ReloadLoad {
            addr,
            catalog,
            books,
            seconds,
            reloads,
            invalid,
            connections,
            streams,
        } => {
            let options = reload::UnderLoadOptions {
                addr,
                path: catalog,
                shape: Shape::with_total(books),
                duration: Duration::from_secs(seconds),
                reloads,
                invalid,
                connections,
                streams,
                max_results: 5,
            };
            let result = reload::under_load(&options).await?;
            eprintln!(
                "reload under load: {} requests, {} failed, {} wrong, {} versions seen, {} valid + {} invalid files written, last version served: {}",
                result.requests,
                result.failed,
                result.wrong,
                result.versions_seen,
                result.written_valid,
                result.written_invalid,
                result.converged
            );
            for example in &result.wrong_examples {
                eprintln!("  e.g. {example}");
            }
            run_dir()?.append(&format!(
                "reload_load\t{seconds}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.0}\t{:.2}\t{}",
                result.written_valid + result.written_invalid,
                result.written_invalid,
                result.requests,
                result.failed,
                result.wrong,
                result.versions_seen,
                result.rps(),
                result.percentile_ms(99.0),
                if result.converged { "yes" } else { "NO" }
            ))?;
            if result.wrong > 0 {
                bail!("{} answers matched no valid catalog", result.wrong);
            }
        }
        Command::ReloadMemory {
            name,
            addr,
            catalog,
            bytes,
            settle_s,
        } => {
            let dir = run_dir()?;
            let settle = Duration::from_secs(settle_s);
            let options = memory::Options {
                addr,
                path: catalog,
                process: dir.process(&name)?,
                bytes: usize::try_from(bytes).context("--bytes is too large")?,
                settle,
            };
            let measured = memory::run(&options).await?;
            dir.append(&measured.row(settle))?;
        }
        Command::Scale {
            books,
            catalog,
            addr,
            rounds,
            timing,
            command,
        } => {
            let options = scale::Options {
                books,
                catalog,
                load: Load {
                    target: Target::Grpc {
                        addr: addr.clone(),
                        streams: 8,
                    },
                    connections: 8,
                    seconds: timing.seconds,
                    warm_up: timing.warm_up,
                },
                addr,
                rounds,
                command,
            };
            let dir = run_dir()?;
            let row = scale::run(&dir, &options).await?;
            dir.append(&row)?;
        }
        Command::Footprint {
            name,
            binary,
            idle_after_load,
            probe,
            runs,
            command,
        } => {
            let starts = startup::measure(
                &command,
                &probe.probe()?,
                runs,
                Duration::from_millis(300),
                Duration::from_secs(10),
            )
            .await?;
            let mut healthy: Vec<Duration> = starts.iter().map(|s| s.to_healthy).collect();
            healthy.sort_unstable();
            let stop_max = starts.iter().map(|s| s.to_exit).max().unwrap_or_default();
            let rss_max = starts.iter().map(|s| s.idle_rss_kb).max().unwrap_or(0);
            let size = binary.as_deref().map(size_mb).transpose()?;
            run_dir()?.append(&format!(
                "footprint\t{name}\t{}\t{:.0}\t{:.0}\t{:.0}\t{:.1}\t{}",
                size.unwrap_or_default(),
                ms(stats::percentile(&healthy, 50.0)),
                ms(stats::percentile(&healthy, 100.0)),
                ms(stop_max),
                rss_max as f64 / 1024.0,
                idle_after_load.unwrap_or_default()
            ))?;
        }
        Command::Info { key, value } => run_dir()?.append(&format!("info\t{key}\t{value}"))?,
        Command::Report { file } => {
            let tsv = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            print!("{}", report::render(&tsv));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.dir, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-tool: {error:#}");
            ExitCode::FAILURE
        }
    }
}
