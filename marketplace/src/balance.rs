//! Client-side load balancing over the Recommendations replicas.
//!
//! One long-lived HTTP/2 connection sends every call to one replica, and a Kubernetes ClusterIP
//! balances connections, not calls. So the Marketplace resolves the Recommendations name itself
//! (a Compose service with `--scale`, a Kubernetes headless Service, or a list of addresses) every
//! `recommendations.resolve_interval_ms`, keeps one lazily connected channel per address, and
//! picks a replica for each call:
//!
//! - **Power of two choices** on calls in flight: two random eligible replicas, the less busy one
//!   wins. tonic's own `Channel::balance_channel` is not used because its endpoints all report a
//!   load of 0 (so its p2c is a plain random pick) and it cannot say which endpoint failed a call,
//!   so a dead replica would keep getting its share of calls until DNS dropped it.
//! - **Ejection**: a replica whose call fails with `UNAVAILABLE` (connection refused or reset,
//!   GOAWAY, not ready) or runs out of time is skipped for 1 s, doubling on each further failure up
//!   to 30 s, and comes back with its next successful call. Every failure also asks for an early
//!   re-resolution (at most one a second), so vanished replicas are dropped quickly.
//! - **One retry**: a call that failed with `UNAVAILABLE` never reached the service, so it is
//!   retried once on another replica within what is left of the deadline. A replica that dies
//!   therefore costs at most the calls already in flight to it.
//! - When every replica is ejected, the one due back first is tried anyway, so a full outage
//!   recovers on the first call after Recommendations is back.
//!
//! Where a name resolves to both IPv4 and IPv6 addresses (dual-stack hosts, `localhost`), only the
//! IPv4 ones are used: they are the same replicas twice, not more replicas.

use std::{
    collections::BTreeSet,
    fmt,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Weak,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bookshop_common::{millis, net::HostPort};
use rand::RngExt;
use tokio::sync::Notify;
use tonic::transport::Channel;

/// How long a replica is skipped after its first failure; doubled per further failure.
pub const EJECTION_BASE: Duration = Duration::from_secs(1);
/// The longest a failing replica is skipped before it is tried again.
pub const EJECTION_MAX: Duration = Duration::from_secs(30);
/// The shortest gap between two resolutions asked for by failures.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// A resolution in flight.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Finds the addresses of the Recommendations replicas. [`DnsResolver`] in production; tests
/// plug in their own to add and remove replicas at will.
pub trait Resolve: Send + Sync + fmt::Debug + 'static {
    /// The current addresses.
    fn resolve(&self) -> ResolveFuture<'_>;
}

/// Resolves `host:port` targets through the system resolver (getaddrinfo), on every call.
#[derive(Debug, Clone)]
pub struct DnsResolver {
    targets: Vec<HostPort>,
}

impl DnsResolver {
    /// A resolver for these targets; the union of their addresses is the pool.
    pub fn new(targets: Vec<HostPort>) -> Self {
        DnsResolver { targets }
    }
}

impl Resolve for DnsResolver {
    fn resolve(&self) -> ResolveFuture<'_> {
        Box::pin(async move {
            let mut all = BTreeSet::new();
            let mut last_error = None;
            for target in &self.targets {
                match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                    Ok(addrs) => all.extend(prefer_ipv4(addrs.collect())),
                    Err(error) => {
                        last_error = Some(io::Error::new(
                            error.kind(),
                            format!("cannot resolve {target}: {error}"),
                        ));
                    }
                }
            }
            match (all.is_empty(), last_error) {
                (true, Some(error)) => Err(error),
                _ => Ok(all.into_iter().collect()),
            }
        })
    }
}

/// The IPv4 addresses if there are any, else all of them.
fn prefer_ipv4(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    if addrs.iter().any(SocketAddr::is_ipv4) {
        addrs.into_iter().filter(SocketAddr::is_ipv4).collect()
    } else {
        addrs
    }
}

