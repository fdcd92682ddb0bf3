//! Scenarios 1–3: an h2load or wrk run after a warm-up, and what the servers used (`/proc`).

use std::{collections::BTreeSet, fmt::Display, fs, str::FromStr};

use anyhow::{Context as _, bail};
use bookshop_proto::BookCategory;
use prost::Message as _;
use tokio::process::Command;

/// `/proc` CPU times are in ticks of USER_HZ, 100 a second on Linux (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// `bench-tool load`: one load run, appended as a `load` row.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario (`recommend`, `page`, `json`, `recommend-1`, `page-1`)
    scenario: String,
    /// Whose server it is (`ours`, `seed`, `floor`, `ours-mtls`, …)
    system: String,
    /// `host:port` for h2load's `Recommend` calls, or a URL for wrk's GETs
    target: String,
    /// The servers that answer (NAME=PID), whose CPU, switches and peak RSS are read
    #[arg(required = true)]
    servers: Vec<Server>,
    /// Connections [default: 8 for h2load, 16 for wrk]
    #[arg(short = 'c')]
    connections: Option<u32>,
    /// `Recommend` calls in flight on each connection
    #[arg(short = 'm', default_value_t = 8)]
    streams: u32,
    /// A note shown beside the system
    #[arg(long, default_value = "")]
    note: String,
}

/// Requests, req/s, p50 and p99 ms, errors; the servers' CPU µs, switches per request, peak RSS.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub counts: [f64; 5],
    pub cpu_us: f64,
    pub switches: Option<f64>,
    pub peak: String,
}

impl Measured {
    pub fn rps(&self) -> f64 {
        self.counts[1]
    }

    /// The `load` row (see `report`).
    pub fn row(&self, scenario: &str, system: &str, note: &str) -> String {
        let [_, rps, p50, p99, errors] = self.counts;
        let switches = self.switches.map_or("-".to_owned(), |s| format!("{s:.2}"));
        let usage = format!("{:.1}\t{switches}\t{}", self.cpu_us, self.peak);
        let counts = format!("{rps:.0}\t{p50:.2}\t{p99:.2}\t{errors}");
        format!("load\t{scenario}\t{system}\t{note}\t{counts}\t{usage}")
    }
}

/// `bench-tool load`.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let default = if http(&args.target) { 16 } else { 8 };
    let connections = args.connections.unwrap_or(default);
    let label = &format!("{}-{}", args.scenario, args.system);
    let (target, servers) = (&args.target, &args.servers);
    let measured = run(target, connections, args.streams, servers, label).await;
    let measured = measured.with_context(|| format!("the load on {label} failed"))?;
    crate::record(&measured.row(&args.scenario, &args.system, &args.note))
}

fn http(target: &str) -> bool {
    target.starts_with("http://")
}

