//! Scenario 7: time from process start to healthy, the RSS of the idle process just after, and
//! the time from SIGTERM to exit.

use std::{
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{run, usage};

/// What "healthy" means for the process under test.
#[derive(Debug, Clone)]
pub enum Probe {
    /// The gRPC health service answers SERVING (`host:port`).
    Grpc(String),
    /// A `Recommend` call succeeds (`host:port`; for servers without a health service).
    Recommend(String),
    /// `GET` answers 200 (`http://…` URL).
    Http(String),
}

impl Probe {
    /// Whether the server answers as healthy now.
    pub async fn healthy(&self) -> bool {
        let timeout = Duration::from_millis(200);
        match self {
            Probe::Grpc(addr) => {
                recommendations::healthcheck::check(addr, timeout)
                    .await
                    .ok()
                    == Some(ServingStatus::Serving)
            }
            Probe::Recommend(addr) => {
                let call = async {
                    let mut client = crate::grpc::connect(addr).await.ok()?;
                    crate::grpc::recommend(&mut client, crate::grpc::seed_request())
                        .await
                        .ok()
                };
                matches!(tokio::time::timeout(timeout, call).await, Ok(Some(_)))
            }
            Probe::Http(url) => {
                marketplace::healthcheck::check(url, timeout).await.ok() == Some(200)
            }
        }
    }
}

/// One start: how long to healthy, the idle RSS after it, and how long SIGTERM took.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Spawn to the first healthy answer.
    pub to_healthy: Duration,
    /// `VmRSS` a moment after healthy, in kB.
    pub idle_rss_kb: u64,
    /// SIGTERM to exit.
    pub to_exit: Duration,
}

/// Starts `command` `runs` times; each time polls `probe` every millisecond until healthy
/// (within `give_up`), reads the RSS after `settle`, then stops it with SIGTERM.
pub async fn measure(
    command: &[String],
    probe: &Probe,
    runs: usize,
    settle: Duration,
    give_up: Duration,
) -> anyhow::Result<Vec<Start>> {
    let mut starts = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (mut child, to_healthy) = start(command, None, probe, give_up).await?;
        tokio::time::sleep(settle).await;
        let idle_rss_kb = usage::status_kb(child.id(), "VmRSS").unwrap_or(0);
        let to_exit = terminate(&mut child).await?;
        starts.push(Start {
            to_healthy,
            idle_rss_kb,
            to_exit,
        });
    }
    Ok(starts)
}

/// Starts `command`, its output to `log` (or nowhere), and polls `probe` every millisecond
/// until it answers; fails if that takes longer than `give_up` or the process exits. Returns
/// the process and the time to its first healthy answer.
pub async fn start(
    command: &[String],
    log: Option<&Path>,
    probe: &Probe,
    give_up: Duration,
) -> anyhow::Result<(Child, Duration)> {
    let (program, args) = command.split_first().context("no command to start")?;
    let (stdout, stderr) = match log {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    loop {
        if probe.healthy().await {
            return Ok((child, started.elapsed()));
        }
        if started.elapsed() > give_up || child.try_wait()?.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} was not healthy within {give_up:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sends SIGTERM and waits for the exit; kills the process if it takes more than ten seconds.
pub async fn terminate(child: &mut Child) -> anyhow::Result<Duration> {
    let sent = Instant::now();
    run::signal(child.id(), "TERM")?;
    while child.try_wait()?.is_none() {
        if sent.elapsed() > Duration::from_secs(10) {
            child.kill()?;
            child.wait()?;
            bail!("the process ignored SIGTERM for 10 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(sent.elapsed())
}