/// Makes the channel for one replica address (connect timeout, keepalive, later TLS).
pub type MakeChannel = Arc<dyn Fn(SocketAddr) -> Channel + Send + Sync>;

/// One replica: its channel and what the balancer knows about it.
#[derive(Debug)]
pub struct Replica {
    addr: SocketAddr,
    channel: Channel,
    in_flight: AtomicUsize,
    calls: AtomicU64,
    failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the replica is skipped (0: never).
    ejected_until_ms: AtomicU64,
}

impl Replica {
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its channel (cheap to clone).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// What the balancer knows about a replica, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// The address.
    pub addr: SocketAddr,
    /// Calls sent to it so far.
    pub calls: u64,
    /// Failures in a row.
    pub failures: u32,
    /// Whether it is skipped right now.
    pub ejected: bool,
}

/// A call in progress on a replica; report how it ended with [`Attempt::succeeded`] or
/// [`Attempt::failed`]. Dropping it (a cancelled request) counts as neither.
#[derive(Debug)]
pub struct Attempt {
    replica: Arc<Replica>,
    pool: Arc<Inner>,
}

impl Attempt {
    /// The replica this attempt goes to.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The replica answered (whatever the answer): it is healthy.
    pub fn succeeded(&self) {
        if self.replica.failures.swap(0, Ordering::Relaxed) > 0 {
            self.replica.ejected_until_ms.store(0, Ordering::Relaxed);
            tracing::info!(replica = %self.replica.addr, "Recommendations replica answers again");
        }
    }

    /// The replica could not be reached or did not answer in time: skip it for a while, and
    /// re-resolve soon in case it is gone.
    pub fn failed(&self) {
        let failures = self.replica.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff = EJECTION_BASE
            .saturating_mul(1 << (failures - 1).min(5))
            .min(EJECTION_MAX);
        let until = self.pool.now_ms() + millis(backoff);
        self.replica
            .ejected_until_ms
            .store(until, Ordering::Relaxed);
        if failures == 1 {
            tracing::warn!(
                replica = %self.replica.addr,
                skipped_ms = millis(backoff),
                "Recommendations replica failed; skipping it for a while"
            );
        }
        self.pool.refresh_soon.notify_one();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.replica.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Inner {
    resolver: Box<dyn Resolve>,
    make_channel: MakeChannel,
    replicas: ArcSwap<Vec<Arc<Replica>>>,
    epoch: Instant,
    /// One resolution at a time; holds the last resolution error, logged once per change.
    resolving: tokio::sync::Mutex<Option<String>>,
    refresh_soon: Notify,
    interval: Duration,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaPool")
            .field("resolver", &self.resolver)
            .field("replicas", &self.replicas.load())
            .field("interval", &self.interval)
            .finish()
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// Resolves and updates the replica set. On an error, or an empty answer, the current set
    /// is kept: a resolver hiccup must not empty a working pool.
    async fn refresh(&self) {
        let mut last_error = self.resolving.lock().await;
        match self.resolver.resolve().await {
            Ok(addrs) if !addrs.is_empty() => {
                if last_error.take().is_some() {
                    tracing::info!("Recommendations addresses resolve again");
                }
                self.apply(addrs);
            }
            outcome => {
                let error = match outcome {
                    Err(error) => error.to_string(),
                    Ok(_) => "no addresses".to_owned(),
                };
                if last_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(
                        %error,
                        kept = self.replicas.load().len(),
                        "cannot resolve the Recommendations replicas; keeping the ones known"
                    );
                    *last_error = Some(error);
                }
            }
        }
    }

    fn apply(&self, addrs: Vec<SocketAddr>) {
        let current = self.replicas.load_full();
        let wanted: BTreeSet<SocketAddr> = addrs.into_iter().collect();
        if current.len() == wanted.len() && current.iter().all(|r| wanted.contains(&r.addr)) {
            return;
        }
        let next: Vec<Arc<Replica>> = wanted
            .iter()
            .map(|addr| {
                current
                    .iter()
                    .find(|r| r.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| {
                        tracing::info!(replica = %addr, "Recommendations replica added");
                        Arc::new(Replica {
                            addr: *addr,
                            channel: (self.make_channel)(*addr),
                            in_flight: AtomicUsize::new(0),
                            calls: AtomicU64::new(0),
                            failures: AtomicU32::new(0),
                            ejected_until_ms: AtomicU64::new(0),
                        })
                    })
            })
            .collect();
        for gone in current.iter().filter(|r| !wanted.contains(&r.addr)) {
            tracing::info!(replica = %gone.addr, "Recommendations replica removed");
        }
        self.replicas.store(Arc::new(next));
    }

    /// Power of two choices among the replicas not ejected and not `exclude`; if none is left,
    /// the one due back first (still not `exclude`).
    fn choose(&self, exclude: Option<SocketAddr>) -> Option<Arc<Replica>> {
        let replicas = self.replicas.load();
        let now = self.now_ms();
        let allowed = |r: &&Arc<Replica>| Some(r.addr) != exclude;
        let eligible =
            |r: &&Arc<Replica>| allowed(r) && r.ejected_until_ms.load(Ordering::Relaxed) <= now;
        let count = replicas.iter().filter(eligible).count();
        match count {
            0 => replicas
                .iter()
                .filter(allowed)
                .min_by_key(|r| r.ejected_until_ms.load(Ordering::Relaxed))
                .cloned(),
            1 => replicas.iter().find(eligible).cloned(),
            _ => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..count);
                let b = (a + rng.random_range(1..count)) % count;
                let nth = |n| replicas.iter().filter(eligible).nth(n);
                let (a, b) = (nth(a)?, nth(b)?);
                let busy = |r: &Arc<Replica>| r.in_flight.load(Ordering::Relaxed);
                Some(if busy(b) < busy(a) { b } else { a }.clone())
            }
        }
    }
}

