//! `bench-tool`: the measurements of `bench/run.sh`, rows appended to `$BENCH_DIR/results.tsv`.

#![allow(clippy::print_stdout)] // printing results is this tool's job

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use bookshop_bench::{catalog, live, load, reload, report, sink, start};
use bookshop_proto::BookCategory;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "bench-tool")]
enum Command {
    /// Wait until a server is up; fail if one of the PIDs exits first
    Wait {
        #[command(flatten)]
        probe: start::Probe,
        #[arg(long)]
        pid: Vec<u32>,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// Call `Recommend` 20 times: each must answer with the three mystery books, ids 1 to 3
    Check { addr: String },
    /// Write the framed `Recommend` request h2load posts
    RequestBody { out: PathBuf },
    /// Write a generated catalog of BOOKS books; with --shelf, scenario 9's
    GenCatalog {
        books: u32,
        out: PathBuf,
        #[arg(long)]
        shelf: bool,
    },
    /// Scenarios 1-3: one h2load or wrk run
    Load(load::Args),
    /// Scenario 4: catalog edits, each timed to the first answer that reflects it
    ReloadLatency(reload::Latency),
    /// Scenario 5: catalog writes, some invalid, during a load run; every answer checked
    ReloadLoad(reload::UnderLoad),
    /// Scenario 6: Recommendations on generated catalogs of each size
    Scale(start::Scale),
    /// Scenario 7: start → healthy, idle RSS and SIGTERM → exit of a program
    Footprint(start::Footprint),
    /// Scenario 8: a server's RSS around reloads of a catalog.max_bytes catalog
    ReloadMemory(reload::Memory),
    /// Scenario 9: catalog edits timed to the new title in headless Chromium's page
    LiveLatency(live::Args),
    /// Scenario 9: the home page's load without and with idle `/events` streams
    IdleStreams(live::Streams),
    /// An OTLP/gRPC trace receiver; once stopped, one line per service: SERVICE SPANS
    OtlpSink {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Print a results.tsv as markdown
    Report { file: PathBuf },
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Wait { probe, pid, timeout_ms } => {
            start::wait(&probe, &pid, Duration::from_millis(timeout_ms)).await?;
        }
        Command::Check { addr } => {
            let mut client = bookshop_bench::connect(&addr).await?;
            for _ in 0..20 {
                let request = bookshop_bench::request(BookCategory::Mystery, 3);
                let answer = client.recommend(request).await?.into_inner();
                let mut ids: Vec<i32> = answer.recommendations.iter().map(|b| b.id).collect();
                ids.sort_unstable();
                if ids != [1, 2, 3] || answer.recommendations.iter().any(|b| b.title.is_empty()) {
                    bail!("{addr}: not the three mystery books: {answer:?}");
                }
            }
        }
        Command::RequestBody { out } => std::fs::write(out, load::request_body())?,
        Command::GenCatalog { books, out, shelf } => {
            let text = if shelf { live::catalog(0, 0) } else { catalog::text(books, 0) };
            catalog::write(&out, &text, false)?;
        }
        Command::Load(args) => load::main(args).await?,
        Command::ReloadLatency(args) => reload::latency(args).await?,
        Command::ReloadLoad(args) => reload::under_load(args).await?,
        Command::Scale(args) => start::scale(args).await?,
        Command::Footprint(args) => start::footprint(args).await?,
        Command::ReloadMemory(args) => reload::memory(args).await?,
        Command::LiveLatency(args) => live::run(args).await?,
        Command::IdleStreams(args) => live::streams(args).await?,
        Command::OtlpSink { addr } => {
            for (service, spans) in sink::serve(addr).await? {
                println!("{service} {spans}");
            }
        }
        Command::Report { file } => {
            let tsv = std::fs::read_to_string(&file).with_context(|| format!("{file:?}"))?;
            print!("{}", report::render(&tsv));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Command::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-tool: {error:#}");
            ExitCode::FAILURE
        }
    }
}
