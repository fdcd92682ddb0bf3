//! p2c over the Recommendations replicas, re-resolved, plus the ejection tower lacks (see docs/).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::{convert::Infallible, fmt, io, net::SocketAddr, pin::Pin, time::Duration};

use bookshop_common::{millis, net::HostPort};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tower::load::{CompleteOnResponse, PendingRequestsDiscover};
use tower::{BoxError, Service, ServiceExt, balance::p2c::Balance, buffer::Buffer};
use tower::{discover::Change, util::BoxCloneSyncService};

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

/// What every call goes through: a handle on the balancer, cheap to clone.
pub type Balancer = BoxCloneSyncService<Request, Response, BalanceError>;

/// A type of its own: tonic's clients need an error that converts into theirs for every lifetime.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BalanceError(#[from] BoxError);

/// Finds the replicas' addresses: [`DnsResolver`], or a test's own.
pub trait Resolve: Send + Sync + fmt::Debug + 'static {
    fn resolve(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver, each target in turn: the union of their addresses.
#[derive(Debug, Clone)]
pub struct DnsResolver(pub Vec<HostPort>);

impl Resolve for DnsResolver {
    fn resolve(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            let (mut all, mut failed) = (Vec::new(), None);
            for target in &self.0 {
                match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                    Ok(addrs) => all.extend(addrs),
                    Err(error) => failed = Some(format!("cannot resolve {target}: {error}")),
                }
            }
            // A dual-stack name's IPv6 addresses are the same replicas again.
            if all.iter().any(SocketAddr::is_ipv4) {
                all.retain(SocketAddr::is_ipv4);
            }
            all.sort();
            all.dedup();
            failed.filter(|_| all.is_empty()).map_or(Ok(all), |e| Err(io::Error::other(e)))
        })
    }
}

/// The replicas, shared by the pool, the resolver task and each replica's health.
type Known = Mutex<Vec<Replica>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone)]
pub struct Pool {
    balancer: Balancer,
    known: Arc<Known>,
}

impl Pool {
    /// Resolves now, every `interval` and soon after a failure; a channel per address.
    pub fn new(
        resolver: Box<dyn Resolve>,
        connect: impl Fn(SocketAddr) -> Channel + Send + Sync + 'static,
        interval: Duration,
    ) -> Pool {
        let (changes, discovered) = mpsc::unbounded_channel();
        let discover = UnboundedReceiverStream::new(discovered);
        let discover = PendingRequestsDiscover::new(discover, CompleteOnResponse::default());
        // Calls waiting for a replica queue here; their deadline's guard bounds the wait.
        let buffer = Buffer::new(Balance::new(discover), 1024);
        let known = Arc::default();
        tokio::spawn(resolve(resolver, connect, changes, Arc::downgrade(&known), interval));
        Pool { balancer: Balancer::new(buffer.map_err(BalanceError)), known }
    }

    /// The balancer, or with one replica known, its channel: the queue would cost a hop per call.
    pub fn service(&self) -> Balancer {
        match lock(&self.known).as_slice() {
            [replica] => Balancer::new(replica.clone().map_err(|e| BalanceError(e.into()))),
            _ => self.balancer.clone(),
        }
    }

    pub fn replicas(&self) -> Vec<(SocketAddr, bool)> {
        lock(&self.known).iter().map(|replica| (replica.addr(), replica.health.ejected())).collect()
    }

    pub fn channels(&self) -> Vec<(SocketAddr, Channel)> {
        lock(&self.known).iter().map(|replica| (replica.addr(), replica.channel.clone())).collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.known).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A replica in rotation, at random, for calls that must stay on one (the version stream).
    pub fn pick(&self) -> Option<Channel> {
        let known = lock(&self.known);
        let serving: Vec<_> = known.iter().filter(|replica| !replica.health.ejected()).collect();
        let pick = serving.get(rand::random_range(0..serving.len().max(1))).copied();
        pick.or(known.first()).map(|replica| replica.channel.clone())
    }
}

type Changes = mpsc::UnboundedSender<Result<Change<SocketAddr, Ejectable>, Infallible>>;

/// Keeps the replica set current until the balancer is gone.
async fn resolve(
    resolver: Box<dyn Resolve>,
    connect: impl Fn(SocketAddr) -> Channel,
    changes: Changes,
    known: Weak<Known>,
    interval: Duration,
) {
    let refresh = Arc::new(Notify::new());
    let replica = |addr| {
        let (pool, refresh) = (known.clone(), refresh.clone());
        let health = Health { addr, failures: 0.into(), ejected_until: None.into(), pool, refresh };
        Replica { channel: connect(addr), health: Arc::new(health) }
    };
    let mut last_error = None;
    loop {
        let resolved = resolver.resolve().await;
        let resolved_at = Instant::now();
        let Some(pool) = known.upgrade() else { return };
        update(&mut lock(&pool), resolved, &mut last_error, replica, &changes);
        let pause = async {
            tokio::select! {
                () = sleep(interval) => {}
                // At most one resolution a second asked for by failures.
                () = refresh.notified() => sleep_until(resolved_at + Duration::from_secs(1)).await,
            }
        };
        tokio::select! {
            () = changes.closed() => return,
            () = pause => {}
        }
    }
}

