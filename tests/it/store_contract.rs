//! The token store and rate limiter contracts, written once and run against every
//! implementation: the embedded ones and the Redis ones, on each Redis topology a test can start
//! (a real standalone `redis-server`, Sentinel setup or cluster per test).

use std::sync::Arc;
use std::time::Duration;

use docgate::ratelimit::memory::MemoryLimiter;
use docgate::ratelimit::shared::RedisLimiter;
use docgate::ratelimit::{Decision, Key, RateLimiter, Scope};
use docgate::store::memory::MemoryStore;
use docgate::store::shared::{RedisStore, connect};
use docgate::store::{ClaimOutcome, Lease, LinkState, NewLink, Sent, TokenStore};

use crate::support::{owner_id, pseudonyms};
use docgate::token::Jti;
use docgate::units::parse_rate;

use crate::support::redis::{RedisCluster, RedisSentinel, RedisServer, SharedRedis};

const LINK_TTL: Duration = Duration::from_secs(900);

/// A Redis store on the test's own topology (kept alive by the caller's handle).
fn redis_store(redis: &impl SharedRedis) -> Arc<dyn TokenStore> {
    let conn = connect(&redis.config("docgate:")).unwrap();
    Arc::new(RedisStore::new(conn, "docgate:", LINK_TTL))
}

/// A Redis limiter on the test's own topology.
fn redis_limiter(redis: &impl SharedRedis) -> Arc<dyn RateLimiter> {
    let conn = connect(&redis.config("docgate:")).unwrap();
    Arc::new(RedisLimiter::new(conn, "docgate:", Arc::new(pseudonyms())))
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
    a_completed_download_spends_the_link(store.as_ref()).await;
    cut_offs_count_until_attempts_run_out(store.as_ref()).await;
    refunds_do_not_count(store.as_ref()).await;
    only_the_holder_settles(store.as_ref()).await;
    unknown_links_are_revoked(store.as_ref()).await;
    operators_revoke_one_link_or_all_of_one_person(store.as_ref()).await;
    leases_and_links_expire(store.as_ref()).await;
    a_completed_link_is_rearmed_once_for_its_network(store.as_ref()).await;
    bytes_sent_in_all_spend_the_link_once_they_cover_the_document(store.as_ref()).await;
    a_failure_of_ours_refunds_its_bytes(store.as_ref()).await;
    a_download_passing_the_size_streams_on_until_it_ends(store.as_ref()).await;
    a_dead_holders_reported_bytes_count(store.as_ref()).await;
    only_a_link_that_delivered_one_copy_is_rearmed(store.as_ref()).await;
    racing_claims_have_one_winner(store).await;
}

