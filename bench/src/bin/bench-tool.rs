//! `bench-tool`: the parts of `bench/run.sh` that need a real gRPC client or exact arithmetic.
//! Measurements go to stdout as one tab-separated row (see `bookshop_bench::report`); what a
//! person reads goes to stderr.

#![allow(clippy::print_stdout)] // printing results is this tool's job

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bookshop_bench::{
    catalog::{self, Shape},
    grpc, reload, report,
    startup::{self, Probe},
    stats::{self, ms},
};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench-tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the gRPC-framed `Recommend` request h2load sends (user 1, 3 mystery books)
    RequestBody { out: PathBuf },
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
    /// Write a generated catalog of N books (version V in every title)
    GenCatalog {
        #[arg(long)]
        books: u32,
        #[arg(long, default_value_t = 0)]
        version: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print p50 ms, p99 ms, non-200 count and request count of an h2load --log-file
    H2loadLog { file: PathBuf },
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
        /// Print only the p50 reload time (for the scale table)
        #[arg(long)]
        p50_only: bool,
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
    /// Scenario 7: start a command N times; print start→healthy p50 and max, SIGTERM→exit max
    /// (ms) and idle RSS (MB)
    Startup {
        #[command(flatten)]
        probe: ProbeArgs,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Render a results.tsv as markdown
    Report { file: PathBuf },
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

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::RequestBody { out } => {
            std::fs::write(&out, grpc::framed(&grpc::seed_request()))
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        Command::Check { addr, calls } => check(&addr, calls).await?,
        Command::Wait { probe, timeout_ms } => {
            wait(&probe.probe()?, Duration::from_millis(timeout_ms)).await?;
        }
        Command::GenCatalog {
            books,
            version,
            out,
        } => {
            let text = catalog::text(Shape::with_total(books), version);
            std::fs::write(&out, text)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        Command::H2loadLog { file } => {
            let log = stats::h2load_log(&file)?;
            println!(
                "{:.2}\t{:.2}\t{}\t{}",
                log.p50_ms, log.p99_ms, log.not_ok, log.requests
            );
        }
        Command::ReloadLatency {
            addr,
            catalog,
            books,
            edits,
            label,
            target_ms,
            p50_only,
        } => {
            let options = reload::LatencyOptions {
                addr,
                path: catalog,
                shape: Shape::with_total(books),
                edits,
                probe_every: Duration::from_millis(1),
                give_up: Duration::from_secs(10),
            };
            let result = reload::latency(&options).await?;
            let mut sorted = result.latencies.clone();
            sorted.sort_unstable();
            let p = |q| ms(stats::percentile(&sorted, q));
            eprintln!(
                "reload latency ({label}): {} edits seen, {} not seen; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                sorted.len(),
                result.timeouts,
                p(50.0),
                p(99.0),
                p(100.0)
            );
            if p50_only {
                println!("{:.0}", p(50.0));
            } else {
                println!(
                    "reload\t{label}\t{edits}\t{:.0}\t{:.0}\t{:.0}\t{}\t{target_ms}",
                    p(50.0),
                    p(99.0),
                    p(100.0),
                    result.timeouts
                );
            }
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
            println!(
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
            );
            if result.wrong > 0 {
                bail!("{} answers matched no valid catalog", result.wrong);
            }
        }
        Command::Startup {
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
            println!(
                "{:.0}\t{:.0}\t{:.0}\t{:.1}",
                ms(stats::percentile(&healthy, 50.0)),
                ms(stats::percentile(&healthy, 100.0)),
                ms(stop_max),
                rss_max as f64 / 1024.0
            );
        }
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
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-tool: {error:#}");
            ExitCode::FAILURE
        }
    }
}
