//! The key layout a Redis Cluster can serve, checked by Redis itself: a one-node cluster that owns
//! every slot answers like a standalone server, but refuses any `#!lua` script that touches keys
//! of more than one slot (`CROSSSLOT` for the declared keys, an error for the others). The store,
//! limiter, request log and mail queue contracts run on it (in their own modules), and the
//! production journey here; links land on many slots.

use std::time::Duration;

// The client crate, not `support::redis`.
use ::redis;

use crate::support::redis::RedisServer;
use crate::support::*;

/// A `redis-server` in cluster mode owning all 16384 slots, once its cluster state is ok.
pub(crate) fn slot_checking_redis() -> RedisServer {
    let server = RedisServer::with_args(&["--cluster-enabled", "yes"]);
    let mut conn = server.client();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "16383"])
        .query(&mut conn)
        .unwrap();
    for _ in 0..500 {
        let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap();
        if info.contains("cluster_state:ok") {
            return server;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the one-node cluster did not come up");
}

#[tokio::test]
async fn the_checking_server_refuses_a_script_that_spans_slots() {
    let server = slot_checking_redis();
    let mut conn = server.client();
    let spans: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("#!lua\nredis.call('SET', KEYS[1], 1)\nreturn redis.call('SET', 'elsewhere', 1)")
        .arg(1)
        .arg("docgate:token:{a}")
        .query(&mut conn);
    assert!(spans.is_err(), "a script reaching another slot is refused");
    let declared: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("#!lua\nredis.call('SET', KEYS[1], 1)\nreturn redis.call('SET', KEYS[2], 1)")
        .arg(2)
        .arg("docgate:token:{a}")
        .arg("docgate:token:{b}")
        .query(&mut conn);
    let refused = declared.unwrap_err();
    assert_eq!(refused.code(), Some("CROSSSLOT"), "{refused}");
}

#[tokio::test]
async fn the_journey_runs_with_every_script_on_one_slot_and_links_spread_over_slots() {
    let server = slot_checking_redis();
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", &server.url()),
        ("DOCGATE_ADMIN_TOKEN", "an-admin-token-for-tests"),
    ])
    .await;
    let mut conn = server.client();
    let mut slots = std::collections::BTreeSet::new();
    let mut links = Vec::new();
    for n in 0..8 {
        let link = app.link(&format!("visitor{n}@example.org"), "resume").await;
        let claims = app.app.codec.verify(token_of(&link), now()).unwrap();
        let key = format!("docgate:token:{{{}}}", claims.jti.as_str());
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut conn)
            .unwrap();
        let spent: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("docgate:spent:{{{}}}", claims.jti.as_str()))
            .query(&mut conn)
            .unwrap();
        assert_eq!(slot, spent, "a link's keys share its slot");
        slots.insert(slot);
        links.push(link);
    }
    assert!(slots.len() >= 7, "links land on different slots: {slots:?}");

    // Download (claim, complete, log), used, revoke one person's links, erase her.
    let response = app.get(&links[0]).await;
    assert_eq!(response.status(), 200);
    assert_whole_resume(response).await;
    assert_eq!(app.get(&links[0]).await.status(), 410);
    let revoked = app
        .client
        .post(format!("{}/admin/revocations", app.admin_base))
        .bearer_auth("an-admin-token-for-tests")
        .json(&serde_json::json!({"email": "visitor1@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let body: serde_json::Value = revoked.json().await.unwrap();
    assert_eq!(body["revoked"], 1);
    let gone = app.get(&links[1]).await;
    assert_eq!(gone.status(), 410);
    let body: serde_json::Value = gone.json().await.unwrap();
    assert_eq!(body["error"], "link_revoked");
    assert_eq!(app.get(&links[2]).await.status(), 200, "others stay usable");

    let owner = owner_id("visitor0@example.org");
    let hers = app.app.backends.requests.person(&owner).await.unwrap();
    assert!(hers.len() >= 2, "her request and her download: {hers:?}");
    let erased = app.app.backends.requests.erase(&owner).await.unwrap();
    assert_eq!(erased, hers.len() as u64);
    assert!(
        app.app
            .backends
            .requests
            .person(&owner)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A store over `url` (any user), its keys under `docgate:`.
async fn store_at(url: &str) -> docgate::store::shared::RedisStore {
    let config = docgate::config::RedisConfig::standalone(url, "docgate:");
    let conn = docgate::store::shared::connect(&config).unwrap();
    docgate::store::shared::RedisStore::new(conn, "docgate:", Duration::from_secs(900))
}

#[tokio::test]
async fn revoking_a_persons_links_reports_a_link_it_could_not_revoke_and_a_retry_finishes() {
    use docgate::store::{LinkState, NewLink, TokenStore};
    use docgate::token::Jti;

    let server = RedisServer::start();
    let store = store_at(&server.url()).await;
    let owner = owner_id("jane@example.org");
    let (reachable, unreachable) = (Jti::generate(), Jti::generate());
    for jti in [&reachable, &unreachable] {
        store
            .insert(&NewLink {
                jti,
                doc: "resume",
                ttl: Duration::from_secs(900),
                attempts: 3,
                owner: Some(&owner),
            })
            .await
            .unwrap();
    }
    // A user that may reach the index and one link's keys only: the other link's revocation
    // fails, as it would with its master unreachable.
    let mut conn = server.client();
    let grant = |jti: &Jti| {
        [
            format!("~docgate:token:{{{}}}", jti.as_str()),
            format!("~docgate:spent:{{{}}}", jti.as_str()),
        ]
    };
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "operator", "on", ">operator-password", "+@all"])
        .arg(format!("~docgate:owner:{{{owner}}}"))
        .arg(&grant(&reachable))
        .query(&mut conn)
        .unwrap();
    let limited = store_at(&format!(
        "redis://operator:operator-password@127.0.0.1:{}",
        server.port
    ))
    .await;

    assert!(
        limited.revoke_owner(&owner).await.is_err(),
        "a link left live is an error, not a smaller count"
    );
    assert_eq!(
        store.peek(&reachable).await.unwrap(),
        LinkState::Revoked,
        "what could be revoked is"
    );
    assert!(matches!(
        store.peek(&unreachable).await.unwrap(),
        LinkState::Ready { .. }
    ));
    let indexed: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("docgate:owner:{{{owner}}}"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        indexed,
        [unreachable.as_str()],
        "the failed one stays indexed"
    );

    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "operator"])
        .arg(&grant(&unreachable))
        .query(&mut conn)
        .unwrap();
    assert_eq!(limited.revoke_owner(&owner).await.unwrap(), 1);
    assert_eq!(store.peek(&unreachable).await.unwrap(), LinkState::Revoked);
    let left: i64 = redis::cmd("EXISTS")
        .arg(format!("docgate:owner:{{{owner}}}"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, 0, "the index is empty, so gone");
}
