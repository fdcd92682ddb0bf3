//! Several Recommendations replicas, each a real server on its own loopback address
//! (127.0.0.2, 127.0.0.3, …) with a catalog that names it, behind a resolver the test changes:
//! the page shows which replica answered.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use marketplace::{recommendations::GUARD_MARGIN, web::AppState};
use salvo::{Service, http::StatusCode};

use crate::support::{
    FakeServer, ManualResolver, RecommendationsProcess, Script, TestResult, catalog_dir,
    eventually, marketplace_with_deadline, page, titles,
};

const PATIENCE: Duration = Duration::from_secs(15);

struct Replica {
    _dir: tempfile::TempDir,
    process: RecommendationsProcess,
}

/// A replica on 127.0.0.`n` whose only mystery book is "Replica n".
async fn replica(n: u8) -> Replica {
    let (dir, path) = catalog_dir(&[&format!("Replica {n}")]);
    let process = RecommendationsProcess::start_on(&path, &format!("127.0.0.{n}"), 0).await;
    Replica { _dir: dir, process }
}

/// The Marketplace in front of whatever `resolver` answers, re-resolving every 100 ms.
async fn marketplace(resolver: &ManualResolver) -> (Service, Arc<AppState>) {
    marketplace_with_deadline(resolver, 1_000).await
}

/// Loads the home page; returns its status and the replica that answered ("Replica n").
async fn load(service: &Service) -> (StatusCode, Option<String>) {
    let (res, body) = page(service, "/?category=mystery").await;
    (res.status_code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), titles(&body).into_iter().next())
}

async fn spread(service: &Service, pages: usize) -> HashMap<String, usize> {
    let mut by_replica = HashMap::new();
    for _ in 0..pages {
        let (status, replica) = load(service).await;
        assert_eq!(status, StatusCode::OK);
        *by_replica.entry(replica.unwrap()).or_default() += 1;
    }
    by_replica
}

#[tokio::test]
async fn page_loads_spread_over_every_replica() -> TestResult {
    let replicas = [replica(2).await, replica(3).await, replica(4).await];
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.process.addr).collect();
    let resolver = ManualResolver::new(addrs);
    let (service, _) = marketplace(&resolver).await;

    let by_replica = spread(&service, 300).await;
    assert_eq!(by_replica.len(), 3, "{by_replica:?}");
    for (replica, pages) in &by_replica {
        // 100 expected each; power of two choices on sequential loads is close to random.
        assert!(*pages >= 50, "{replica} served only {pages} of 300: {by_replica:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_stopped_replica_costs_no_page_even_before_the_resolver_drops_it() -> TestResult {
    let [a, b, c] = [replica(2).await, replica(3).await, replica(4).await];
    let resolver = ManualResolver::new(vec![a.process.addr, b.process.addr, c.process.addr]);
    let (service, state) = marketplace(&resolver).await;
    spread(&service, 30).await;

    // Stopped, but still listed by the resolver: only the retry on another replica and the
    // ejection keep the pages whole.
    b.process.stop().await;
    let by_replica = spread(&service, 200).await;
    assert!(!by_replica.contains_key("Replica 3"), "{by_replica:?}");
    assert_eq!(by_replica.len(), 2, "{by_replica:?}");
    let replicas = state.client.pool.replicas();
    assert!(
        replicas.iter().any(|(_, ejected)| *ejected),
        "the stopped replica was not ejected: {replicas:?}"
    );
    let (_, metrics) = page(&service, "/metrics").await;
    for line in [
        "bookshop_recommendations_replicas{state=\"ejected\"} 1",
        "bookshop_recommendations_replicas{state=\"serving\"} 2",
        "grpc_client_handled_total{grpc_service=\"Recommendations\",grpc_method=\"Recommend\",grpc_code=\"UNAVAILABLE\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    let retries = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bookshop_recommendations_retries_total "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        retries.is_some_and(|n| n >= 1.0),
        "the failed calls were not counted as retried: {retries:?}"
    );

    // The resolver drops it: it leaves the pool.
    resolver.set(vec![a.process.addr, c.process.addr]);
    let done = eventually(PATIENCE, async || state.client.pool.len() == 2).await;
    assert!(done, "gave up waiting for the stopped replica to leave the pool");
    drop(c);
    Ok(())
}

#[tokio::test]
async fn a_replica_added_to_the_resolver_starts_receiving_calls() -> TestResult {
    let a = replica(2).await;
    let resolver = ManualResolver::new(vec![a.process.addr]);
    let (service, _) = marketplace(&resolver).await;
    assert_eq!(spread(&service, 20).await.len(), 1);

    let b = replica(5).await;
    resolver.set(vec![a.process.addr, b.process.addr]);
    let done =
        eventually(PATIENCE, async || load(&service).await.1.as_deref() == Some("Replica 5")).await;
    assert!(done, "gave up waiting for the added replica to serve a page");
    let by_replica = spread(&service, 200).await;
    assert!(by_replica["Replica 5"] >= 50, "{by_replica:?}");
    Ok(())
}

#[tokio::test]
async fn when_every_replica_is_down_the_page_is_the_503_notice_and_recovers() -> TestResult {
    let (dir, path) = catalog_dir(&["Replica 6"]);
    let first = RecommendationsProcess::start_on(&path, "127.0.0.6", 0).await;
    let addr = first.addr;
    let resolver = ManualResolver::new(vec![addr]);
    let (service, _) = marketplace(&resolver).await;
    assert_eq!(load(&service).await.0, StatusCode::OK);

    first.stop().await;
    assert_eq!(load(&service).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(load(&service).await.0, StatusCode::SERVICE_UNAVAILABLE);

    // Back on the same address: the ejected replica is tried anyway, as it is the only one.
    let _again = RecommendationsProcess::start_on(&path, "127.0.0.6", addr.port()).await;
    let done = eventually(PATIENCE, async || load(&service).await.0 == StatusCode::OK).await;
    assert!(done, "gave up waiting for the page to recover");
    drop(dir);
    Ok(())
}

#[tokio::test]
async fn a_name_that_does_not_resolve_yet_is_a_503_not_a_crash() -> TestResult {
    let resolver = ManualResolver::new(vec![]);
    let (service, _) = marketplace(&resolver).await;
    assert_eq!(load(&service).await.0, StatusCode::SERVICE_UNAVAILABLE);

    let a = replica(7).await;
    resolver.set(vec![a.process.addr]);
    let done = eventually(PATIENCE, async || load(&service).await.0 == StatusCode::OK).await;
    assert!(done, "gave up waiting for the page once the name resolves");
    Ok(())
}

#[tokio::test]
async fn time_spent_resolving_names_comes_out_of_the_deadline() {
    // A replica that never answers in time, behind a name that takes 400 of the 500 ms to
    // resolve: the call gets what is left, so the page still answers at the deadline (plus the
    // guard's margin), not at the deadline plus the resolution.
    let server = FakeServer::start(Script::Sleep(Duration::from_secs(5))).await;
    let resolver = ManualResolver::slow(vec![server.addr], Duration::from_millis(400));
    let (service, _state) = marketplace_with_deadline(&resolver, 500).await;
    let started = Instant::now();
    let (status, _) = load(&service).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let promised = Duration::from_millis(500) + GUARD_MARGIN;
    // Waiting for the resolution first would take its 400 ms more; 300 ms of slack is for a
    // loaded machine.
    assert!(
        elapsed < promised + Duration::from_millis(300),
        "the page took {elapsed:?}; the deadline with its margin is {promised:?}"
    );
}
