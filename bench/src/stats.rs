//! Percentiles and `h2load` request logs.

use std::{path::Path, time::Duration};

use anyhow::Context;

/// The `p`-th percentile (0–100, nearest rank) of `sorted` values; 0 when empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with a fractional part, for tables.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// What an `h2load --log-file` says about the requests it logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLog {
    /// Requests logged.
    pub requests: usize,
    /// Requests whose HTTP status was not 200.
    pub not_ok: usize,
    /// Median time to the end of the response, in ms.
    pub p50_ms: f64,
    /// 99th percentile, in ms.
    pub p99_ms: f64,
}

/// Reads an `h2load --log-file`: tab-separated start time (µs since the epoch), HTTP status and
/// time to the end of the response (µs), one request a line.
pub fn h2load_log(path: &Path) -> anyhow::Result<RequestLog> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut micros = Vec::new();
    let mut not_ok = 0;
    for line in text.lines() {
        let mut columns = line.split('\t').skip(1);
        let (Some(status), Some(duration)) = (columns.next(), columns.next()) else {
            continue;
        };
        if status != "200" {
            not_ok += 1;
        }
        if let Ok(us) = duration.trim().parse::<u64>() {
            micros.push(us);
        }
    }
    micros.sort_unstable();
    Ok(RequestLog {
        requests: micros.len(),
        not_ok,
        p50_ms: percentile(&micros, 50.0) as f64 / 1000.0,
        p99_ms: percentile(&micros, 99.0) as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7u32], 99.0), 7);
        assert_eq!(percentile::<u32>(&[], 99.0), 0);
    }

    #[test]
    fn an_h2load_log_gives_percentiles_and_failures() {
        let dir = std::env::temp_dir().join(format!("bench-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("log");
        let lines: String = (1..=100)
            .map(|i| {
                format!(
                    "1700000000{i:06}\t{}\t{}\n",
                    if i == 3 { 503 } else { 200 },
                    i * 10
                )
            })
            .collect();
        std::fs::write(&path, lines).ok();
        let log = h2load_log(&path).ok();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            log,
            Some(RequestLog {
                requests: 100,
                not_ok: 1,
                p50_ms: 0.5,
                p99_ms: 0.99
            })
        );
    }
}
