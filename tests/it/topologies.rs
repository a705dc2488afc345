//! docgate on the two other Redis topologies, over real HTTP: a Sentinel setup (a primary, a
//! replica, a Sentinel) and a 3-master Redis Cluster, each started by the test. A failover fails
//! closed while there is no primary and is recovered from without restarting docgate; readiness
//! and `docgate check` see every primary.

use std::collections::HashMap;
use std::time::Duration;

// The client crate, not `support::redis`.
use ::redis;
use docgate::check;
use docgate::config::Config;

use crate::support::redis::{MASTER, RedisCluster, RedisSentinel, SharedRedis, TlsRedis};
use crate::support::*;

async fn on(redis: &impl SharedRedis) -> TestApp {
    on_with(redis, &[]).await
}

async fn on_with(redis: &impl SharedRedis, extra: &[(&str, &str)]) -> TestApp {
    let env = redis.env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(extra);
    TestApp::with(&pairs).await
}

/// The answer of a download refused because single use cannot be enforced: `503`, no bytes.
async fn assert_refused_without_bytes(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("content-disposition").is_none());
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 1024, "an error, not the document");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "service_unavailable");
}

/// Waits (bounded) until `/readyz` answers `status`. The bound is generous: on a loaded machine a
/// cluster's election takes several node timeouts.
async fn readiness(app: &TestApp, status: u16) {
    eventually(
        &format!("readiness {status}"),
        Duration::from_secs(60),
        || async { (app.readyz().await.0 == status).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_journey_works_on_sentinel() {
    let redis = RedisSentinel::start();
    let app = on(&redis).await;
    assert_eq!(app.readyz().await.0, 200);
    let link = app.link("visitor@example.org", "resume").await;
    assert_whole_resume(app.get(&link).await).await;
    let again = app.get(&link).await;
    assert_eq!(again.status(), 410);
}

#[tokio::test]
async fn while_the_primary_is_down_downloads_fail_closed_and_after_the_failover_they_are_served() {
    let mut redis = RedisSentinel::start();
    let app = on(&redis).await;
    let (claims, link) = app.mint("resume").await;
    // The link is on the replica too before the primary goes (replication is asynchronous).
    redis.sync();
    let replica = redis.replica_port();
    redis.primary().stop();

    // No primary: no bytes, and the link is not touched.
    assert_refused_without_bytes(app.get(&link).await).await;
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["token_store"], "unavailable");
    let request = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(request.status(), 503);
    assert!(app.outbox().is_empty(), "no mail without a recorded link");

    redis.failover();
    redis.wait_for_primary(replica);
    // The same docgate, not restarted, finds the new primary.
    readiness(&app, 200).await;
    assert_eq!(
        app.app.backends.store.peek(&claims.jti).await.unwrap(),
        docgate::store::LinkState::Ready { started: 0 },
        "the failed download spent nothing"
    );
    assert_whole_resume(app.get(&link).await).await;
    assert_eq!(app.get(&link).await.status(), 410);
}

#[tokio::test]
async fn after_a_failover_the_demoted_primary_is_left_for_the_new_one() {
    let mut redis = RedisSentinel::start();
    let app = on(&redis).await;
    let (_, link) = app.mint("resume").await;
    redis.sync();
    let (old, new) = (redis.primary_port(), redis.replica_port());
    // Both servers stay up: the old primary becomes a replica and answers writes with READONLY.
    redis.failover();
    redis.wait_for_primary(new);
    // What the Sentinel does to a former primary it sees again, done at once.
    redis.demote(old, new);

    // The first commands may meet READONLY (503, nothing spent); then the new primary serves.
    let response = eventually(
        "a download from the new primary",
        Duration::from_secs(20),
        || {
            let app = &app;
            let link = link.clone();
            async move {
                let response = app.get(&link).await;
                if response.status() == 503 {
                    assert_refused_without_bytes(response).await;
                    None
                } else {
                    Some(response)
                }
            }
        },
    )
    .await;
    assert_whole_resume(response).await;
    readiness(&app, 200).await;
    assert_eq!(app.get(&link).await.status(), 410);
}

/// The flags a Sentinel gives the master (`SENTINEL MASTER`) and the replica on `replica`
/// (`SENTINEL REPLICAS`).
fn sentinel_flags(redis: &RedisSentinel, replica: u16) -> (String, String) {
    let mut conn = redis.sentinels[0].client();
    let master: HashMap<String, String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(MASTER)
        .query(&mut conn)
        .unwrap();
    let replicas: Vec<HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(MASTER)
        .query(&mut conn)
        .unwrap();
    let replica = replicas
        .iter()
        .find(|r| r.get("port").is_some_and(|p| *p == replica.to_string()))
        .and_then(|r| r.get("flags").cloned())
        .unwrap_or_default();
    (master["flags"].clone(), replica)
}

/// Until a failover ends, a Sentinel's master entry (`SENTINEL MASTERS`, which the `redis`
/// crate's lookup reads) still names the primary being replaced. One restarted meanwhile, as an
/// orchestrator restarts a crashed pod, is back empty (no persistence) and a primary until the
/// Sentinels demote it: docgate does not trust it. Its downloads fail closed rather than read the
/// empty node (where a live link looks withdrawn, `410`), and once the failover ends the link is
/// served from the new primary, once.
#[tokio::test]
async fn an_old_primary_restarted_empty_during_a_failover_is_not_trusted() {
    let mut redis = RedisSentinel::start();
    let app = on(&redis).await;
    let (claims, link) = app.mint("resume").await;
    redis.sync();
    let (old, new) = (redis.primary_port(), redis.replica_port());
    // Room for the steps below on a loaded machine before the Sentinel gives up the failover.
    let _: () = redis::cmd("SENTINEL")
        .arg("SET")
        .arg(MASTER)
        .arg("failover-timeout")
        .arg(60_000)
        .query(&mut redis.sentinels[0].client())
        .unwrap();

    // The primary crashes; the failover starts and is held in progress: the replica is frozen
    // just as the Sentinel promotes it.
    redis.primary().kill();
    let server = |redis: &RedisSentinel, port: u16| {
        redis.servers.iter().position(|s| s.port == port).unwrap()
    };
    let replica = server(&redis, new);
    redis.servers[replica].pause();
    redis.failover();
    eventually(
        "the Sentinel promoting the frozen replica",
        Duration::from_secs(20),
        || async {
            sentinel_flags(&redis, new)
                .1
                .contains("promoted")
                .then_some(())
        },
    )
    .await;
    // The old primary is back, empty and a primary; the Sentinel's master entry names it.
    let lost = server(&redis, old);
    redis.servers[lost].restart();
    let mut conn = redis.servers[lost].client();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut conn).unwrap(), 0);
    assert!(
        sentinel_flags(&redis, new)
            .0
            .contains("failover_in_progress")
    );

    // Every download meanwhile fails closed, and readiness says so.
    for _ in 0..3 {
        assert_refused_without_bytes(app.get(&link).await).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["token_store"], "unavailable");

    // The promotion completes; the Sentinel (here the test, at once) demotes the old primary.
    redis.servers[replica].resume();
    redis.wait_for_primary(new);
    redis.demote(old, new);
    readiness(&app, 200).await;
    assert_eq!(
        app.app.backends.store.peek(&claims.jti).await.unwrap(),
        docgate::store::LinkState::Ready { started: 0 },
        "the failed downloads spent nothing"
    );
    assert_whole_resume(app.get(&link).await).await;
    assert_eq!(app.get(&link).await.status(), 410);
}

