//! The benchmark harness (docs/benchmarks.md): the floors, and `bench-tool`'s measurements of
//! the servers `bench/run.sh` starts, through their external interfaces only.

pub mod catalog;
pub mod live;
pub mod load;
pub mod reload;
pub mod report;
pub mod sink;
pub mod start;

use std::{
    fs::File,
    future::Future,
    io::Write as _,
    path::PathBuf,
    sync::{LazyLock, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use anyhow::Context as _;
use bookshop_proto::{BookCategory, RecommendationRequest};
use tokio::signal::unix::{SignalKind, signal};
use tonic::transport::{Channel, Endpoint};

/// A `Recommend` client.
pub type Client = bookshop_proto::recommendations_client::RecommendationsClient<Channel>;

/// The HTTP client: no proxy, and a new connection for every request, as a first visit makes.
pub static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0);
    client.no_proxy().build().unwrap_or_default()
});

/// `http://addr` (`host:port`), with the socket option the Marketplace's channel has.
pub fn endpoint(addr: &str) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    Ok(endpoint.tcp_nodelay(true))
}

/// A `Recommend` client on its own HTTP/2 connection to `addr`.
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
    let channel = endpoint(addr)?.connect().await;
    let channel = channel.with_context(|| format!("cannot connect to {addr}"))?;
    Ok(Client::new(channel))
}

/// `Recommend(category, max_results)` for user 1; mystery and 3 is the seed Marketplace's.
pub fn request(category: BookCategory, max_results: i32) -> RecommendationRequest {
    let category = category as i32;
    RecommendationRequest { user_id: 1, category, max_results }
}

/// The value behind `mutex`, even if a thread panicked holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What follows `prefix` on the first line of `text` that starts with it.
pub fn after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(prefix))
}

/// `bytes` in MB, for the tables.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

/// The `p`-th percentile (0–100, nearest rank) of `sorted`; the default when it is empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

/// The p50, p99 and max of `latencies`, in ms (0 when there are none).
pub fn p50_p99_max(latencies: &[Duration]) -> [f64; 3] {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    [50.0, 99.0, 100.0].map(|p| percentile(&sorted, p).as_secs_f64() * 1000.0)
}

/// A setting from the environment `bench/run.sh` gives: `BENCH_DIR`, `BENCH_SECONDS`, ….
pub fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (bench/run.sh sets it)"))
}

/// `name` in the run's directory (`BENCH_DIR`).
pub fn path(name: &str) -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(env("BENCH_DIR")?).join(name))
}

/// Appends `row` (tab-separated, its kind first; see [`report`]) to the results, and to stderr.
pub fn record(row: &str) -> anyhow::Result<()> {
    let path = path("results.tsv")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = File::options().create(true).append(true).open(&path);
    let file = file.with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(&file, "{row}").with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("{row}");
    Ok(())
}

/// Appends a `target` row: what was aimed at and what came, met or not.
pub fn target(text: &str, met: bool) -> anyhow::Result<()> {
    let met = if met { "met" } else { "missed" };
    record(&format!("target\t{text}\t{met}"))
}

/// The first SIGTERM or Ctrl-C from this call on (called before listening: none is lost).
pub fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
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
}