/// The pool after a resolution; a failed or empty one keeps the replicas known.
fn update(
    pool: &mut Vec<Replica>,
    resolved: io::Result<Vec<SocketAddr>>,
    last_error: &mut Option<String>,
    replica: impl Fn(SocketAddr) -> Replica,
    changes: &Changes,
) {
    let addrs = match resolved {
        Ok(addrs) if !addrs.is_empty() => addrs,
        outcome => {
            let error = outcome.map_or_else(|e| e.to_string(), |_| "no addresses".to_owned());
            if last_error.as_ref() != Some(&error) {
                let message = "cannot resolve the Recommendations replicas; keeping the ones known";
                tracing::warn!(%error, kept = pool.len(), "{message}");
                *last_error = Some(error);
            }
            return;
        }
    };
    if last_error.take().is_some() {
        tracing::info!("Recommendations addresses resolve again");
    }
    for replica in pool.iter().filter(|replica| !addrs.contains(&replica.addr())) {
        tracing::info!(replica = %replica.addr(), "Recommendations replica removed");
        let _ = changes.send(Ok(Change::Remove(replica.addr())));
    }
    pool.retain(|replica| addrs.contains(&replica.addr()));
    for addr in addrs {
        if pool.iter().all(|replica| replica.addr() != addr) {
            tracing::info!(replica = %addr, "Recommendations replica added");
            let replica = replica(addr);
            pool.push(replica.clone());
            let _ = changes.send(Ok(Change::Insert(addr, Ejectable { replica, waiting: None })));
        }
    }
}

#[derive(Debug)]
struct Health {
    addr: SocketAddr,
    /// In a row.
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    pool: Weak<Known>,
    refresh: Arc<Notify>,
}

impl Health {
    fn ejected(&self) -> bool {
        lock(&self.ejected_until).is_some()
    }

    /// An answer, whatever it says: the replica is healthy.
    fn answered(&self) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            lock(&self.ejected_until).take();
            tracing::info!(replica = %self.addr, "Recommendations replica answers again");
        }
    }

    /// Skipped for a while unless it is the last in rotation; the name is resolved again soon.
    fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff = Duration::from_secs(1 << (failures - 1).min(5)).min(Duration::from_secs(30));
        let others_serving = self.pool.upgrade().is_some_and(|pool| {
            lock(&pool).iter().any(|other| other.addr() != self.addr && !other.health.ejected())
        });
        let mut until = lock(&self.ejected_until);
        if until.is_none() && others_serving {
            let message = "Recommendations replica failed; skipping it for a while";
            tracing::warn!(replica = %self.addr, skipped_ms = millis(backoff), "{message}");
        }
        if until.is_some() || others_serving {
            *until = Some(Instant::now() + backoff);
        }
        self.refresh.notify_one();
    }
}

#[derive(Debug, Clone)]
struct Replica {
    channel: Channel,
    health: Arc<Health>,
}

impl Replica {
    fn addr(&self) -> SocketAddr {
        self.health.addr
    }
}

impl Service<Request> for Replica {
    type Response = Response;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (health, call) = (self.health.clone(), self.channel.call(request));
        Box::pin(async move {
            // The caller's attempt span is current while its call runs.
            tracing::Span::current().record("server.address", tracing::field::display(health.addr));
            let response = call.await;
            // A trailers-only `UNAVAILABLE`, `CANCELLED` or `DEADLINE_EXCEEDED` never got through.
            let status = response.as_ref().map(|answer| answer.headers().get("grpc-status"));
            match status.map(|status| status.map(|s| s.as_bytes())) {
                Ok(Some(b"1" | b"4" | b"14")) | Err(_) => health.failed(),
                Ok(_) => health.answered(),
            }
            response
        })
    }
}

/// A replica as the balancer sees it: not ready while it is ejected.
struct Ejectable {
    replica: Replica,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl Service<Request> for Ejectable {
    type Response = Response;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let until = *lock(&self.replica.health.ejected_until);
        if let Some(until) = until {
            let waiting = self.waiting.get_or_insert_with(|| Box::pin(sleep_until(until)));
            waiting.as_mut().reset(until);
            ready!(waiting.as_mut().poll(cx));
            self.waiting = None;
            lock(&self.replica.health.ejected_until).take();
        }
        self.replica.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.replica.call(request)
    }
}
