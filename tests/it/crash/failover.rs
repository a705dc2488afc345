//! A planned failover (Sentinel's or the cluster's) under traffic: successes or clean 503s, no
//! link spent by a failure, no mail lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;

use crate::replicas::{EnvOnly, all_ready, links_by_recipient, mails_by_recipient, replicas};
use crate::support::redis::{RedisCluster, RedisSentinel, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::*;

use super::*;

/// Three replicas on `redis` with traffic running while `failover` happens; afterwards every
/// answer was a success or a clean 503, no link was spent by a failure, and every accepted link
/// request was mailed exactly once. With `outage`, some answer must have met the outage.
async fn traffic_through_a_failover(
    redis: &impl SharedRedis,
    failover: impl FnOnce(),
    recovered_within: Duration,
    outage: bool,
) {
    const LINKS: usize = 60;
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(redis, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();
    ask_in_turn(&client, &replicas, "before", LINKS, "resume").await;
    sink.delivered(LINKS).await;
    let tokens: Vec<String> = links_by_recipient(&sink).into_values().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let loop_ = tokio::spawn(traffic(
        bases,
        tokens.clone(),
        stop.clone(),
        Duration::from_millis(25),
    ));
    // Some traffic before, then the failover while it runs (this thread blocks; the loop runs on
    // the other worker).
    tokio::time::sleep(Duration::from_millis(500)).await;
    failover();
    all_ready(&client, &replicas, recovered_within).await;
    // And some traffic on the new topology.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = loop_.await.unwrap();
    assert!(!seen.requests.is_empty());
    if outage {
        // The loop did run while there was no primary.
        assert!(
            seen.requests.iter().any(|(_, s)| *s == 503)
                || seen
                    .downloads
                    .values()
                    .any(|t| t.outcome == Attempt::Refused),
            "no answer met the outage: {seen:?}"
        );
    }

    // No link was spent by a failed attempt: each one not completed downloads now, whole. (A
    // claim recorded before its download failed is not released while Redis is gone: its lease,
    // `LEASE_TTL`, lapses first, and meanwhile the link answers 409 as while in flight.)
    for token in &tokens {
        let url = format!("{}/d/{token}", replicas[0].base);
        match seen.downloads.get(token).map(|t| t.outcome) {
            Some(Attempt::Complete) => {
                assert_eq!(client.get(&url).send().await.unwrap().status(), 410);
            }
            _ => {
                eventually(
                    "a failed attempt's lease to lapse",
                    LEASE_LAPSED,
                    || async {
                        match client.head(&url).send().await.unwrap().status().as_u16() {
                            409 => None,
                            status => {
                                assert_eq!(status, 200, "{url}: not spent");
                                Some(())
                            }
                        }
                    },
                )
                .await;
                assert_whole_resume(client.get(&url).send().await.unwrap()).await;
            }
        }
    }

    // Every accepted request is mailed, exactly once; a refused one at most once (its link may
    // have been recorded before the answer failed), and nothing is sent twice.
    let accepted = seen.requests.iter().filter(|(_, s)| *s == 202).count();
    sink.delivered(LINKS + accepted).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    let mails = mails_by_recipient(&sink);
    for (email, status) in &seen.requests {
        let count = mails.get(email).copied().unwrap_or(0);
        match status {
            202 => assert_eq!(count, 1, "{email} was accepted: one mail"),
            _ => assert!(count <= 1, "{email}: {count} mails"),
        }
    }
    assert!(mails.values().all(|n| *n == 1), "a mail sent twice");
    eprintln!(
        "failover traffic: {} requests ({} accepted), downloads {:?}",
        seen.requests.len(),
        accepted,
        seen.downloads.values().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(format!("{:?}", t.outcome)).or_insert(0) += 1;
            m
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_sentinel_failover_gets_successes_or_clean_503s_and_loses_no_mail() {
    let mut redis = RedisSentinel::start();
    let (old, new) = (redis.primary_port(), redis.replica_port());
    let sentinels = redis.env();
    let shared = EnvOnly(sentinels);
    traffic_through_a_failover(
        &shared,
        || {
            // A planned switchover: writes held, the replica caught up (WAIT), then the primary
            // goes and the Sentinel promotes the replica. Requests meanwhile fail closed.
            pause_writes(&mut redis.primary().client());
            redis.sync();
            redis.primary().stop();
            redis.failover();
            redis.wait_for_primary(new);
        },
        Duration::from_secs(60),
        true,
    )
    .await;
    assert_ne!(old, new);
    assert!(
        replication(new).contains("role:master"),
        "the replica took over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_cluster_failover_gets_successes_or_clean_503s_and_loses_no_mail() {
    let mut cluster = RedisCluster::with_replicas(true);
    let master = cluster.master_ports()[0];
    let replica = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| replication(*p).contains(&format!("master_port:{master}")))
        .expect("a replica of the first master");
    let shared = EnvOnly(cluster.env());
    traffic_through_a_failover(
        &shared,
        || {
            // A master lost: its writes held and its replica caught up (WAIT) first, so nothing
            // acknowledged is lost with it; then it is killed and, after the node timeout, its
            // replica takes over its slots. Requests meanwhile fail closed.
            let index = cluster.nodes.iter().position(|n| n.port == master).unwrap();
            let mut conn = cluster.nodes[index].client();
            pause_writes(&mut conn);
            let acked: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(5000)
                .query(&mut conn)
                .unwrap();
            assert_eq!(acked, 1, "the replica has every write");
            cluster.nodes[index].stop();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !replication(replica).contains("role:master") {
                assert!(Instant::now() < deadline, "the replica never took over");
                std::thread::sleep(Duration::from_millis(50));
            }
            cluster.wait_until_serving();
        },
        Duration::from_secs(60),
        // A third of the links are on the lost master: the loop may or may not meet it.
        false,
    )
    .await;
    assert!(!cluster.master_ports().contains(&master));
}

/// Holds writes on the server `conn` is connected to for 10 s (`CLIENT PAUSE ... WRITE`), so its
/// replica can catch up before it goes.
fn pause_writes(conn: &mut redis::Connection) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query(conn)
        .unwrap();
}
