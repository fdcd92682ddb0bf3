//! One run of `bench/run.sh`: its directory, the servers it started (by name), and its results.
//!
//! The run directory (`BENCH_DIR`; the driver uses `$CARGO_TARGET_DIR/bench`) holds:
//! - `procs/NAME`: the pid of the server started as NAME (by [`RunDir::launch`]);
//! - `logs/NAME.log`: that server's output;
//! - `work/`: the load generators' output and other files of the run;
//! - `results.tsv`: one row per measurement (see [`crate::report`]).

use std::{
    convert::Infallible,
    fs::File,
    io::Write as _,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::startup::Probe;

/// A server of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The name it was started as (in the results' peak RSS column).
    pub name: String,
    /// Its pid.
    pub pid: u32,
}

impl Process {
    /// Whether it is still running (a zombie is not: it has exited, unreaped).
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(") ")?.1.chars().next()? != 'Z'))
            .unwrap_or(false)
    }
}

/// The run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: PathBuf) -> RunDir {
        RunDir { root }
    }

    /// `work/`, created if need be.
    pub fn work(&self) -> anyhow::Result<PathBuf> {
        self.dir("work")
    }

    /// Where the server started as `name` writes its output.
    pub fn log_file(&self, name: &str) -> anyhow::Result<PathBuf> {
        Ok(self.dir("logs")?.join(format!("{name}.log")))
    }

    fn pid_file(&self, name: &str) -> anyhow::Result<PathBuf> {
        Ok(self.dir("procs")?.join(name))
    }

    fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Appends `row` (tab-separated, see [`crate::report`]) to `results.tsv`, and shows it on
    /// stderr.
    pub fn append(&self, row: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let path = self.root.join("results.tsv");
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{row}").with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("{row}");
        Ok(())
    }

    /// Becomes the server `name`: records this process's pid, sends its output to the log and
    /// executes `command` in its place, so the shell that started this process is the server's
    /// parent and reaps it. Returns only if that fails.
    pub fn launch(&self, name: &str, command: &[String]) -> anyhow::Result<Infallible> {
        let (program, args) = command.split_first().context("no command to launch")?;
        let log_path = self.log_file(name)?;
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let pid_path = self.pid_file(name)?;
        std::fs::write(&pid_path, std::process::id().to_string())
            .with_context(|| format!("cannot write {}", pid_path.display()))?;
        let error = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .exec();
        Err(error).with_context(|| format!("cannot start {program}"))
    }

    /// The server started as `name`.
    pub fn process(&self, name: &str) -> anyhow::Result<Process> {
        let path = self.pid_file(name)?;
        let pid = std::fs::read_to_string(&path)
            .with_context(|| format!("no server {name} (no {})", path.display()))?;
        Ok(Process {
            name: name.to_owned(),
            pid: pid.trim().parse().context("not a pid")?,
        })
    }

    /// The servers started as `names`.
    pub fn processes(&self, names: &[String]) -> anyhow::Result<Vec<Process>> {
        names.iter().map(|name| self.process(name)).collect()
    }

    /// Waits until `probe` answers, while the servers `names` keep running (a Marketplace's
    /// `/readyz` tells of both services). If one exits first, or the probe does not answer
    /// within `timeout`, shows the end of their logs (so a failure in CI says why) and fails.
    pub async fn ready(
        &self,
        names: &[String],
        probe: &Probe,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let failure = 'waiting: loop {
            for name in names {
                // A pid is recorded a moment after the shell started the server.
                if let Ok(process) = self.process(name)
                    && !process.is_running()
                {
                    break 'waiting format!("{name} has exited");
                }
            }
            if probe.healthy().await {
                return Ok(());
            }
            if started.elapsed() > timeout {
                break format!(
                    "{} not ready after {timeout:?} ({probe:?})",
                    names.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for name in names {
            let log = self.log_file(name)?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- the end of {}:", log.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
        bail!(failure)
    }

    /// Stops the server `name`: SIGTERM, then SIGKILL if it has not exited within 5 s.
    pub async fn stop(&self, name: &str) -> anyhow::Result<()> {
        let process = self.process(name)?;
        if process.is_running() {
            signal(process.pid, "TERM")?;
            if !exits_within(&process, Duration::from_secs(5)).await {
                signal(process.pid, "KILL")?;
                if !exits_within(&process, Duration::from_secs(5)).await {
                    bail!("{name} (pid {}) survived SIGKILL", process.pid);
                }
            }
        }
        std::fs::remove_file(self.pid_file(name)?).context("cannot remove the pid file")
    }

    /// Stops every server of the run that is still running (all of them, even if one fails).
    pub async fn stop_all(&self) -> anyhow::Result<()> {
        let procs = self.dir("procs")?;
        let mut result = Ok(());
        for entry in std::fs::read_dir(&procs).context("cannot list the servers")? {
            if let Some(name) = entry?.file_name().to_str()
                && let Err(error) = self.stop(name).await
            {
                eprintln!("bench-tool: {error:#}");
                result = Err(error);
            }
        }
        result
    }
}

/// Whether `process` exits within `limit`.
async fn exits_within(process: &Process, limit: Duration) -> bool {
    let started = Instant::now();
    while process.is_running() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` through `kill`, as the crate forbids `unsafe`. A
/// process that has exited already is no error.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("cannot run kill")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_run_dir(name: &str) -> RunDir {
        let root = std::env::temp_dir().join(format!("bench-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        RunDir::new(root)
    }

    #[tokio::test]
    async fn a_server_is_found_by_name_and_stopped() -> anyhow::Result<()> {
        let dir = temp_run_dir("stop");
        let mut sleeper = Command::new("sleep").arg("30").spawn()?;
        std::fs::write(dir.pid_file("sleeper")?, sleeper.id().to_string())?;
        let process = dir.process("sleeper")?;
        assert!(process.is_running());
        dir.stop_all().await?;
        assert!(!process.is_running(), "a zombie has exited");
        sleeper.wait()?;
        assert!(dir.process("sleeper").is_err(), "its pid file is gone");
        std::fs::remove_dir_all(&dir.root)?;
        Ok(())
    }

    #[test]
    fn rows_are_appended_to_the_results() -> anyhow::Result<()> {
        let dir = temp_run_dir("append");
        dir.append("info\tmode\tquick")?;
        dir.append("info\tdate\ttoday")?;
        let results = std::fs::read_to_string(dir.root.join("results.tsv"))?;
        std::fs::remove_dir_all(&dir.root)?;
        assert_eq!(results, "info\tmode\tquick\ninfo\tdate\ttoday\n");
        Ok(())
    }
}
