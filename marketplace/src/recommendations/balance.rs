//! Client-side balancing over the Recommendations replicas. One HTTP/2 connection carries every
//! call to one replica, and a Kubernetes ClusterIP balances connections, not calls, so the
//! Marketplace resolves the name itself (a Compose service with `--scale`, a headless Service,
//! a list of addresses) every `recommendations.resolve_interval_ms` and balances each call.
//!
//! tower does the balancing: the power of two choices on calls in flight
//! ([`tower::balance::p2c`] over [`PendingRequestsDiscover`]), fed by the resolutions as a
//! discover stream. What it lacks is written here: **ejection**. A replica that fails fast
//! (connection refused, GOAWAY, not ready) has the fewest calls in flight, so p2c would favour
//! it; instead a replica whose call failed with `UNAVAILABLE`, `CANCELLED` or
//! `DEADLINE_EXCEEDED`, or could not be reached, reports itself not ready for 1 s, doubling up
//! to 30 s while it keeps failing, and is back with its next answer. The last replica still in
//! rotation is never ejected, so a full outage recovers with the first call after it ends.

use std::{
    convert::Infallible,
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU32, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bookshop_common::{millis, net::HostPort};
use futures_util::future::BoxFuture;
use tokio::{
    sync::{Notify, mpsc},
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tower::{
    BoxError, Service, ServiceExt,
    balance::p2c::Balance,
    buffer::Buffer,
    discover::Change,
    load::{CompleteOnResponse, PendingRequestsDiscover},
    util::BoxCloneSyncService,
};

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

/// What every call goes through: a handle on the balancer, cheap to clone.
pub type Balancer = BoxCloneSyncService<Request, Response, BalanceError>;

/// tower's boxed error as a type of its own: tonic's generated clients need an error that
/// converts into theirs for every lifetime, which a boxed error does not.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BalanceError(#[from] BoxError);

const EJECTION_BASE: Duration = Duration::from_secs(1);
const EJECTION_MAX: Duration = Duration::from_secs(30);
/// The shortest gap between two resolutions asked for by failures.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// Finds the replicas' addresses: [`DnsResolver`], or a test's own.
pub trait Resolve: Send + Sync + fmt::Debug + 'static {
    fn resolve(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (getaddrinfo), each target in turn; the union of their addresses.
#[derive(Debug, Clone)]
pub struct DnsResolver(pub Vec<HostPort>);

impl Resolve for DnsResolver {
    fn resolve(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            let (mut all, mut last_error) = (Vec::new(), None);
            for target in &self.0 {
                match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                    // A dual-stack name's IPv6 addresses are the same replicas again.
                    Ok(addrs) => {
                        let addrs: Vec<SocketAddr> = addrs.collect();
                        let v4 = addrs.iter().any(SocketAddr::is_ipv4);
                        all.extend(addrs.into_iter().filter(|addr| addr.is_ipv4() || !v4));
                    }
                    Err(error) => {
                        last_error = Some(io::Error::new(
                            error.kind(),
                            format!("cannot resolve {target}: {error}"),
                        ))
                    }
                }
            }
            all.sort();
            all.dedup();
            match (all.is_empty(), last_error) {
                (true, Some(error)) => Err(error),
                _ => Ok(all),
            }
        })
    }
}

/// The replicas, as the metrics, the catalog follower and the tests see them.
#[derive(Clone)]
pub struct Pool {
    pub balancer: Balancer,
    known: Known,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("replicas", &self.replicas()).finish_non_exhaustive()
    }
}

type Known = Arc<Mutex<Vec<(Arc<Health>, tonic::transport::Channel)>>>;

impl Pool {
    /// Resolves with `resolver` now and every `interval` (and soon after a failure), making a
    /// lazily connected channel per address with `connect`. Must run inside the runtime.
    pub fn new(
        resolver: Box<dyn Resolve>,
        connect: impl Fn(SocketAddr) -> tonic::transport::Channel + Send + 'static,
        interval: Duration,
    ) -> Pool {
        let (changes, discovered) = mpsc::unbounded_channel();
        let discover = PendingRequestsDiscover::new(
            UnboundedReceiverStream::new(discovered),
            CompleteOnResponse::default(),
        );
        // Calls waiting for a replica queue here; the deadline's guard bounds the wait.
        let balancer = BoxCloneSyncService::new(
            Buffer::new(Balance::new(discover), 1024).map_err(BalanceError),
        );
        let known = Arc::default();
        let resolving = Resolving { resolver, connect, changes, known: Arc::clone(&known) };
        tokio::spawn(resolving.run(interval));
        Pool { balancer, known }
    }

    /// Each replica's address and whether it is ejected now.
    pub fn replicas(&self) -> Vec<(SocketAddr, bool)> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.iter().map(|(health, _)| (health.addr, health.ejected())).collect()
    }

    pub fn len(&self) -> usize {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel of a replica picked at random among those not ejected, for a call that must
    /// stay on one replica (the catalog's version stream, then its list).
    pub fn pick(&self) -> Option<tonic::transport::Channel> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let serving: Vec<_> = known.iter().filter(|(health, _)| !health.ejected()).collect();
        let picked = match serving.is_empty() {
            true => known.first(),
            false => Some(serving[rand::random_range(0..serving.len())]),
        };
        picked.map(|(_, channel)| channel.clone())
    }
}