/// With `DOCGATE_REDIS_WAIT_REPLICAS`, completions run on a connection of their own, idle while
/// the primary fails over (a download refused meanwhile never reaches its completion). Once the
/// other connection has found the new primary, the completion connection follows it: the first
/// download to complete after the failover is whole, not cut on a connection to the dead primary.
#[tokio::test]
async fn with_wait_replicas_the_first_completion_after_a_sentinel_failover_is_whole() {
    let mut redis = RedisSentinel::start();
    let app = on_with(
        &redis,
        &[
            ("DOCGATE_REDIS_WAIT_REPLICAS", "1"),
            ("DOCGATE_REDIS_WAIT_TIMEOUT", "1s"),
        ],
    )
    .await;
    let (_, before) = app.mint("resume").await;
    let (_, after) = app.mint("resume").await;
    // A completion: its connection is open, to the primary.
    assert_whole_resume(app.get(&before).await).await;
    redis.sync();
    let (old, new) = (redis.primary_port(), redis.replica_port());
    redis.primary().kill();
    redis.failover();
    redis.wait_for_primary(new);
    // The old primary back as the new one's replica, in sync: `WAIT 1` can be met.
    let index = redis.servers.iter().position(|s| s.port == old).unwrap();
    redis.servers[index].restart();
    redis.demote(old, new);
    eventually(
        "the old primary in sync",
        Duration::from_secs(30),
        || async {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut redis.servers[index].client())
                .unwrap_or_default();
            info.contains("master_link_status:up").then_some(())
        },
    )
    .await;
    readiness(&app, 200).await;

    assert_whole_resume(app.get(&after).await).await;
    assert_eq!(app.get(&after).await.status(), 410);
    assert_eq!(app.get(&before).await.status(), 410);
}

