//! Whether a server is up, and scenarios 6 (catalog scale) and 7 (footprint), which start one.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bookshop_proto::BookCategory;
use tokio::process::{Child, Command};
use tonic_health::pb::{self, health_client::HealthClient};

use crate::load::{self, Server, running};

/// What "up" means for a server.
#[derive(Debug, Clone, clap::Args)]
pub struct Probe {
    /// `health`: the gRPC health service answers SERVING; `recommend`: a `Recommend` call
    /// succeeds (servers without a health service); `http`: GET answers 200
    #[arg(value_parser = ["health", "recommend", "http"])]
    pub kind: String,
    /// host:port, or the URL
    pub target: String,
}

impl Probe {
    /// Whether the server answers as up now, within 200 ms.
    pub async fn up(&self) -> bool {
        let target = self.target.as_str();
        let answer = async {
            match self.kind.as_str() {
                "health" => {
                    let channel = crate::endpoint(target).ok()?.connect().await.ok()?;
                    let request = pb::HealthCheckRequest::default();
                    let answer = HealthClient::new(channel).check(request).await.ok()?;
                    let serving = pb::health_check_response::ServingStatus::Serving as i32;
                    Some(answer.into_inner().status == serving)
                }
                "recommend" => {
                    let mut client = crate::connect(target).await.ok()?;
                    let request = crate::request(BookCategory::Mystery, 3);
                    Some(client.recommend(request).await.is_ok())
                }
                _ => Some(crate::HTTP.get(target).send().await.ok()?.status() == 200),
            }
        };
        let answer = tokio::time::timeout(Duration::from_millis(200), answer).await;
        answer == Ok(Some(true))
    }
}

