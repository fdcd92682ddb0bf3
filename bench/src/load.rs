//! A load run: `h2load` (gRPC) or `wrk` (HTTP) with one thread, after a warm-up run of its own,
//! and what the servers used during the measured run (see [`crate::usage`]).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::{
    grpc,
    run::Process,
    stats,
    usage::{self, Sample, Usage},
};

/// `wrk`'s end-of-run hook: prints one `BENCH` line with exact counts and percentiles.
const WRK_REPORT: &str = include_str!("../wrk-report.lua");

/// What is loaded.
#[derive(Debug, Clone)]
pub enum Target {
    /// `Recommend` at `host:port`, `streams` calls in flight on each connection (`h2load`).
    Grpc { addr: String, streams: u32 },
    /// `GET url` (`wrk`).
    Http { url: String },
}

/// A load run's settings.
#[derive(Debug, Clone)]
pub struct Load {
    /// What is loaded.
    pub target: Target,
    /// Connections.
    pub connections: u32,
    /// The measured run, in seconds.
    pub seconds: u64,
    /// The warm-up run before it, in seconds.
    pub warm_up: u64,
}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// What the load generator counted.
    pub counted: Counted,
    /// What the servers used per request.
    pub usage: Usage,
    /// The servers' peak RSS during the run (`mkt 9.4 + rec 8.7 MB`).
    pub peak: String,
}

impl Measured {
    /// The `load` row of `results.tsv` for `system` in `scenario`.
    pub fn row(&self, scenario: &str, system: &str, note: &str) -> String {
        let switches = self
            .usage
            .switches
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"));
        format!(
            "load\t{scenario}\t{system}\t{:.0}\t{:.2}\t{:.2}\t{}\t{:.1}\t{}\t{note}\t{switches}",
            self.counted.rps,
            self.counted.p50_ms,
            self.counted.p99_ms,
            self.counted.errors,
            self.usage.cpu_us,
            self.peak
        )
    }
}

/// What the load generator counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counted {
    /// Requests answered.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Failed requests: errors, timeouts and answers that are not a success.
    pub errors: u64,
}

impl Load {
    /// Runs the warm-up, then the measured run with `processes` sampled around it. The load
    /// generator's output stays in `work` as `h2load-LABEL.*` or `wrk-LABEL.txt`.
    pub fn run(&self, work: &Path, label: &str, processes: &[Process]) -> anyhow::Result<Measured> {
        let files = Files::new(work, label, &self.target)?;
        // Its result does not matter: the warm-up only has to have run.
        let _ = self.command(&files, self.warm_up, false).output();
        usage::reset_peak(processes);
        let before = Sample::take(processes);
        let output = self
            .command(&files, self.seconds, true)
            .output()
            .with_context(|| format!("cannot run {}", files.tool))?;
        let after = Sample::take(processes);
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        std::fs::write(&files.output, &text)
            .with_context(|| format!("cannot write {}", files.output.display()))?;
        if !output.status.success() {
            eprintln!("{text}");
            bail!("{} failed ({})", files.tool, output.status);
        }
        let counted = match &self.target {
            Target::Grpc { .. } => h2load_counts(&text, &files.request_log)?,
            Target::Http { .. } => wrk_counts(&text)?,
        };
        Ok(Measured {
            counted,
            usage: Usage::between(&before, &after, counted.requests),
            peak: usage::peak_text(processes),
        })
    }

    /// The load generator's command line, for a run of `seconds`; the measured run also writes
    /// h2load's request log or runs wrk's report hook.
    fn command(&self, files: &Files, seconds: u64, measured: bool) -> Command {
        let mut command = Command::new(files.tool);
        command.args(["-t", "1", "-c", &self.connections.to_string()]);
        match &self.target {
            Target::Grpc { addr, streams } => {
                command.args(["-m", &streams.to_string(), "-D", &seconds.to_string()]);
                command.arg("-d").arg(&files.input);
                command.args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
                if measured {
                    command.arg(format!("--log-file={}", files.request_log.display()));
                }
                command.arg(format!("http://{addr}/Recommendations/Recommend"));
            }
            Target::Http { url } => {
                command.args(["-d", &format!("{seconds}s")]);
                if measured {
                    command.args(["--timeout", "5s", "-s"]).arg(&files.input);
                }
                command.arg(url);
            }
        }
        command
    }
}

/// The files of one load run.
struct Files {
    tool: &'static str,
    /// What the tool reads: the request body (h2load) or the report hook (wrk).
    input: PathBuf,
    /// The tool's output.
    output: PathBuf,
    /// h2load's per-request log.
    request_log: PathBuf,
}

