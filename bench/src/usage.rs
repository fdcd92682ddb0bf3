//! What the servers used during a load run, read from `/proc`: CPU time, context switches per
//! request, and peak memory. A server counts with its children (gunicorn's workers).

use std::{collections::BTreeSet, path::Path, process::Command};

use crate::run::Process;

/// A reading of the servers before or after a load run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// CPU ticks of the processes: every thread they ever had, the exited ones too.
    process_ticks: u64,
    /// Context switches (voluntary or not) of the threads alive now.
    switches: u64,
    /// Which threads those are.
    threads: BTreeSet<u32>,
    /// The CPU ticks of those threads.
    thread_ticks: u64,
}

impl Sample {
    /// Reads the processes, their children and all of their threads now.
    pub fn take(processes: &[Process]) -> Sample {
        let mut sample = Sample::default();
        for pid in processes.iter().flat_map(|p| family(p.pid)) {
            sample.process_ticks += cpu_ticks(Path::new(&format!("/proc/{pid}/stat"))).unwrap_or(0);
            let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for thread in threads.flatten() {
                let Some(tid) = thread.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                // A thread may exit between the listing and the reading: then it is left out.
                let dir = thread.path();
                let (Some(switches), Some(ticks)) =
                    (switches(&dir.join("status")), cpu_ticks(&dir.join("stat")))
                else {
                    continue;
                };
                sample.switches += switches;
                sample.thread_ticks += ticks;
                sample.threads.insert(tid);
            }
        }
        sample
    }
}

/// The servers' usage over a run, per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User + system CPU time, in µs.
    pub cpu_us: f64,
    /// Context switches, or `None` when threads came and went during the run.
    pub switches: Option<f64>,
}

impl Usage {
    /// The usage between two samples, for `requests` requests.
    ///
    /// A thread that exits takes its switch count with it, so switches are given only when the
    /// same threads lived through the whole run: the same thread ids at both ends, and no CPU
    /// time of the processes that those threads do not account for (Flask's own server starts
    /// a thread per request). Two ticks of slack allow for the readings' rounding.
    pub fn between(before: &Sample, after: &Sample, requests: u64) -> Usage {
        if requests == 0 {
            return Usage {
                cpu_us: 0.0,
                switches: None,
            };
        }
        let n = requests as f64;
        let process_ticks = after.process_ticks.saturating_sub(before.process_ticks);
        let thread_ticks = after.thread_ticks.saturating_sub(before.thread_ticks);
        let same_threads =
            before.threads == after.threads && process_ticks.saturating_sub(thread_ticks) <= 2;
        Usage {
            cpu_us: process_ticks as f64 / ticks_per_second() * 1e6 / n,
            switches: same_threads
                .then(|| after.switches.saturating_sub(before.switches) as f64 / n),
        }
    }
}

/// Resets the peak RSS (`VmHWM`) of the processes and their children, so that a reading after
/// the run is that run's peak.
pub fn reset_peak(processes: &[Process]) {
    for pid in processes.iter().flat_map(|p| family(p.pid)) {
        // Refused for processes of other users; then the peak covers their whole life.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// The peak RSS of each server (summed over its children), as `mkt 9.4 + rec 8.7 MB`.
pub fn peak_text(processes: &[Process]) -> String {
    let parts: Vec<String> = processes
        .iter()
        .map(|process| {
            let kb: u64 = family(process.pid)
                .into_iter()
                .filter_map(|pid| status_kb(pid, "VmHWM"))
                .sum();
            format!("{} {:.1}", process.name, kb as f64 / 1024.0)
        })
        .collect();
    format!("{} MB", parts.join(" + "))
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), or `None` if the process is gone.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, field)
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// `pid` and its children.
fn family(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(other) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if stat_fields(&entry.path().join("stat")).and_then(|f| f.get(1)?.parse().ok()) == Some(pid)
        {
            pids.push(other);
        }
    }
    pids
}

/// The fields of a `/proc/…/stat` file after the command name: state, ppid, … (`proc(5)`).
fn stat_fields(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system CPU ticks from a `/proc/…/stat` file.
fn cpu_ticks(path: &Path) -> Option<u64> {
    let fields = stat_fields(path)?;
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(field(11)? + field(12)?)
}

/// Voluntary and involuntary context switches from a `/proc/…/status` file.
fn switches(path: &Path) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    Some(
        status_field(&status, "voluntary_ctxt_switches")?
            + status_field(&status, "nonvoluntary_ctxt_switches")?,
    )
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`: 100 on Linux).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(process_ticks: u64, switches: u64, threads: &[u32], thread_ticks: u64) -> Sample {
        Sample {
            process_ticks,
            switches,
            threads: threads.iter().copied().collect(),
            thread_ticks,
        }
    }

    #[test]
    fn switches_are_given_only_when_the_same_threads_did_all_the_work() {
        let before = sample(100, 1000, &[1, 2], 90);
        let kept = sample(200, 3000, &[1, 2], 189);
        assert_eq!(
            Usage::between(&before, &kept, 1000).switches,
            Some(2.0),
            "the same threads"
        );
        let replaced = sample(200, 3000, &[1, 3], 189);
        assert_eq!(Usage::between(&before, &replaced, 1000).switches, None);
        let came_and_went = sample(200, 3000, &[1, 2], 150);
        assert_eq!(Usage::between(&before, &came_and_went, 1000).switches, None);
        assert_eq!(Usage::between(&before, &kept, 0).switches, None);
    }

    #[test]
    fn this_process_is_read() {
        let me = Process {
            name: "me".to_owned(),
            pid: std::process::id(),
        };
        let sample = Sample::take(std::slice::from_ref(&me));
        assert!(sample.threads.contains(&me.pid), "{sample:?}");
        assert!(peak_text(&[me]).starts_with("me "));
        assert!(status_kb(std::process::id(), "VmRSS").is_some_and(|kb| kb > 0));
        assert_eq!(status_kb(std::process::id(), "NoSuchField"), None);
    }
}
