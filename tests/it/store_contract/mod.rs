//! The token store contract, written once and run against every implementation: the embedded one
//! and the Redis one, on each Redis topology a test can start (a real standalone `redis-server`,
//! Sentinel setup or cluster per test). The cases are in [`claims`] and [`delivery`]; here the
//! runner, the Redis store's own tests (its keys, an unreachable server, one slot per script).

mod claims;
mod delivery;

use std::sync::Arc;
use std::time::Duration;

use docgate::store::memory::MemoryStore;
use docgate::store::shared::{RedisStore, connect};
use docgate::store::{Lease, LinkState, NewLink, Sent, TokenStore};
use docgate::token::Jti;

use crate::ratelimit_contract::{limiter_contract, redis_limiter};
use crate::support::owner_id;
use crate::support::redis::{RedisCluster, RedisSentinel, RedisServer, SharedRedis};

/// How long the links the cases insert live.
const LINK_TTL: Duration = Duration::from_secs(900);

/// A Redis store on the test's own topology (kept alive by the caller's handle).
fn redis_store(redis: &impl SharedRedis) -> Arc<dyn TokenStore> {
    let conn = connect(&redis.config("docgate:")).unwrap();
    Arc::new(RedisStore::new(conn, "docgate:", LINK_TTL))
}

async fn insert(store: &dyn TokenStore, ttl: Duration, attempts: u32) -> Jti {
    insert_for(store, ttl, attempts, None).await
}

async fn insert_for(
    store: &dyn TokenStore,
    ttl: Duration,
    attempts: u32,
    owner: Option<&str>,
) -> Jti {
    let jti = Jti::generate();
    store
        .insert(&NewLink {
            jti: &jti,
            doc: "resume",
            ttl,
            attempts,
            owner,
        })
        .await
        .unwrap();
    jti
}

fn lease() -> Lease {
    Lease::new(Duration::from_secs(10))
}

/// Runs every store case against `store`.
async fn store_contract(store: Arc<dyn TokenStore>) {
    store.ping().await.unwrap();
    claims::a_completed_download_spends_the_link(store.as_ref()).await;
    claims::cut_offs_count_until_attempts_run_out(store.as_ref()).await;
    claims::refunds_do_not_count(store.as_ref()).await;
    claims::only_the_holder_settles(store.as_ref()).await;
    claims::unknown_links_are_revoked(store.as_ref()).await;
    claims::operators_revoke_one_link_or_all_of_one_person(store.as_ref()).await;
    claims::leases_and_links_expire(store.as_ref()).await;
    delivery::a_completed_link_is_rearmed_once_for_its_network(store.as_ref()).await;
    delivery::bytes_sent_in_all_spend_the_link_once_they_cover_the_document(store.as_ref()).await;
    delivery::a_failure_of_ours_refunds_its_bytes(store.as_ref()).await;
    delivery::a_download_passing_the_size_streams_on_until_it_ends(store.as_ref()).await;
    delivery::a_dead_holders_reported_bytes_count(store.as_ref()).await;
    delivery::only_a_link_that_delivered_one_copy_is_rearmed(store.as_ref()).await;
    claims::racing_claims_have_one_winner(store).await;
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    store_contract(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redis_store_meets_the_contract() {
    let server = RedisServer::start();
    store_contract(redis_store(&server)).await;
}

#[tokio::test]
async fn the_store_on_sentinel_meets_the_contract() {
    let sentinel = RedisSentinel::start();
    store_contract(redis_store(&sentinel)).await;
}

#[tokio::test]
async fn the_store_on_a_cluster_meets_the_contract() {
    let cluster = RedisCluster::start();
    store_contract(redis_store(&cluster)).await;
}

#[tokio::test]
async fn redis_keys_are_what_the_readme_says() {
    let server = RedisServer::start();
    let store = redis_store(&server);
    let jti = insert(store.as_ref(), LINK_TTL, 3).await;
    let mut redis = server.client();
    let key = format!("docgate:token:{{{}}}", jti.as_str());
    let fields: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query(&mut redis).unwrap();
    assert_eq!(fields["doc"], "resume");
    assert_eq!(fields["started"], "0");
    assert_eq!(fields["attempts"], "3");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut redis).unwrap();
    assert!((899_000..=900_000).contains(&ttl), "{ttl}");

    let l = lease();
    store.claim(&jti, &l).await.unwrap();
    let fields: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(&key).query(&mut redis).unwrap();
    assert_eq!(fields["started"], "1");
    assert_eq!(fields["lease"], l.id);
    assert!(fields.contains_key("lease_until"));

    // The bytes a link's downloads have sent: the lease's running total while it streams, added
    // to `delivered` when it ends.
    let counted = insert(store.as_ref(), LINK_TTL, 3).await;
    let counted_key = format!("docgate:token:{{{}}}", counted.as_str());
    let streaming = lease();
    store.claim(&counted, &streaming).await.unwrap();
    assert!(
        store
            .renew(&counted, &streaming, Sent::new(100, 1000))
            .await
            .unwrap()
    );
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&counted_key)
        .query(&mut redis)
        .unwrap();
    assert_eq!(fields["lease_sent"], "100");
    assert_eq!(fields["size"], "1000");
    store
        .release(&counted, &streaming, Sent::new(250, 1000), false)
        .await
        .unwrap();
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&counted_key)
        .query(&mut redis)
        .unwrap();
    assert_eq!(fields["delivered"], "250");
    assert_eq!(fields["lease_sent"], "0");
    assert!(!fields.contains_key("lease"));

    // An operator revokes with DEL: the holder's next renewal fails, nothing new starts.
    let deleted: i64 = redis::cmd("DEL").arg(&key).query(&mut redis).unwrap();
    assert_eq!(deleted, 1);
    assert!(!store.renew(&jti, &l, Sent::default()).await.unwrap());
    assert!(!store.complete(&jti, &l, Sent::default()).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Revoked);
    let spent: i64 = redis::cmd("EXISTS")
        .arg(format!("docgate:spent:{{{}}}", jti.as_str()))
        .query(&mut redis)
        .unwrap();
    assert_eq!(spent, 0, "a failed completion leaves no spent marker");

    // A person's links are indexed by a hash of the address, never the address.
    let owner = owner_id("jane@example.org");
    let jti = insert_for(store.as_ref(), LINK_TTL, 3, Some(&owner)).await;
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("docgate:owner:{{{owner}}}"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(members, [jti]);

    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    assert!(keys.iter().all(|k| k.starts_with("docgate:")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("jane")), "{keys:?}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_closed_quickly() {
    let mut server = RedisServer::start();
    let store = redis_store(&server);
    let jti = insert(store.as_ref(), LINK_TTL, 3).await;
    server.stop();
    let started = std::time::Instant::now();
    assert!(store.claim(&jti, &lease()).await.is_err());
    assert!(store.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the connect and response timeouts"
    );
    server.restart();
    // Data is gone (no persistence in tests), but the store answers again without a new client.
    let mut answered = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the connection manager reconnects");
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Revoked);
}

#[tokio::test]
async fn redis_store_and_limiter_keep_every_script_on_one_slot() {
    let server = crate::key_layout::slot_checking_redis();
    store_contract(redis_store(&server)).await;
    limiter_contract(redis_limiter(&server)).await;
}