/// The replicas of Recommendations and the task that keeps the list current.
#[derive(Debug, Clone)]
pub struct ReplicaPool {
    inner: Arc<Inner>,
}

impl ReplicaPool {
    /// A pool fed by `resolver`, re-resolved every `interval` (and soon after a failure).
    /// Resolution starts at once in the background; must be called within a Tokio runtime.
    pub fn new(resolver: Box<dyn Resolve>, make_channel: MakeChannel, interval: Duration) -> Self {
        let inner = Arc::new(Inner {
            resolver,
            make_channel,
            replicas: ArcSwap::from_pointee(Vec::new()),
            epoch: Instant::now(),
            resolving: tokio::sync::Mutex::new(None),
            refresh_soon: Notify::new(),
            interval,
        });
        tokio::spawn(keep_resolving(Arc::downgrade(&inner)));
        ReplicaPool { inner }
    }

    /// Starts an attempt on a replica other than `exclude`. With no replica known yet (the
    /// first calls, or a name that did not resolve so far), resolves first, within `patience`.
    pub async fn attempt(
        &self,
        exclude: Option<SocketAddr>,
        patience: Duration,
    ) -> Option<Attempt> {
        let replica = match self.inner.choose(exclude) {
            Some(replica) => replica,
            None if exclude.is_none() => {
                let _ = tokio::time::timeout(patience, self.inner.refresh()).await;
                self.inner.choose(None)?
            }
            None => return None,
        };
        replica.in_flight.fetch_add(1, Ordering::Relaxed);
        replica.calls.fetch_add(1, Ordering::Relaxed);
        Some(Attempt {
            replica,
            pool: self.inner.clone(),
        })
    }

    /// How many replicas are known.
    pub fn len(&self) -> usize {
        self.inner.replicas.load().len()
    }