/// `bench-tool wait`: polls every 20 ms until up; fails if one of `pids` exits first.
pub async fn wait(probe: &Probe, pids: &[u32], timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while !probe.up().await {
        if let Some(pid) = pids.iter().find(|pid| !running(**pid)) {
            bail!("the server (pid {pid}) has exited");
        }
        if started.elapsed() > timeout {
            bail!("not up within {timeout:?}: {probe:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Starts `command` (output to `log`), polling `probe` every ms: the process once up, and when.
pub async fn start(command: &[String], log: &Path, probe: &Probe) -> anyhow::Result<Up> {
    let (program, args) = command.split_first().context("no command to start")?;
    let log = File::options().create(true).append(true).open(log)?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    command.stdout(log.try_clone()?).stderr(log);
    let (started, mut child) = (Instant::now(), command.spawn()?);
    while !probe.up().await {
        // A big catalog takes seconds to load.
        if started.elapsed() > Duration::from_secs(60) || child.try_wait()?.is_some() {
            bail!("{program} was not up within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok((child, started.elapsed()))
}

/// A server started, and the time it took to be up.
pub type Up = (Child, Duration);

/// SIGTERM (with `kill`: the crate forbids `unsafe`), and the time to the exit, at most 10 s.
pub async fn terminate(child: &mut Child) -> anyhow::Result<Duration> {
    let sent = Instant::now();
    let pid = child.id().context("the process has exited already")?;
    Command::new("kill").arg(pid.to_string()).status().await?;
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    exit.context("the process ignored SIGTERM for 10 s")??;
    Ok(sent.elapsed())
}

/// `bench-tool footprint`: scenario 7's row for one program.
#[derive(Debug, clap::Args)]
pub struct Footprint {
    /// The row's name
    name: String,
    #[command(flatten)]
    probe: Probe,
    /// Judge it against our services' targets (idle RSS, start time)
    #[arg(long)]
    ours: bool,
    /// The binary, for its size
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The idle RSS of its long-running instance after the load runs, MB
    #[arg(long, default_value = "")]
    idle_after_load: String,
    #[arg(long)]
    runs: usize,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Starts the program `runs` times, each time until up, `VmRSS` 300 ms later, then SIGTERM.
pub async fn footprint(args: Footprint) -> anyhow::Result<()> {
    let (mut starts, mut stop_ms, mut rss) = (Vec::new(), 0f64, 0f64);
    for _ in 0..args.runs {
        let (mut child, to_up) = start(&args.command, Path::new("/dev/null"), &args.probe).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = Server::new(&args.name, child.id().context("the server has exited")?);
        rss = rss.max(server.mb("VmRSS")?);
        stop_ms = stop_ms.max(terminate(&mut child).await?.as_secs_f64() * 1000.0);
        starts.push(to_up);
    }
    let [p50, _, max] = crate::p50_p99_max(&starts);
    let size = args.binary.map(std::fs::metadata).transpose()?;
    let size = size.map_or(String::new(), |file| crate::mb(file.len()));
    let (name, after) = (&args.name, &args.idle_after_load);
    let measured = format!("{p50:.0}\t{max:.0}\t{stop_ms:.0}\t{rss:.1}\t{after}");
    crate::record(&format!("footprint\t{name}\t{size}\t{measured}"))?;
    if args.ours {
        let idle = rss.max(after.parse().unwrap_or(0.0));
        let text = format!("7. {name} idle RSS < 20 MB: {rss:.1} MB at start, {after} MB later");
        crate::target(&text, idle < 20.0)?;
        let text = format!("7. {name} start → healthy < 300 ms: {max:.0} ms (max)");
        crate::target(&text, max < 300.0)?;
    }
    Ok(())
}

/// `bench-tool scale`: scenario 6.
#[derive(Debug, clap::Args)]
pub struct Scale {
    /// Where COMMAND serves (host:port)
    addr: String,
    /// The catalog COMMAND serves
    catalog: PathBuf,
    rounds: u32,
    /// The catalog sizes, the first the baseline of the others
    #[arg(required = true)]
    books: Vec<u32>,
    /// Recommendations on that catalog at that address
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// For each size: start → up, scenario 1's load (best of the rounds), a reload, peak RSS.
pub async fn scale(args: Scale) -> anyhow::Result<()> {
    let probe = Probe { kind: "health".into(), target: args.addr.clone() };
    let (mut base, log) = (None, crate::path("work/scale.log")?);
    for &books in &args.books {
        crate::catalog::write(&args.catalog, &crate::catalog::text(books, 0), false)?;
        let file_mb = crate::mb(std::fs::metadata(&args.catalog)?.len());
        let (mut child, to_up) = start(&args.command, &log, &probe).await?;
        let server = Server::new("scale", child.id().context("the server has exited")?);
        let measured = scale_load(&args, books, &server).await;
        terminate(&mut child).await?;
        let (best, reload_ms, peak) = measured?;
        let ([_, rps, _, p99, _], cpu) = (best.counts, best.cpu_us);
        let (base_p99, base_cpu) = *base.get_or_insert((p99, cpu));
        let (p99_x, cpu_x) = (p99 / base_p99, cpu / base_cpu);
        let start_ms = to_up.as_secs_f64() * 1000.0;
        let server = format!("{books}\t{file_mb}\t{start_ms:.0}\t{reload_ms:.0}\t{peak:.1}");
        let load = format!("{rps:.0}\t{p99:.2}\t{p99_x:.2}×\t{cpu:.1}\t{cpu_x:.2}×");
        crate::record(&format!("scale\t{server}\t{load}"))?;
        if books != args.books[0] {
            let text =
                format!("6. `Recommend` p99 with {books} books ≤ 1.5× the first's: {p99_x:.2}×");
            crate::target(&text, p99_x <= 1.5)?;
        }
    }
    Ok(())
}

/// The best load run, the reload time in ms, and the peak RSS in MB.
type Scaled = (load::Measured, f64, f64);

async fn scale_load(args: &Scale, books: u32, server: &Server) -> anyhow::Result<Scaled> {
    // The peak of loading the catalog; the load runs reset it.
    let (loading, mut best) = (server.mb("VmHWM")?, load::Measured::default());
    let (servers, label) = (std::slice::from_ref(server), format!("scale-{books}"));
    for _ in 0..args.rounds.max(1) {
        let measured = load::run(&args.addr, 8, 8, servers, &label).await?;
        if measured.rps() > best.rps() {
            best = measured;
        }
    }
    let (latencies, _) = crate::reload::edits(&args.addr, &args.catalog, books, 3).await?;
    let [reload_ms, _, _] = crate::p50_p99_max(&latencies);
    Ok((best, reload_ms, server.mb("VmHWM")?.max(loading)))
}