#[tokio::test]
async fn docgate_serves_readiness_and_rate_limits_on_a_cluster() {
    let mut cluster = RedisCluster::start();
    let app = on_with(&cluster, &[("DOCGATE_LIMIT_REQUEST_PER_IP", "3/m")]).await;
    assert_eq!(app.readyz().await.0, 200);

    // PING goes to every primary through docgate's connection (which routes commands by slot),
    // and the cluster's state is ok.
    assert_eq!(cluster.master_ports().len(), 3);
    let mut conn = docgate::store::shared::connect(&cluster.config("docgate:")).unwrap();
    conn.ping().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    // A single-key operation (the per-IP limit of a link request) lands on its slot's master.
    let mut limited = false;
    for _ in 0..4 {
        let response = app.request_link("not-an-address", "resume").await;
        match response.status().as_u16() {
            400 => {}
            429 => {
                assert!(retry_after(&response) >= 1);
                limited = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited, "the per-IP limit counted in the cluster");
    let mut client = cluster.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut client).unwrap();
    assert!(!keys.is_empty(), "the limit is kept in the cluster");
    assert!(keys.iter().all(|k| k.starts_with("docgate:")), "{keys:?}");

    // A master lost (no replica to take over): not ready, as with a standalone Redis down.
    cluster.nodes[0].stop();
    readiness(&app, 503).await;
}

fn config(dir: &std::path::Path, extra: Vec<(&str, String)>) -> Config {
    write_fixtures(dir);
    let mut env: HashMap<String, String> = fixture_env(dir, "http://localhost:8080", SECRET)
        .into_iter()
        .collect();
    for (k, v) in extra {
        env.insert(k.to_owned(), v);
    }
    Config::from_source(&env).unwrap()
}

fn store_line(lines: &[check::Line]) -> &check::Line {
    lines.iter().find(|l| l.name == "token store").unwrap()
}

#[tokio::test]
async fn check_reads_every_primary_of_a_cluster_and_names_the_one_that_may_evict() {
    let cluster = RedisCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = check::run(config(dir.path(), cluster.env())).await.unwrap();
    let store = store_line(&lines);
    assert!(store.ok, "{store}");
    assert!(store.detail.contains("3 primaries"), "{store}");
    assert!(store.detail.contains("scripts load on each"), "{store}");
    for port in cluster.master_ports() {
        assert!(
            store.detail.contains(&format!("127.0.0.1:{port}")),
            "{store}"
        );
        assert!(
            crate::check::every_script_loaded(&format!("redis://127.0.0.1:{port}")),
            "every script loaded on the master at {port}"
        );
    }

    let evicting = cluster.master_ports()[1];
    let mut conn = crate::support::redis::node(evicting);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query(&mut conn)
        .unwrap();
    let lines = check::run(config(dir.path(), cluster.env())).await.unwrap();
    let store = store_line(&lines);
    assert!(!store.ok, "{store}");
    assert!(
        store
            .detail
            .contains(&format!("primary 127.0.0.1:{evicting}"))
            && store.detail.contains("allkeys-lru"),
        "names the node and its policy: {store}"
    );
}

#[tokio::test]
async fn check_names_the_sentinels_primary_and_fails_without_one() {
    let mut redis = RedisSentinel::start();
    let dir = tempfile::tempdir().unwrap();
    let primary = redis.primary_port();
    let lines = check::run(config(dir.path(), redis.env())).await.unwrap();
    let store = store_line(&lines);
    assert!(store.ok, "{store}");
    assert!(
        store.detail.contains(&format!("127.0.0.1:{primary}")),
        "{store}"
    );

    // Neither server left: the Sentinel has no primary to name nor a replica to promote.
    for server in &mut redis.servers {
        server.stop();
    }
    let lines = check::run(config(dir.path(), redis.env())).await.unwrap();
    let store = store_line(&lines);
    assert!(!store.ok, "{store}");
    assert!(
        store.to_string().starts_with("token store: FAILED"),
        "{store}"
    );
}

#[tokio::test]
async fn a_cluster_master_lost_is_replaced_by_its_replica_without_restarting_docgate() {
    let mut cluster = RedisCluster::with_replicas(true);
    let app = on_with(&cluster, &[("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    assert_eq!(app.readyz().await.0, 200);
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    let lost = masters[0];
    let index = cluster.nodes.iter().position(|n| n.port == lost).unwrap();
    // Its replica holds back until the outage has been seen: without this, a quick election can
    // end it before a probe runs, and the test would race the cluster.
    let replica = cluster.replica_of(lost);
    cluster.nodes[replica].config_set("cluster-replica-no-failover", "yes");
    let (_, link) = app.mint("resume").await;
    cluster.nodes[index].stop();

    // Once the cluster marks the master failed (after the node timeout), not ready, and a link
    // whose keys were on it is refused without bytes.
    cluster.wait_for_state("fail");
    readiness(&app, 503).await;
    let (_, body) = app.readyz().await;
    assert_eq!(body["checks"]["token_store"], "unavailable");
    let refused = app.get(&link).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.bytes().await.unwrap().len() < 1024, "no bytes");

    // The replica takes over on its own; docgate follows the new slot map, without a restart.
    cluster.nodes[replica].config_set("cluster-replica-no-failover", "no");
    cluster.wait_until_serving();
    readiness(&app, 200).await;
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3, "a replica was promoted");
    assert!(!masters.contains(&lost));
    // Single-key operations on every slot's master answer again: the per-IP limit of link
    // requests from many networks (their keys fall on every master).
    for i in 0..30 {
        let response = app
            .client
            .post(app.url("/api/download-requests"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .json(&serde_json::json!({"email": "not-an-address", "document": "resume"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "the limiter answered");
    }
}

#[tokio::test]
async fn rediss_trusts_the_configured_private_ca_and_only_then() {
    let redis = TlsRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = redis.ca_file.display().to_string();
    let lines = check::run(config(
        dir.path(),
        vec![
            ("DOCGATE_REDIS_URL", redis.url()),
            ("DOCGATE_REDIS_CA_FILE", ca),
        ],
    ))
    .await
    .unwrap();
    let store = store_line(&lines);
    assert!(store.ok, "{store}");

    // Without the CA, the public roots do not vouch for the server: nothing is exchanged.
    let lines = check::run(config(dir.path(), vec![("DOCGATE_REDIS_URL", redis.url())]))
        .await
        .unwrap();
    let store = store_line(&lines);
    assert!(!store.ok, "{store}");
}

#[tokio::test]
async fn docgate_starts_while_the_cluster_is_down_and_is_ready_once_it_is_up() {
    let mut cluster = RedisCluster::start();
    for node in &mut cluster.nodes {
        node.stop();
    }
    let app = on(&cluster).await;
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["token_store"], "unavailable");
    // The nodes come back with their cluster configuration (kept in their directories).
    for node in &mut cluster.nodes {
        node.restart();
    }
    cluster.wait_until_serving();
    readiness(&app, 200).await;
}