/// The warm-up (`BENCH_WARM_UP` s), then the measured run (`BENCH_SECONDS` s) read around.
pub async fn run(
    target: &str,
    connections: u32,
    streams: u32,
    servers: &[Server],
    label: &str,
) -> anyhow::Result<Measured> {
    let file = |ext| crate::path(&format!("work/{label}.{ext}"));
    let (input, log, kept) = (file("in")?, file("log")?, file("txt")?);
    let (tool, contents) = match http(target) {
        true => ("wrk", include_bytes!("../wrk-report.lua").to_vec()),
        false => ("h2load", request_body()),
    };
    fs::write(&input, contents).context("cannot write the load's input")?;
    // h2load appends to its log, which gives the percentiles and the request count.
    let _ = fs::remove_file(&log);
    let command = |seconds: String, measured: bool| {
        let mut command = Command::new(tool);
        command.args(["-t", "1", "-c", &connections.to_string()]);
        if http(target) {
            command.args(["-d", &format!("{seconds}s")]);
            if measured {
                command.args(["--timeout", "5s", "-s"]).arg(&input);
            }
            command.arg(target);
        } else {
            let grpc = ["-H", "content-type: application/grpc", "-H", "te: trailers"];
            command.args(["-m", &streams.to_string(), "-D", &seconds]);
            command.arg("-d").arg(&input).args(grpc);
            if measured {
                command.arg(format!("--log-file={}", log.display()));
            }
            command.arg(format!("http://{target}/Recommendations/Recommend"));
        }
        command
    };
    // Its result does not matter: the warm-up only has to have run.
    let _ = command(crate::env("BENCH_WARM_UP")?, false).output().await;
    reset_peak(servers);
    let before = Sample::take(servers);
    let output = command(crate::env("BENCH_SECONDS")?, true).output().await;
    let after = Sample::take(servers);
    let output = output.with_context(|| format!("cannot run {tool}"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    fs::write(kept, &text)?;
    if !output.status.success() {
        bail!("{tool} failed ({}):\n{text}", output.status);
    }
    let counts = match http(target) {
        true => wrk_counts(&text),
        false => h2load_counts(&text, &fs::read_to_string(&log)?),
    };
    let counts = counts.with_context(|| format!("cannot read {tool}'s output:\n{text}"))?;
    let (cpu_us, switches) = before.per_request(&after, counts[0] as u64);
    let peak = peak_text(servers);
    Ok(Measured { counts, cpu_us, switches, peak })
}

/// The seed's request as a gRPC message (flag 0, big-endian length, protobuf): h2load's body.
pub fn request_body() -> Vec<u8> {
    let message = crate::request(BookCategory::Mystery, 3).encode_to_vec();
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    [&[0], &length.to_be_bytes()[..], &message].concat()
}

/// h2load's req/s and failed requests (it sees HTTP statuses only), percentiles from its log.
fn h2load_counts(summary: &str, log: &str) -> Option<[f64; 5]> {
    let rps = crate::after(summary, "finished in ")?.split(", ").nth(1)?;
    let failed = crate::after(summary, "requests: ")?.split(", ").nth(4)?;
    let micros = |line: &str| line.split('\t').nth(2)?.parse().ok();
    let mut micros: Vec<f64> = log.lines().filter_map(micros).collect();
    micros.sort_unstable_by(f64::total_cmp);
    let ms = |p| crate::percentile(&micros, p) / 1000.0;
    let (rps, failed) = (rps.strip_suffix(" req/s")?, failed.strip_suffix(" failed")?);
    let requests = micros.len() as f64;
    Some([requests, rps.parse().ok()?, ms(50.0), ms(99.0), failed.parse().ok()?])
}

/// wrk's counts, from `wrk-report.lua`'s line.
fn wrk_counts(output: &str) -> Option<[f64; 5]> {
    let fields = crate::after(output, "BENCH\t")?.split('\t').map(str::parse);
    let fields: Vec<f64> = fields.collect::<Result<_, _>>().ok()?;
    fields.try_into().ok()
}

/// A server of the run: the name `bench/run.sh` started it as, and its pid (`NAME=PID`).
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub pid: u32,
}

impl FromStr for Server {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Server> {
        let (name, pid) = text.split_once('=').context("a server is NAME=PID")?;
        Ok(Server::new(name, pid.parse()?))
    }
}

impl Server {
    pub fn new(name: &str, pid: u32) -> Server {
        let name = name.to_owned();
        Server { name, pid }
    }

    /// The bytes it has read so far, from files and sockets (`rchar` of `/proc/PID/io`).
    pub fn read_bytes(&self) -> anyhow::Result<u64> {
        let io = fs::read_to_string(format!("/proc/{}/io", self.pid))?;
        crate::after(&io, "rchar:").and_then(|v| v.trim().parse().ok()).context("no rchar")
    }

    /// A field of its `/proc/PID/status` in MB (`VmRSS`, `VmHWM`).
    pub fn mb(&self, field: &str) -> anyhow::Result<f64> {
        let kb = status(self.pid, field).with_context(|| format!("{} has exited", self.name))?;
        Ok(kb as f64 / 1024.0)
    }
}

/// A number field of `/proc/PID/status`, or of a thread's (`PID/task/TID`).
fn status(pid: impl Display, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = crate::after(&status, &format!("{field}:"))?;
    value.split_whitespace().next()?.parse().ok()
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid, … (`proc(5)`).
fn stat(pid: impl Display) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = text.rsplit_once(") ")?.1.split_whitespace();
    Some(fields.map(str::to_owned).collect())
}

/// User + system CPU ticks of a process or thread.
fn ticks(pid: impl Display) -> Option<u64> {
    let fields = stat(pid)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Whether `pid` is running (a zombie has exited, unreaped).
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|fields| fields[0] != "Z")
}

/// The numbered entries of a `/proc` directory: processes, or a process's threads.
fn ids(dir: &str) -> Vec<u32> {
    let entries = fs::read_dir(dir).into_iter().flatten().flatten();
    let ids = entries.filter_map(|e| e.file_name().to_str()?.parse().ok());
    ids.collect()
}

/// `pid` and its children (gunicorn's workers count with it).
fn family(pid: u32) -> Vec<u32> {
    let parent = |child| stat(child).and_then(|fields| fields.get(1)?.parse().ok());
    let mut family = ids("/proc");
    family.retain(|child| *child == pid || parent(*child) == Some(pid));
    family
}

/// The servers' CPU ticks, and the threads alive with their context switches and ticks.
#[derive(Debug, Default)]
struct Sample {
    process_ticks: u64,
    threads: BTreeSet<u32>,
    switches: u64,
    thread_ticks: u64,
}