impl Files {
    fn new(work: &Path, label: &str, target: &Target) -> anyhow::Result<Files> {
        let (tool, input, contents) = match target {
            Target::Grpc { .. } => (
                "h2load",
                work.join("request.bin"),
                grpc::framed(&grpc::seed_request()),
            ),
            Target::Http { .. } => (
                "wrk",
                work.join("wrk-report.lua"),
                WRK_REPORT.as_bytes().to_vec(),
            ),
        };
        std::fs::write(&input, contents)
            .with_context(|| format!("cannot write {}", input.display()))?;
        let request_log = work.join(format!("{tool}-{label}.log"));
        // h2load appends to its log file.
        let _ = std::fs::remove_file(&request_log);
        Ok(Files {
            tool,
            input,
            output: work.join(format!("{tool}-{label}.txt")),
            request_log,
        })
    }
}

/// h2load's counts: its summary for req/s and failures, its request log for percentiles.
///
/// h2load's `failed` holds its `errored` and `timeout` requests and every non-2xx answer. It
/// sees HTTP statuses only; grpc-status is checked by `bench-tool check`.
fn h2load_counts(summary: &str, request_log: &Path) -> anyhow::Result<Counted> {
    let rps = summary
        .lines()
        .find_map(|line| line.strip_prefix("finished in ")?.split(", ").nth(1))
        .and_then(|part| part.strip_suffix(" req/s")?.parse().ok())
        .context("no req/s in h2load's output")?;
    let errors = summary
        .lines()
        .find_map(|line| line.strip_prefix("requests: "))
        .and_then(|line| {
            line.split(", ")
                .find_map(|part| part.strip_suffix(" failed")?.parse().ok())
        })
        .context("no failed count in h2load's output")?;
    let log = stats::h2load_log(request_log)?;
    Ok(Counted {
        requests: log.requests as u64,
        rps,
        p50_ms: log.p50_ms,
        p99_ms: log.p99_ms,
        errors,
    })
}

/// wrk's counts, from the `BENCH` line of `wrk-report.lua`: requests, duration µs, p50 µs,
/// p99 µs, errors.
fn wrk_counts(output: &str) -> anyhow::Result<Counted> {
    let fields: Vec<f64> = output
        .lines()
        .find_map(|line| line.strip_prefix("BENCH\t"))
        .context("no BENCH line in wrk's output")?
        .split('\t')
        .map(|field| field.trim().parse())
        .collect::<Result<_, _>>()
        .context("a malformed BENCH line")?;
    let [requests, micros, p50, p99, errors] = fields[..] else {
        bail!("a BENCH line of {} fields", fields.len());
    };
    Ok(Counted {
        requests: requests as u64,
        rps: if micros > 0.0 {
            requests / (micros / 1e6)
        } else {
            0.0
        },
        p50_ms: p50 / 1000.0,
        p99_ms: p99 / 1000.0,
        errors: errors as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_counts_come_from_the_bench_line() {
        let output = "Running 2s test @ http://127.0.0.1:1/\nBENCH\t20000\t2000000\t810\t1560\t0\n";
        assert_eq!(
            wrk_counts(output).ok(),
            Some(Counted {
                requests: 20000,
                rps: 10000.0,
                p50_ms: 0.81,
                p99_ms: 1.56,
                errors: 0
            })
        );
        assert!(wrk_counts("no line").is_err());
    }

    #[test]
    fn h2load_counts_come_from_its_summary_and_log() {
        let dir = std::env::temp_dir().join(format!("bench-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let log = dir.join("log");
        std::fs::write(&log, "1\t200\t500\n2\t200\t1500\n").ok();
        let summary = "finished in 2.00s, 46237.50 req/s, 5.20MB/s\n\
            requests: 92475 total, 92539 started, 92475 done, 92472 succeeded, 3 failed, 0 errored, 0 timeout\n";
        let counted = h2load_counts(summary, &log).ok();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            counted,
            Some(Counted {
                requests: 2,
                rps: 46237.5,
                p50_ms: 0.5,
                p99_ms: 1.5,
                errors: 3
            })
        );
    }

    #[test]
    fn a_row_without_switches_shows_a_dash() {
        let measured = Measured {
            counted: Counted {
                requests: 100,
                rps: 1234.4,
                p50_ms: 0.5,
                p99_ms: 1.25,
                errors: 0,
            },
            usage: Usage {
                cpu_us: 41.04,
                switches: None,
            },
            peak: "mkt 9.4 + rec 8.7 MB".to_owned(),
        };
        assert_eq!(
            measured.row("page", "ours", ""),
            "load\tpage\tours\t1234\t0.50\t1.25\t0\t41.0\tmkt 9.4 + rec 8.7 MB\t\t-"
        );
    }
}
