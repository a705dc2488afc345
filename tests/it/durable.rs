//! Durable completion (`DOCGATE_REDIS_WAIT_REPLICAS`) on a real primary and its real replica:
//! a completed download waits for the replica's acknowledgement (`WAIT`) before its last byte
//! goes out; without it the download is cut before that byte and the link stays usable.

use std::time::Duration;

// The client crate, not `support::redis`.
use ::redis;
use docgate::store::LinkState;

use crate::support::redis::{RedisCluster, RedisServer, SharedRedis};
use crate::support::*;

/// A primary and a replica of it, in sync.
fn primary_and_replica() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let replica = RedisServer::with_args(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut conn = primary.client();
    let mut synced = false;
    for _ in 0..100 {
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(100).query(&mut conn).unwrap();
        if acked == 1 {
            synced = true;
            break;
        }
    }
    assert!(synced, "the replica is in sync");
    (primary, replica)
}

/// docgate for a test whose replicas acknowledge: a loaded machine can take a while to ack, and
/// the `WAIT` returns as soon as they do, so the timeout is the longest allowed.
async fn docgate(redis: &impl SharedRedis, wait: Option<&str>) -> TestApp {
    docgate_waiting(redis, wait, "1s").await
}

/// The `WAIT` timeout of a test that expects a download to be cut: each cut waits this long.
const CUT_AFTER: &str = "200ms";

async fn docgate_waiting(redis: &impl SharedRedis, wait: Option<&str>, timeout: &str) -> TestApp {
    let redis_env = redis.env();
    let mut env: Vec<(&str, &str)> = redis_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("DOCGATE_REDIS_WAIT_TIMEOUT", timeout));
    if let Some(replicas) = wait {
        env.push(("DOCGATE_REDIS_WAIT_REPLICAS", replicas));
    }
    TestApp::with(&env).await
}

/// The test's own connection to the node on `port` (no cluster redirections followed).
fn node(port: u16) -> redis::Connection {
    crate::support::redis::node(port)
}

/// Reads the body to its end or its failure: (bytes received, whether it failed).
async fn read_body(mut response: reqwest::Response) -> (usize, bool) {
    let mut received = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

#[tokio::test]
async fn with_one_replica_required_a_download_is_whole_and_spends_the_link() {
    let (primary, _replica) = primary_and_replica();
    let app = docgate(&primary, Some("1")).await;
    let (claims, link) = app.mint("resume").await;
    assert_whole_resume(app.get(&link).await).await;
    assert_eq!(app.get(&link).await.status(), 410);
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Used,
        "the completion stands"
    );
}

#[tokio::test]
async fn without_its_replica_the_download_is_cut_before_its_last_byte_and_the_link_stays_usable() {
    let (primary, replica) = primary_and_replica();
    let app = docgate_waiting(&primary, Some("1"), CUT_AFTER).await;
    let (claims, link) = app.mint("resume").await;

    // The replica hangs: it acknowledges nothing.
    replica.pause();
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let (received, failed) = read_body(response).await;
    assert!(failed, "the transfer is aborted");
    assert!(
        received < RESUME_LEN,
        "the last byte was not released: {received} bytes"
    );
    // The failure was docgate's: the link is usable again, its attempt refunded.
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );
    let mut conn = primary.client();
    let undo: bool = redis::cmd("EXISTS")
        .arg(format!("docgate:undo:{{{}}}", claims.jti.as_str()))
        .query(&mut conn)
        .unwrap();
    assert!(!undo, "the taken-back completion leaves no undo record");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("docgate:token:{{{}}}", claims.jti.as_str()))
        .query(&mut conn)
        .unwrap();
    assert!(
        ttl > 600_000,
        "the link keeps its lifetime (15 minutes): {ttl} ms"
    );

    // The replica is back: the same link downloads whole, once.
    replica.resume();
    downloads_whole_once(&app, &link).await;
}