impl Sample {
    fn take(servers: &[Server]) -> Sample {
        let mut sample = Sample::default();
        for pid in servers.iter().flat_map(|server| family(server.pid)) {
            sample.process_ticks += ticks(pid).unwrap_or(0);
            for tid in ids(&format!("/proc/{pid}/task")) {
                let task = format!("{pid}/task/{tid}");
                let voluntary = status(&task, "voluntary_ctxt_switches");
                let switches = voluntary.zip(status(&task, "nonvoluntary_ctxt_switches"));
                // A thread may exit between the listing and the reading: then it is left out.
                if let (Some((voluntary, forced)), Some(ticks)) = (switches, ticks(&task)) {
                    sample.switches += voluntary + forced;
                    sample.thread_ticks += ticks;
                    sample.threads.insert(tid);
                }
            }
        }
        sample
    }

    /// CPU µs and switches per request; switches only if the same threads did it all, since one
    /// that exits (Flask's, per request) takes its count along (two ticks of slack).
    fn per_request(&self, after: &Sample, requests: u64) -> (f64, Option<f64>) {
        let n = requests.max(1) as f64;
        let process_ticks = after.process_ticks.saturating_sub(self.process_ticks);
        let thread_ticks = after.thread_ticks.saturating_sub(self.thread_ticks);
        let same = self.threads == after.threads && process_ticks <= thread_ticks + 2;
        let switches = after.switches.saturating_sub(self.switches) as f64 / n;
        let cpu_us = process_ticks as f64 / TICKS_PER_SECOND * 1e6 / n;
        (cpu_us, (same && requests > 0).then_some(switches))
    }
}

/// Resets the peak RSS (`VmHWM`) of the servers and their children.
pub fn reset_peak(servers: &[Server]) {
    for pid in servers.iter().flat_map(|server| family(server.pid)) {
        // Refused for processes of other users; then the peak covers their whole life.
        let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// The peak RSS of each server, summed over its children: `mkt 9.4 + rec 8.7 MB`.
fn peak_text(servers: &[Server]) -> String {
    let peak = |server: &Server| {
        let peak = |pid| status(pid, "VmHWM");
        let kb: u64 = family(server.pid).into_iter().filter_map(peak).sum();
        format!("{} {:.1}", server.name, kb as f64 / 1024.0)
    };
    let peaks: Vec<String> = servers.iter().map(peak).collect();
    format!("{} MB", peaks.join(" + "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_is_flag_length_and_message() {
        // user_id = 1 (field 1) and max_results = 3 (field 3); MYSTERY is 0, left out.
        assert_eq!(request_body(), [0, 0, 0, 0, 4, 0x08, 0x01, 0x18, 0x03]);
    }

    #[test]
    fn the_counts_come_from_the_tools_output() {
        let wrk = wrk_counts("Running 2s test\nBENCH\t20000\t10000.0\t0.81\t1.56\t3\n");
        assert_eq!(wrk, Some([20000.0, 10000.0, 0.81, 1.56, 3.0]));
        let summary = "finished in 2.00s, 46237.50 req/s, 5.20MB/s\nrequests: 92475 total, \
            92539 started, 92475 done, 92472 succeeded, 3 failed, 0 errored, 0 timeout\n";
        let h2load = h2load_counts(summary, "1\t200\t500\n2\t200\t1500\n");
        assert_eq!(h2load, Some([2.0, 46237.5, 0.5, 1.5, 3.0]));
    }

    #[test]
    fn switches_count_only_when_the_same_threads_did_all_the_work() {
        let sample = |process_ticks, switches, threads: &[u32], thread_ticks| Sample {
            process_ticks,
            threads: threads.iter().copied().collect(),
            switches,
            thread_ticks,
        };
        let before = sample(100, 1000, &[1, 2], 90);
        let kept = before.per_request(&sample(200, 3000, &[1, 2], 189), 1000);
        assert_eq!(kept, (1000.0, Some(2.0)));
        let replaced = before.per_request(&sample(200, 3000, &[1, 3], 189), 1000);
        assert_eq!(replaced.1, None);
        let came_and_went = before.per_request(&sample(200, 3000, &[1, 2], 150), 1000);
        assert_eq!(came_and_went.1, None);
    }

    #[test]
    fn this_process_is_read() -> anyhow::Result<()> {
        let me: Server = format!("me={}", std::process::id()).parse()?;
        assert!(Sample::take(std::slice::from_ref(&me)).threads.contains(&me.pid));
        assert!(me.mb("VmRSS")? > 0.0);
        assert!(peak_text(&[me]).starts_with("me "));
        Ok(())
    }
}