    /// Whether no replica is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replicas and what the balancer knows about them.
    pub fn states(&self) -> Vec<ReplicaState> {
        let now = self.inner.now_ms();
        self.inner
            .replicas
            .load()
            .iter()
            .map(|r| ReplicaState {
                addr: r.addr,
                calls: r.calls.load(Ordering::Relaxed),
                failures: r.failures.load(Ordering::Relaxed),
                ejected: r.ejected_until_ms.load(Ordering::Relaxed) > now,
            })
            .collect()
    }
}

/// Re-resolves every interval, or sooner when a failure asks (but not more than once per
/// [`MIN_REFRESH_GAP`]). Ends when the pool is dropped.
async fn keep_resolving(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        inner.refresh().await;
        let interval = inner.interval;
        drop(inner);
        tokio::time::sleep(MIN_REFRESH_GAP.min(interval)).await;
        let Some(inner) = pool.upgrade() else { return };
        let rest = interval.saturating_sub(MIN_REFRESH_GAP);
        tokio::select! {
            () = tokio::time::sleep(rest) => {}
            () = inner.refresh_soon.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{collections::HashMap, sync::Mutex};

    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 50051))
    }

    /// The tests' resolver: whatever the list holds.
    type Listed = Arc<Mutex<Vec<SocketAddr>>>;

    impl Resolve for Listed {
        fn resolve(&self) -> ResolveFuture<'_> {
            let addrs = self.lock().unwrap().clone();
            Box::pin(async move { Ok(addrs) })
        }
    }

    fn lazy_channel() -> MakeChannel {
        Arc::new(|addr: SocketAddr| {
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy()
        })
    }

    async fn pool_of(addrs: Vec<SocketAddr>) -> (ReplicaPool, Listed) {
        let resolver = Listed::new(Mutex::new(addrs));
        let pool = ReplicaPool::new(
            Box::new(resolver.clone()),
            lazy_channel(),
            Duration::from_millis(50),
        );
        pool.inner.refresh().await;
        (pool, resolver)
    }

    #[tokio::test]
    async fn calls_spread_over_every_replica() {
        let (pool, _) = pool_of(vec![addr(2), addr(3), addr(4)]).await;
        let mut counts: HashMap<SocketAddr, u32> = HashMap::new();
        for _ in 0..3000 {
            let attempt = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
            *counts.entry(attempt.replica().addr()).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        for (addr, count) in counts {
            assert!((800..=1200).contains(&count), "{addr}: {count}");
        }
    }

    #[tokio::test]
    async fn the_less_busy_of_two_replicas_is_chosen() {
        let (pool, _) = pool_of(vec![addr(2), addr(3)]).await;
        let busy = pool
            .inner
            .replicas
            .load()
            .iter()
            .find(|r| r.addr == addr(2))
            .cloned()
            .unwrap();
        busy.in_flight.fetch_add(5, Ordering::Relaxed);
        for _ in 0..50 {
            let attempt = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
            assert_eq!(attempt.replica().addr(), addr(3));
        }
    }

    #[tokio::test]
    async fn a_failed_replica_is_skipped_and_comes_back_on_success() {
        let (pool, _) = pool_of(vec![addr(2), addr(3)]).await;
        let failing = loop {
            let attempt = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
            if attempt.replica().addr() == addr(2) {
                break attempt;
            }
            // Not held: dropping it keeps both replicas equally idle.
        };
        failing.failed();
        for _ in 0..100 {
            let attempt = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
            assert_eq!(
                attempt.replica().addr(),
                addr(3),
                "an ejected replica was chosen"
            );
        }
        assert!(pool.states().iter().any(|s| s.addr == addr(2) && s.ejected));
        failing.succeeded();
        assert!(pool.states().iter().all(|s| !s.ejected));
    }

    #[tokio::test]
    async fn with_every_replica_ejected_the_one_due_back_first_is_tried() {
        let (pool, _) = pool_of(vec![addr(2), addr(3)]).await;
        let a = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
        let other = if a.replica().addr() == addr(2) {
            addr(3)
        } else {
            addr(2)
        };
        a.failed();
        a.failed(); // ejected for 2 s
        let b = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
        assert_eq!(b.replica().addr(), other);
        b.failed(); // ejected for 1 s: due back first
        let c = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
        assert_eq!(c.replica().addr(), other);
    }

    #[tokio::test]
    async fn a_retry_never_goes_back_to_the_replica_that_failed() {
        let (pool, _) = pool_of(vec![addr(2)]).await;
        assert!(
            pool.attempt(Some(addr(2)), Duration::from_secs(1))
                .await
                .is_none()
        );
        let (pool, _) = pool_of(vec![addr(2), addr(3)]).await;
        for _ in 0..50 {
            let attempt = pool
                .attempt(Some(addr(2)), Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(attempt.replica().addr(), addr(3));
        }
    }

    #[tokio::test]
    async fn resolution_adds_and_removes_replicas_and_an_empty_answer_keeps_them() {
        let (pool, resolver) = pool_of(vec![addr(2)]).await;
        assert_eq!(pool.len(), 1);
        *resolver.lock().unwrap() = vec![addr(2), addr(3)];
        pool.inner.refresh().await;
        assert_eq!(pool.len(), 2);
        *resolver.lock().unwrap() = vec![addr(3)];
        pool.inner.refresh().await;
        let addrs: Vec<_> = pool.states().into_iter().map(|s| s.addr).collect();
        assert_eq!(addrs, vec![addr(3)]);
        *resolver.lock().unwrap() = vec![];
        pool.inner.refresh().await;
        assert_eq!(pool.len(), 1, "an empty answer emptied the pool");
    }

    #[tokio::test]
    async fn a_kept_replica_keeps_its_channel_and_counters() {
        let (pool, resolver) = pool_of(vec![addr(2)]).await;
        let before = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
        *resolver.lock().unwrap() = vec![addr(2), addr(3)];
        pool.inner.refresh().await;
        let state = pool
            .states()
            .into_iter()
            .find(|s| s.addr == addr(2))
            .unwrap();
        assert_eq!(state.calls, 1);
        drop(before);
    }

    #[tokio::test]
    async fn the_background_task_picks_up_new_replicas() {
        let (pool, resolver) = pool_of(vec![addr(2)]).await;
        *resolver.lock().unwrap() = vec![addr(2), addr(3), addr(4)];
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.len() != 3 {
            assert!(
                Instant::now() < deadline,
                "the new replicas were never resolved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_first_attempt_resolves_when_nothing_is_known_yet() {
        let resolver = Listed::new(Mutex::new(vec![addr(2)]));
        // An interval so long that only the attempt itself can resolve in time... except that
        // the background task resolves at once too; either way the attempt must find it.
        let pool = ReplicaPool::new(
            Box::new(resolver),
            lazy_channel(),
            Duration::from_secs(3600),
        );
        let attempt = pool.attempt(None, Duration::from_secs(1)).await.unwrap();
        assert_eq!(attempt.replica().addr(), addr(2));
    }

    #[test]
    fn dual_stack_answers_keep_only_ipv4() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 1));
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1));
        assert_eq!(prefer_ipv4(vec![v6, v4]), vec![v4]);
        assert_eq!(prefer_ipv4(vec![v6]), vec![v6]);
    }

    #[tokio::test]
    async fn dns_resolution_of_an_ip_literal_and_of_localhost() {
        let targets = ["127.0.0.7:9", "localhost:9"].map(|t| t.parse().unwrap());
        let resolver = DnsResolver::new(targets.to_vec());
        let addrs = resolver.resolve().await.unwrap();
        assert!(
            addrs.contains(&SocketAddr::from(([127, 0, 0, 7], 9))),
            "{addrs:?}"
        );
        assert!(addrs.iter().all(SocketAddr::is_ipv4), "{addrs:?}");
        let missing = DnsResolver::new(vec!["no-such-host.invalid:9".parse().unwrap()]);
        let error = missing.resolve().await.unwrap_err().to_string();
        assert!(error.contains("no-such-host.invalid:9"), "{error}");
    }
}