async fn a_completed_link_is_rearmed_once_for_its_network(store: &dyn TokenStore) {
    let window = Duration::from_secs(60);
    let ttl = Duration::from_secs(10);
    let jti = insert(store, LINK_TTL, 3).await;
    // Not while usable, nor for an unnamed network.
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let by_a = Lease::held_by(ttl, "net-a", true);
    assert!(matches!(
        store.claim(&jti, &by_a).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    ));
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    assert!(!store.rearm(&jti, "", window).await.unwrap());
    assert!(!store.rearm(&jti, "net-b", window).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    // Only that network may claim it.
    let by_b = Lease::held_by(ttl, "net-b", false);
    assert_eq!(
        store.claim(&jti, &by_b).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    // One more download, and only one: even a refunded failure spends it.
    let again = Lease::held_by(ttl, "net-a", false);
    assert!(matches!(
        store.claim(&jti, &again).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    ));
    store
        .release(&jti, &again, Sent::default(), true)
        .await
        .unwrap();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let late = Lease::held_by(ttl, "net-a", false);
    assert_eq!(
        store.claim(&jti, &late).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );

    // Completed by a download that does not arm (a script's GET): never re-armed.
    let jti = insert(store, LINK_TTL, 3).await;
    let plain = Lease::held_by(ttl, "net-a", false);
    store.claim(&jti, &plain).await.unwrap();
    assert!(store.complete(&jti, &plain, Sent::default()).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());

    // Too late: the window has passed.
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        !store
            .rearm(&jti, "net-a", Duration::from_millis(100))
            .await
            .unwrap()
    );
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // Revoked before or after its completion: no second fetch.
    let jti = insert(store, LINK_TTL, 3).await;
    assert!(store.revoke(&jti).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    assert!(
        store.revoke(&jti).await.unwrap(),
        "its second fetch was withdrawn"
    );
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    assert!(
        !store.revoke(&jti).await.unwrap(),
        "nothing left to withdraw"
    );
    // ... and so is every link of one person.
    let jti = insert_for(store, LINK_TTL, 3, Some("owner-z")).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    store.revoke_owner("owner-z").await.unwrap();
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
}

/// The document size the byte-accounting cases report.
const SIZE: u64 = 1000;

fn sent(bytes: u64) -> Sent {
    Sent::new(bytes, SIZE)
}

async fn bytes_sent_in_all_spend_the_link_once_they_cover_the_document(store: &dyn TokenStore) {
    // Attempts to spare: only the bytes spend this link.
    let jti = insert(store, LINK_TTL, 10).await;
    let first = lease();
    assert_eq!(
        store.claim(&jti, &first).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    // Reports are running totals: a repeated or a smaller one counts nothing more.
    for bytes in [300, 600, 600, 500] {
        assert!(store.renew(&jti, &first, sent(bytes)).await.unwrap());
    }
    store.release(&jti, &first, sent(600), false).await.unwrap();
    // A release retried after the fact counts nothing: the lease is no longer held.
    store.release(&jti, &first, sent(600), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 1 }
    );
    let second = lease();
    assert_eq!(
        store.claim(&jti, &second).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    store
        .release(&jti, &second, sent(399), false)
        .await
        .unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 2 },
        "999 bytes of 1000 in all"
    );
    let third = lease();
    assert_eq!(
        store.claim(&jti, &third).await.unwrap(),
        ClaimOutcome::Granted { attempt: 3 }
    );
    store.release(&jti, &third, sent(1), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Used,
        "the bytes cover the document"
    );
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    assert!(
        !store
            .rearm(&jti, "net-a", Duration::from_secs(60))
            .await
            .unwrap()
    );
}

async fn a_failure_of_ours_refunds_its_bytes(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 10).await;
    let failed = lease();
    store.claim(&jti, &failed).await.unwrap();
    assert!(store.renew(&jti, &failed, sent(900)).await.unwrap());
    store.release(&jti, &failed, sent(950), true).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    let next = lease();
    assert_eq!(
        store.claim(&jti, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    store.release(&jti, &next, sent(999), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 1 },
        "the refunded download's bytes did not count"
    );
}

async fn a_download_passing_the_size_streams_on_until_it_ends(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 10).await;
    let cut = lease();
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(900), false).await.unwrap();
    // A whole download after a cut-off one: the link's total passes the size on the way, and
    // the download keeps its lease until it delivers the last byte.
    let whole = lease();
    assert_eq!(
        store.claim(&jti, &whole).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    assert!(store.renew(&jti, &whole, sent(500)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert!(store.complete(&jti, &whole, sent(SIZE)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
}

/// Real time, kept short: leases of 300 ms.
async fn a_dead_holders_reported_bytes_count(store: &dyn TokenStore) {
    let short = || Lease::new(Duration::from_millis(300));
    let most = insert(store, LINK_TTL, 10).await;
    let all = insert(store, LINK_TTL, 10).await;
    let (dying_most, dying_all) = (short(), short());
    store.claim(&most, &dying_most).await.unwrap();
    store.claim(&all, &dying_all).await.unwrap();
    assert!(store.renew(&most, &dying_most, sent(700)).await.unwrap());
    assert!(store.renew(&all, &dying_all, sent(SIZE)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Its holder died having sent all of it: spent.
    assert_eq!(store.peek(&all).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&all, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    // Its holder died having sent 700: 300 more spend it.
    assert_eq!(
        store.peek(&most).await.unwrap(),
        LinkState::Ready { started: 1 }
    );
    let next = lease();
    assert_eq!(
        store.claim(&most, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    assert!(!store.renew(&most, &dying_most, sent(800)).await.unwrap());
    store.release(&most, &next, sent(300), false).await.unwrap();
    assert_eq!(store.peek(&most).await.unwrap(), LinkState::Used);
}

async fn only_a_link_that_delivered_one_copy_is_rearmed(store: &dyn TokenStore) {
    let window = Duration::from_secs(60);
    let ttl = Duration::from_secs(10);
    // A clean download from the button: one copy, and the second fetch makes two.
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.renew(&jti, &by_a, sent(600)).await.unwrap());
    assert!(store.complete(&jti, &by_a, sent(SIZE)).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
    let again = Lease::held_by(ttl, "net-a", false);
    assert!(matches!(
        store.claim(&jti, &again).await.unwrap(),
        ClaimOutcome::Granted { .. }
    ));
    assert!(store.complete(&jti, &again, sent(SIZE)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // Completed after a cut-off download: more than one copy already, no second fetch.
    let jti = insert(store, LINK_TTL, 3).await;
    let cut = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(400), false).await.unwrap();
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, sent(SIZE)).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // A resume that completes what was cut off delivered one copy in all: re-armed.
    let jti = insert(store, LINK_TTL, 3).await;
    let cut = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(400), false).await.unwrap();
    let rest = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &rest).await.unwrap();
    assert!(store.complete(&jti, &rest, sent(600)).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
}

async fn a_completed_download_spends_the_link(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    let l = lease();
    assert_eq!(
        store.claim(&jti, &l).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::InFlight)
    );
    assert!(store.renew(&jti, &l, Sent::default()).await.unwrap());
    assert!(store.complete(&jti, &l, Sent::default()).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
}

async fn cut_offs_count_until_attempts_run_out(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    for attempt in 1..=3 {
        let l = lease();
        assert_eq!(
            store.claim(&jti, &l).await.unwrap(),
            ClaimOutcome::Granted { attempt }
        );
        store
            .release(&jti, &l, Sent::default(), false)
            .await
            .unwrap();
    }
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
}

async fn refunds_do_not_count(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 2).await;
    for _ in 0..4 {
        let l = lease();
        assert_eq!(
            store.claim(&jti, &l).await.unwrap(),
            ClaimOutcome::Granted { attempt: 1 }
        );
        store
            .release(&jti, &l, Sent::default(), true)
            .await
            .unwrap();
    }
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
}

async fn only_the_holder_settles(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    let holder = lease();
    store.claim(&jti, &holder).await.unwrap();
    let stranger = lease();
    assert!(!store.renew(&jti, &stranger, Sent::default()).await.unwrap());
    assert!(
        !store
            .complete(&jti, &stranger, Sent::default())
            .await
            .unwrap()
    );
    store
        .release(&jti, &stranger, Sent::default(), false)
        .await
        .unwrap();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert!(
        store
            .complete(&jti, &holder, Sent::default())
            .await
            .unwrap()
    );
}

async fn unknown_links_are_revoked(store: &dyn TokenStore) {
    let jti = Jti::generate();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Revoked);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Revoked)
    );
}

async fn operators_revoke_one_link_or_all_of_one_person(store: &dyn TokenStore) {
    let jane = owner_id("Jane@Example.org");
    assert_eq!(jane, owner_id("jane@example.org"), "one person, any case");
    let first = insert_for(store, LINK_TTL, 3, Some(&jane)).await;
    let second = insert_for(store, Duration::from_secs(3600), 3, Some(&jane)).await;
    let other = insert_for(store, LINK_TTL, 3, Some(&owner_id("joe@example.org"))).await;
    let single = insert(store, LINK_TTL, 3).await;

    assert!(store.revoke(&single).await.unwrap());
    assert_eq!(store.peek(&single).await.unwrap(), LinkState::Revoked);
    assert!(!store.revoke(&single).await.unwrap(), "already gone");

    // A link in flight is revoked too: its renewal fails and the download stops.
    let lease = lease();
    assert!(matches!(
        store.claim(&first, &lease).await.unwrap(),
        ClaimOutcome::Granted { .. }
    ));
    assert_eq!(store.revoke_owner(&jane).await.unwrap(), 2);
    assert!(!store.renew(&first, &lease, Sent::default()).await.unwrap());
    for jti in [&first, &second] {
        assert_eq!(store.peek(jti).await.unwrap(), LinkState::Revoked);
    }
    assert_eq!(
        store.peek(&other).await.unwrap(),
        LinkState::Ready { started: 0 },
        "another person's link is untouched"
    );
    assert_eq!(store.revoke_owner(&jane).await.unwrap(), 0);
}

/// Real time, kept short: a lease of 300 ms and a link of 300 ms.
async fn leases_and_links_expire(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    let short = Lease::new(Duration::from_millis(300));
    store.claim(&jti, &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = lease();
    assert_eq!(
        store.claim(&jti, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 },
        "a dead holder's lease lapses"
    );
    assert!(!store.renew(&jti, &short, Sent::default()).await.unwrap());
    assert!(!store.complete(&jti, &short, Sent::default()).await.unwrap());
    assert!(store.complete(&jti, &next, Sent::default()).await.unwrap());

    let brief = insert(store, Duration::from_millis(300), 3).await;
    let streaming = insert(store, Duration::from_millis(300), 3).await;
    let l = Lease::new(Duration::from_secs(5));
    store.claim(&streaming, &l).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.peek(&brief).await.unwrap(), LinkState::Revoked);
    assert!(
        store.renew(&streaming, &l, Sent::default()).await.unwrap(),
        "a download in flight keeps its link alive"
    );
    assert!(
        store
            .complete(&streaming, &l, Sent::default())
            .await
            .unwrap()
    );
}

async fn racing_claims_have_one_winner(store: Arc<dyn TokenStore>) {
    let jti = insert(store.as_ref(), LINK_TTL, 3).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            let jti = jti.clone();
            tokio::spawn(async move { store.claim(&jti, &lease()).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), ClaimOutcome::Granted { .. }) {
            granted += 1;
        }
    }
    assert_eq!(granted, 1);
}

/// Runs every limiter case against `limiter`.
async fn limiter_contract(limiter: Arc<dyn RateLimiter>) {
    let rate = parse_rate("3/s").unwrap();
    let a = Key::ip(Scope::RequestPerIp, "192.0.2.1".parse().unwrap());
    let b = Key::ip(Scope::RequestPerIp, "192.0.2.2".parse().unwrap());
    for _ in 0..3 {
        assert_eq!(limiter.check(&a, rate).await.unwrap(), Decision::Allowed);
    }
    match limiter.check(&a, rate).await.unwrap() {
        Decision::Limited { retry_after } => {
            assert!(
                retry_after > Duration::from_millis(200)
                    && retry_after <= Duration::from_millis(334),
                "{retry_after:?}"
            );
        }
        Decision::Allowed => panic!("the fourth event in a second must be limited"),
    }
    assert_eq!(limiter.check(&b, rate).await.unwrap(), Decision::Allowed);
    let email = Key::email(Scope::RequestPerEmail, "jane@example.com");
    let hourly = parse_rate("1/h").unwrap();
    assert_eq!(
        limiter.check(&email, hourly).await.unwrap(),
        Decision::Allowed
    );
    match limiter.check(&email, hourly).await.unwrap() {
        Decision::Limited { retry_after } => {
            assert!(retry_after > Duration::from_secs(3590), "{retry_after:?}");
        }
        Decision::Allowed => panic!("1/h allows one"),
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        limiter.check(&a, rate).await.unwrap(),
        Decision::Allowed,
        "one more after an interval"
    );
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
async fn memory_limiter_meets_the_contract() {
    limiter_contract(Arc::new(MemoryLimiter::new())).await;
}

#[tokio::test]
async fn redis_limiter_meets_the_contract() {
    let server = RedisServer::start();
    limiter_contract(redis_limiter(&server)).await;
}

#[tokio::test]
async fn the_store_on_sentinel_meets_the_contract() {
    let sentinel = RedisSentinel::start();
    store_contract(redis_store(&sentinel)).await;
}

#[tokio::test]
async fn the_limiter_on_sentinel_meets_the_contract() {
    let sentinel = RedisSentinel::start();
    limiter_contract(redis_limiter(&sentinel)).await;
}

#[tokio::test]
async fn the_store_on_a_cluster_meets_the_contract() {
    let cluster = RedisCluster::start();
    store_contract(redis_store(&cluster)).await;
}

#[tokio::test]
async fn the_limiter_on_a_cluster_meets_the_contract() {
    let cluster = RedisCluster::start();
    limiter_contract(redis_limiter(&cluster)).await;
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
    let conn = connect(&server.config("docgate:")).unwrap();
    limiter_contract(Arc::new(RedisLimiter::new(
        conn,
        "docgate:",
        Arc::new(pseudonyms()),
    )))
    .await;
}