#[tokio::test]
async fn while_the_replicas_are_awaited_another_request_hears_being_downloaded() {
    let (primary, replica) = primary_and_replica();
    let app = docgate_waiting(&primary, Some("1"), "1s").await;
    let (claims, link) = app.mint("resume").await;
    replica.pause();

    let first = {
        let response = app.get(&link).await;
        assert_eq!(response.status(), 200);
        tokio::spawn(read_body(response))
    };
    // The completion is written and its `WAIT` runs (the undo record exists until it ends).
    let undo_key = format!("docgate:undo:{{{}}}", claims.jti.as_str());
    let mut conn = primary.client();
    eventually(
        "the completion waiting for its replica",
        Duration::from_secs(10),
        || {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&undo_key)
                .query(&mut conn)
                .unwrap();
            std::future::ready(exists.then_some(()))
        },
    )
    .await;
    // Not "used" (410): the completion may yet be taken back. (A `GET` now waits, as for any
    // download in flight, for the outcome.)
    assert_eq!(app.head(&link).await.status(), 409);

    // The replica never acknowledged: the first download is cut, the link usable again.
    let (received, failed) = first.await.unwrap();
    assert!(failed && received < RESUME_LEN, "{received} bytes");
    replica.resume();
    downloads_whole_once(&app, &link).await;
    let undo: bool = redis::cmd("EXISTS")
        .arg(&undo_key)
        .query(&mut conn)
        .unwrap();
    assert!(!undo, "an acknowledged completion leaves no undo record");
}

#[tokio::test]
async fn a_primary_that_lost_its_scripts_still_makes_completions_durable() {
    let (primary, _replica) = primary_and_replica();
    let app = docgate(&primary, Some("1")).await;
    let (claims, link) = app.mint("resume").await;
    // As after a restart or a failover to a node that never ran docgate's scripts.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut primary.client())
        .unwrap();
    assert_whole_resume(app.get(&link).await).await;
    assert_eq!(app.released(&claims.jti).await, LinkState::Used);
    assert_eq!(app.get(&link).await.status(), 410);
}

#[tokio::test]
async fn by_default_a_completion_waits_for_no_replica() {
    let (primary, replica) = primary_and_replica();
    let app = docgate(&primary, None).await;
    let (claims, link) = app.mint("resume").await;
    replica.pause();
    assert_whole_resume(app.get(&link).await).await;
    assert_eq!(app.released(&claims.jti).await, LinkState::Used);
    assert_eq!(app.get(&link).await.status(), 410);
    replica.resume();
}

#[tokio::test]
async fn on_a_cluster_the_wait_goes_to_the_master_of_the_links_slot() {
    let cluster = RedisCluster::with_replicas(true);
    let app = docgate(&cluster, Some("1")).await;
    let mut links = Vec::new();
    for _ in 0..12 {
        links.push(app.mint("resume").await);
    }
    // The master holding each link's key (another master answers MOVED).
    let masters = cluster.master_ports();
    let holder = |jti: &str| -> u16 {
        let key = format!("docgate:token:{{{jti}}}");
        let held: Vec<u16> = masters
            .iter()
            .copied()
            .filter(|port| {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query::<bool>(&mut node(*port))
                    .unwrap_or(false)
            })
            .collect();
        assert_eq!(held.len(), 1, "{key} on one master: {held:?}");
        held[0]
    };
    let stalled = holder(links[0].0.jti.as_str());
    let (on_stalled, elsewhere): (Vec<_>, Vec<_>) = links
        .into_iter()
        .partition(|(claims, _)| holder(claims.jti.as_str()) == stalled);
    assert!(!elsewhere.is_empty(), "links land on several masters");
    // The replica of that one master hangs.
    let replica = cluster
        .nodes
        .iter()
        .find(|n| {
            let replication: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut node(n.port))
                .unwrap();
            replication.contains(&format!("master_port:{stalled}"))
        })
        .expect("every master has a replica");
    replica.pause();

    // A link on that master: cut before its last byte, and refunded.
    let (claims, link) = &on_stalled[0];
    let response = app.get(link).await;
    assert_eq!(response.status(), 200);
    let (received, failed) = read_body(response).await;
    assert!(failed && received < RESUME_LEN, "{received} bytes");
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );
    // A link on another master: its own master's replica acknowledges, the download is whole.
    let (claims, link) = &elsewhere[0];
    assert_whole_resume(app.get(link).await).await;
    assert_eq!(app.released(&claims.jti).await, LinkState::Used);

    replica.resume();
    let (_, link) = &on_stalled[0];
    downloads_whole_once(&app, link).await;
}

/// Once the replica is back, `link` downloads whole (after the last cut attempt's claim is
/// released: 409 until then), and then answers 410.
async fn downloads_whole_once(app: &TestApp, link: &str) {
    eventually(
        "a whole download once the replica is back",
        Duration::from_secs(20),
        || async {
            let response = app.get(link).await;
            // 409: the last cut attempt's claim is still being released.
            if response.status() == 409 {
                return None;
            }
            assert_eq!(response.status(), 200);
            let bytes = response.bytes().await.ok()?;
            assert_eq!(bytes.len(), RESUME_LEN);
            Some(())
        },
    )
    .await;
    assert_eq!(app.get(link).await.status(), 410);
}