/// The task that keeps the replica set current.
struct Resolving<C> {
    resolver: Box<dyn Resolve>,
    connect: C,
    changes: mpsc::UnboundedSender<Result<Change<SocketAddr, Replica>, Infallible>>,
    known: Known,
}

impl<C: Fn(SocketAddr) -> tonic::transport::Channel> Resolving<C> {
    /// Until the balancer is gone. A failed or empty resolution keeps the replicas known: a
    /// resolver hiccup must not empty a working pool.
    async fn run(self, interval: Duration) {
        let refresh = Arc::new(Notify::new());
        let mut last_error = None;
        loop {
            let resolved = self.resolver.resolve().await;
            let resolved_at = Instant::now();
            match resolved {
                Ok(addrs) if !addrs.is_empty() => {
                    if last_error.take().is_some() {
                        tracing::info!("Recommendations addresses resolve again");
                    }
                    self.apply(addrs, &refresh);
                }
                outcome => {
                    let error =
                        outcome.err().map_or_else(|| "no addresses".to_owned(), |e| e.to_string());
                    if last_error.as_ref() != Some(&error) {
                        let kept = self.known.lock().unwrap_or_else(PoisonError::into_inner).len();
                        tracing::warn!(%error, kept, "cannot resolve the Recommendations replicas; keeping the ones known");
                        last_error = Some(error);
                    }
                }
            }
            tokio::select! {
                () = self.changes.closed() => return,
                () = tokio::time::sleep(interval) => {}
                () = refresh.notified() => tokio::time::sleep_until(resolved_at + MIN_REFRESH_GAP).await,
            }
        }
    }

    fn apply(&self, addrs: Vec<SocketAddr>, refresh: &Arc<Notify>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|(health, _)| {
            let kept = addrs.contains(&health.addr);
            if !kept {
                tracing::info!(replica = %health.addr, "Recommendations replica removed");
                let _ = self.changes.send(Ok(Change::Remove(health.addr)));
            }
            kept
        });
        for addr in addrs {
            if known.iter().any(|(health, _)| health.addr == addr) {
                continue;
            }
            tracing::info!(replica = %addr, "Recommendations replica added");
            let health = Arc::new(Health {
                addr,
                failures: AtomicU32::new(0),
                ejected_until: Mutex::new(None),
                known: Arc::downgrade(&self.known),
                refresh: refresh.clone(),
            });
            let channel = (self.connect)(addr);
            let replica =
                Replica { channel: channel.clone(), health: health.clone(), waiting: None };
            let _ = self.changes.send(Ok(Change::Insert(addr, replica)));
            known.push((health, channel));
        }
    }
}

/// What the balancer's replica and its calls know of its health.
#[derive(Debug)]
struct Health {
    addr: SocketAddr,
    /// Failures in a row.
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    known: Weak<Mutex<Vec<(Arc<Health>, tonic::transport::Channel)>>>,
    refresh: Arc<Notify>,
}

impl Health {
    fn ejected(&self) -> bool {
        self.ejected_until.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// An answer, whatever it says: the replica is healthy.
    fn answered(&self) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 {
            self.back();
            tracing::info!(replica = %self.addr, "Recommendations replica answers again");
        }
    }

    /// Unreachable or out of time: skipped for a while (unless it is the last in rotation),
    /// and the name resolved again soon, in case the replica is gone.
    fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff = EJECTION_BASE.saturating_mul(1 << (failures - 1).min(5)).min(EJECTION_MAX);
        let others_serving = self.known.upgrade().is_some_and(|known| {
            let known = known.lock().unwrap_or_else(PoisonError::into_inner);
            known.iter().any(|(other, _)| other.addr != self.addr && !other.ejected())
        });
        let mut until = self.ejected_until.lock().unwrap_or_else(PoisonError::into_inner);
        if until.is_none() && others_serving {
            let skipped_ms = millis(backoff);
            tracing::warn!(replica = %self.addr, skipped_ms, "Recommendations replica failed; skipping it for a while");
        }
        if until.is_some() || others_serving {
            *until = Some(Instant::now() + backoff);
        }
        self.refresh.notify_one();
    }

    fn back(&self) {
        self.ejected_until.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// A replica as the balancer sees it: its channel, not ready while it is ejected.
struct Replica {
    channel: tonic::transport::Channel,
    health: Arc<Health>,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl Service<Request> for Replica {
    type Response = Response;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let until = *self.health.ejected_until.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = until {
            let waiting =
                self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
            if waiting.deadline() != until {
                waiting.as_mut().reset(until);
            }
            ready!(waiting.as_mut().poll(cx));
            self.waiting = None;
            self.health.back();
        }
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let health = self.health.clone();
        let call = self.channel.call(request);
        Box::pin(async move {
            // The caller's attempt span is current while its call runs.
            tracing::Span::current().record("server.address", tracing::field::display(health.addr));
            let response = call.await;
            match &response {
                Ok(answer) if !unreached(answer) => health.answered(),
                _ => health.failed(),
            }
            response
        })
    }
}

/// A trailers-only answer that says the call never got through: `UNAVAILABLE` (not ready,
/// stopping), `CANCELLED` or `DEADLINE_EXCEEDED`.
fn unreached(answer: &Response) -> bool {
    let status = answer.headers().get("grpc-status").and_then(|value| value.to_str().ok());
    matches!(status, Some("1" | "4" | "14"))
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica").field("health", &self.health).finish_non_exhaustive()
    }
}
