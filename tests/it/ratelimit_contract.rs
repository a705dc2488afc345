//! The rate limiter contract, written once and run against every implementation: the embedded
//! one and the Redis one, on each Redis topology a test can start (a real standalone
//! `redis-server`, Sentinel setup or cluster per test).

use std::sync::Arc;
use std::time::Duration;

use docgate::ratelimit::memory::MemoryLimiter;
use docgate::ratelimit::shared::RedisLimiter;
use docgate::ratelimit::{Decision, Key, RateLimiter, Scope};
use docgate::store::shared::connect;
use docgate::units::parse_rate;

use crate::support::pseudonyms;
use crate::support::redis::{RedisCluster, RedisSentinel, RedisServer, SharedRedis};

/// A Redis limiter on the test's own topology.
pub(crate) fn redis_limiter(redis: &impl SharedRedis) -> Arc<dyn RateLimiter> {
    let conn = connect(&redis.config("docgate:")).unwrap();
    Arc::new(RedisLimiter::new(conn, "docgate:", Arc::new(pseudonyms())))
}

/// Runs every limiter case against `limiter`.
pub(crate) async fn limiter_contract(limiter: Arc<dyn RateLimiter>) {
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
async fn memory_limiter_meets_the_contract() {
    limiter_contract(Arc::new(MemoryLimiter::new())).await;
}

#[tokio::test]
async fn redis_limiter_meets_the_contract() {
    let server = RedisServer::start();
    limiter_contract(redis_limiter(&server)).await;
}

#[tokio::test]
async fn the_limiter_on_sentinel_meets_the_contract() {
    let sentinel = RedisSentinel::start();
    limiter_contract(redis_limiter(&sentinel)).await;
}

#[tokio::test]
async fn the_limiter_on_a_cluster_meets_the_contract() {
    let cluster = RedisCluster::start();
    limiter_contract(redis_limiter(&cluster)).await;
}
