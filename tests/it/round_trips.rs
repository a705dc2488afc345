//! What one download costs Redis, read from Redis itself: the exact commands it runs (`INFO
//! commandstats` around one whole download, on a standalone server and summed over a cluster's
//! masters), and how many round trips the client waits for, counted through a proxy that makes
//! Redis distant: the per-IP limit leaves with the claim, so the bytes wait for two round trips
//! (limit and claim, then completion); the request log's record is written after the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;

use crate::support::chaos::ChaosProxy;
use crate::support::redis::{RedisCluster, RedisServer, SharedRedis, commandstats, reset_stats};
use crate::support::*;
use docgate::requestlog::{Entry, Event, LogError, Prefetched, RequestLog};

/// A docgate on `redis`, with one download done: its connections are open and its scripts
/// loaded, so what is measured next is one download and nothing of the start.
async fn warmed_up(env: &[(&str, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::with(&pairs).await;
    let (_, link) = app.mint("resume").await;
    assert_whole_resume(app.get(&link).await).await;
    app.idle().await;
    app
}

/// Downloads a fresh link whole (and waits for what the download leaves behind: the request
/// log's record), with Redis's counters reset just before the request.
async fn one_download(app: &TestApp, conns: &mut [redis::Connection]) -> BTreeMap<String, u64> {
    let (claims, link) = app.mint("resume").await;
    conns.iter_mut().for_each(reset_stats);
    assert_whole_resume(app.get(&link).await).await;
    app.idle().await;
    let mut calls = BTreeMap::new();
    for conn in conns.iter_mut() {
        for (name, n) in commandstats(conn) {
            *calls.entry(name).or_insert(0) += n;
        }
    }
    // The download spent the link (asked after the counters were read).
    assert_eq!(
        app.app.backends.store.peek(&claims.jti).await.unwrap(),
        docgate::store::LinkState::Used
    );
    calls
}

/// Four scripts and nothing else: the per-IP limit, the claim, the completion and the request
/// log's record (`EVALSHA`), with the commands they run inside Redis, which `commandstats` counts
/// too (the limit: `TIME`, `GET`, `SET`; the store's and the log's scripts the rest: the claim
/// and the completion each read the link's record in one `HMGET`). A command added to a download,
/// or a script that grows, shows here.
fn expected() -> BTreeMap<String, u64> {
    [
        ("evalsha", 4),
        ("time", 3),
        ("get", 3),
        ("set", 2),
        ("del", 1),
        ("exists", 1),
        ("hmget", 2),
        ("hset", 2),
        ("incr", 1),
        ("pttl", 2),
        ("zadd", 1),
        ("zcard", 1),
        ("zrange", 1),
    ]
    .into_iter()
    .map(|(name, calls)| (name.to_owned(), calls))
    .collect()
}

#[tokio::test]
async fn a_download_runs_four_scripts_on_redis_and_nothing_else() {
    let redis = RedisServer::start();
    let app = warmed_up(&redis.env()).await;
    let calls = one_download(&app, &mut [redis.client()]).await;
    assert_eq!(calls, expected());
}

#[tokio::test]
async fn a_download_runs_four_scripts_on_a_cluster_and_nothing_else() {
    let cluster = RedisCluster::start();
    let app = warmed_up(&cluster.env()).await;
    let mut masters: Vec<redis::Connection> = cluster
        .master_ports()
        .into_iter()
        .map(crate::support::redis::node)
        .collect();
    assert_eq!(masters.len(), 3);
    let calls = one_download(&app, &mut masters).await;
    assert_eq!(calls, expected());
}

/// A Redis that has forgotten docgate's scripts (restarted, or a new primary after a failover)
/// answers `NOSCRIPT`: each script is loaded once and called again, and the download is whole,
/// its link spent and its record written, as before.
#[tokio::test]
async fn a_redis_that_forgot_the_scripts_is_given_them_again() {
    let redis = RedisServer::start();
    let app = warmed_up(&redis.env()).await;
    let mut conn = redis.client();
    let before = app
        .app
        .backends
        .requests
        .recent(100, 0)
        .await
        .unwrap()
        .len();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut conn)
        .unwrap();
    let calls = one_download(&app, &mut [conn]).await;
    assert_eq!(
        calls.get("script|load"),
        Some(&4),
        "the limit, the claim, the completion and the record: {calls:?}"
    );
    assert_eq!(calls.get("evalsha"), Some(&8), "{calls:?}");
    let after = app.app.backends.requests.recent(100, 0).await.unwrap();
    assert_eq!(after.len(), before + 1, "the download's record");
    assert_eq!(after[0].outcome, "completed");
}

/// Groups instants into bursts: a gap longer than `gap` starts a new one.
fn bursts(mut times: Vec<Instant>, gap: Duration) -> usize {
    times.sort();
    let mut count = 0;
    let mut last: Option<Instant> = None;
    for t in times {
        if last.is_none_or(|l| t.duration_since(l) > gap) {
            count += 1;
        }
        last = Some(t);
    }
    count
}

#[tokio::test]
async fn the_bytes_wait_for_two_redis_round_trips() {
    // Redis 150 ms away each way: a round trip takes 300 ms or more, far longer than anything
    // else the download does on loopback, so each one the client waits for shows as a burst of
    // replies of its own.
    const DELAY: Duration = Duration::from_millis(150);
    let redis = RedisServer::start();
    let proxy = ChaosProxy::delayed(redis.addr(), DELAY).await;
    let url = format!("redis://{}", proxy.addr);
    let app = warmed_up(&[("DOCGATE_REDIS_URL", url)]).await;
    let (_, link) = app.mint("resume").await;

    let started = Instant::now();
    assert_whole_resume(app.get(&link).await).await;
    let ended = Instant::now();
    app.idle().await;

    let deliveries = proxy.deliveries();
    let during: Vec<Instant> = deliveries
        .iter()
        .copied()
        .filter(|t| (started..ended).contains(t))
        .collect();
    assert_eq!(
        bursts(during, DELAY / 2),
        2,
        "the limit with the claim, then the completion"
    );
    // The request log's record was answered after the last byte, off the client's path, in one
    // round trip: what it reads first (the link's person) was read beside the claim.
    let after: Vec<Instant> = deliveries.iter().copied().filter(|t| *t > ended).collect();
    assert_eq!(bursts(after, DELAY / 2), 1, "the record after the end");
}

/// The per-IP limit now answers beside the claim: a refused request still answers `429` and
/// leaves the link as it was (the claim made meanwhile is released with a refund), on Redis.
#[tokio::test]
async fn a_download_over_the_per_ip_limit_leaves_the_link_untouched_on_redis() {
    let redis = RedisServer::start();
    let mut env = redis.env();
    env.push(("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "1/h".to_owned()));
    let app = warmed_up(&env).await;
    let (claims, link) = app.mint("resume").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 429);
    assert!(retry_after(&response) > 0);
    assert!(response.headers().get("content-disposition").is_none());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    app.idle().await;
    assert_eq!(
        app.app.backends.store.peek(&claims.jti).await.unwrap(),
        docgate::store::LinkState::Ready { started: 0 },
        "the refused download cost the link nothing"
    );
}

/// A request log whose read ahead never answers (on a Redis Cluster, a slow or lost `{log}`
/// shard): the rest as the configured log.
struct UnansweredReadAhead(Arc<dyn RequestLog>);

#[async_trait::async_trait]
impl RequestLog for UnansweredReadAhead {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        self.0.record(entry).await
    }
    async fn prefetch(&self, _: &str) -> Prefetched {
        std::future::pending().await
    }
    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError> {
        self.0.recent(limit, offset).await
    }
    async fn person(&self, owner: &str) -> Result<Vec<Entry>, LogError> {
        self.0.person(owner).await
    }
    async fn erase(&self, owner: &str) -> Result<u64, LogError> {
        self.0.erase(owner).await
    }
    async fn purge_older_than(&self, cutoff: time::OffsetDateTime) -> Result<u64, LogError> {
        self.0.purge_older_than(cutoff).await
    }
    async fn requester(&self, jti: &str) -> Result<Option<String>, LogError> {
        self.0.requester(jti).await
    }
}

/// The request log's read ahead rides with the claim but the bytes never wait for it: a log that
/// does not answer it holds up no download, and the download's entry is still recorded (the
/// record waits for the read a bounded time, then reads for itself).
#[tokio::test]
async fn a_read_ahead_the_log_never_answers_holds_up_no_download() {
    let app = TestApp::with_backends(&[], |backends| {
        backends.requests = Arc::new(UnansweredReadAhead(backends.requests.clone()));
    })
    .await;
    let (claims, link) = app.mint("resume").await;
    let response = tokio::time::timeout(Duration::from_secs(10), app.get(&link))
        .await
        .expect("the download did not wait for the log");
    assert_whole_resume(response).await;
    app.idle().await;
    let entries = app.app.backends.requests.recent(10, 0).await.unwrap();
    assert!(
        entries.iter().any(|e| e.event == Event::Download
            && e.jti.as_deref() == Some(claims.jti.as_str())
            && e.outcome == "completed"),
        "the download's entry is recorded: {entries:?}"
    );
}
