//! docgate on its production token store and limiter (a real `redis-server` per test), end to end
//! over HTTP: the journey, revocation with `DEL`, a Redis outage and recovery, and racing clients
//! across two docgate instances sharing one Redis.

use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;

use crate::support::redis::RedisServer;
use crate::support::*;

async fn on_redis(server: &RedisServer) -> TestApp {
    TestApp::with(&[("DOCGATE_REDIS_URL", &server.url())]).await
}

#[tokio::test]
async fn the_journey_works_on_redis() {
    let server = RedisServer::start();
    let app = on_redis(&server).await;
    let link = app.link("visitor@example.org", "resume").await;
    let claims = app.app.codec.verify(token_of(&link), now()).unwrap();
    let mut redis = server.client();
    let key = format!("docgate:token:{{{}}}", claims.jti.as_str());
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut redis).unwrap();
    assert_eq!(exists, 1, "the link is recorded under its documented key");

    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256(&response.bytes().await.unwrap()),
        sha256(&content(1, RESUME_LEN))
    );
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut redis).unwrap();
    assert_eq!(exists, 0, "a spent link has no key");
    let again = app.get(&link).await;
    assert_eq!(again.status(), 410);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
}

#[tokio::test]
async fn del_revokes_at_once_and_cuts_a_download_in_flight() {
    let server = RedisServer::start();
    let app = on_redis(&server).await;
    let (idle, idle_link) = app.mint("resume").await;
    let (busy, busy_link) = app.mint("big").await;
    let mut redis = server.client();

    let mut download = PartialGet::start(&app, &busy_link, &[], 64 * 1024).await;
    assert_eq!(download.status, 200);

    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("docgate:token:{{{}}}", idle.jti.as_str()))
        .arg(format!("docgate:token:{{{}}}", busy.jti.as_str()))
        .query(&mut redis)
        .unwrap();
    assert_eq!(deleted, 2);

    let response = app.get(&idle_link).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "link_revoked");

    // The download in flight stops within about two seconds, short of the end.
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), download.read_more(BIG_LEN))
        .await
        .expect("the revoked download was cut off");
    let elapsed = started.elapsed();
    assert!(download.body.len() < BIG_LEN, "read {read} more bytes");
    assert!(elapsed < Duration::from_secs(4), "cut after {elapsed:?}");
    let head = app.head(&busy_link).await;
    assert_eq!(head.status(), 410);
}

#[tokio::test]
async fn a_redis_outage_fails_closed_and_recovers_without_a_restart() {
    let mut server = RedisServer::start();
    let app = on_redis(&server).await;
    let (_, link) = app.mint("resume").await;
    server.stop();

    let download = app.get(&link).await;
    assert_eq!(download.status(), 503);
    assert!(download.headers().get("content-disposition").is_none());
    let body = download.bytes().await.unwrap();
    assert!(body.len() < 1024, "an error, not the document");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "service_unavailable");

    let request = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(request.status(), 503);
    assert!(app.outbox().is_empty(), "no mail without a recorded link");

    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["token_store"], "unavailable");

    server.restart();
    // Ready again once Redis is back, without a restart.
    eventually(
        "readiness once Redis is back",
        Duration::from_secs(15),
        || async { (app.readyz().await.0 == 200).then_some(()) },
    )
    .await;
    let link = app.link("visitor@example.org", "resume").await;
    let response = app.get(&link).await;
    assert_whole_resume(response).await;
}

#[tokio::test]
async fn fifty_clients_racing_across_two_instances_get_one_download() {
    let server = RedisServer::start();
    let first = on_redis(&server).await;
    let second = on_redis(&server).await;
    let (claims, link) = first.mint("big").await;
    let links = [link.clone(), link.replace(&first.base, &second.base)];

    let results = race((0..50).map(|i| links[i % 2].clone()).collect()).await;
    let complete: Vec<_> = results
        .iter()
        .filter(|(s, len)| *s == 200 && *len == BIG_LEN)
        .collect();
    assert_eq!(complete.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, len)| (*s == 200 && *len == BIG_LEN) || matches!(s, 409 | 410)),
        "{results:?}"
    );
    let mut redis = server.client();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("docgate:token:{{{}}}", claims.jti.as_str()))
        .query(&mut redis)
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn link_requests_are_rate_limited_in_redis_across_instances() {
    let server = RedisServer::start();
    let limits = [
        ("DOCGATE_REDIS_URL", server.url()),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h".to_owned()),
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "2/h".to_owned()),
    ];
    let limits: Vec<(&str, &str)> = limits.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = TestApp::with(&limits).await;
    let second = TestApp::with(&limits).await;
    let mut redis = server.client();
    let mailed = || first.outbox().len() + second.outbox().len();
    assert_eq!(
        first
            .request_link("jane@example.org", "resume")
            .await
            .status(),
        202
    );
    assert_eq!(mailed(), 1);

    // The address's limit is shared: the other instance answers alike but mails nothing.
    let silent = second.request_link("Jane@Example.org", "resume").await;
    assert_eq!(silent.status(), 202);
    assert_eq!(mailed(), 1, "no second mail for the address");

    // So is the client's: the third request from this IP is refused by either instance.
    let refused = second.request_link("someone@example.org", "resume").await;
    assert_eq!(refused.status(), 429);
    let wait = crate::support::retry_after(&refused);
    assert!((1..=1800).contains(&wait), "{wait}");
    assert_eq!(mailed(), 1);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("docgate:rl:*")
        .query(&mut redis)
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("jane")), "{keys:?}");
}

/// Redis frozen for longer than a claim may wait (2 s), less than a completion may (8 s,
/// `topology::SETTLE_TIMEOUT`), while a download has sent all but its end: the last piece waits
/// for the completion, the download ends whole, and the link is spent. With the claim's timeout
/// the completion failed here and the recipient's download broke after its `200`.
#[tokio::test]
async fn a_completion_waits_out_a_slow_redis() {
    let server = RedisServer::start();
    let app = on_redis(&server).await;
    let (claims, link) = app.mint("big").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    // Unread, the transfer stops at the socket buffers, far from the end of the document.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.pause();
    let paused = Instant::now();
    let frozen = Duration::from_secs(4);
    let thaw = tokio::spawn(async move {
        tokio::time::sleep(frozen).await;
        server.resume();
        server
    });
    let body = response.bytes().await.expect("the whole body");
    let ended = paused.elapsed();
    let _server = thaw.await.unwrap();
    assert_eq!(body.len(), BIG_LEN);
    assert_eq!(sha256(&body), sha256(&content(3, BIG_LEN)));
    assert!(
        ended >= frozen,
        "the last piece waited for Redis: {ended:?}"
    );
    assert_eq!(
        app.app.backends.store.peek(&claims.jti).await.unwrap(),
        docgate::store::LinkState::Used
    );
}

#[tokio::test]
async fn a_hung_redis_times_out_into_503_and_recovers() {
    let server = RedisServer::start();
    let app = on_redis(&server).await;
    let (_, link) = app.mint("resume").await;
    server.pause();

    let started = Instant::now();
    let download = app.get(&link).await;
    let waited = started.elapsed();
    assert_eq!(download.status(), 503);
    assert!(download.headers().get("content-disposition").is_none());
    assert!(
        waited < Duration::from_secs(8),
        "bounded by the response timeout: {waited:?}"
    );
    let request = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(request.status(), 503);
    assert!(app.outbox().is_empty());
    assert_eq!(app.readyz().await.0, 503);

    server.resume();
    // The link works again once Redis answers.
    eventually(
        "the link once Redis answers",
        Duration::from_secs(15),
        || async { (app.head(&link).await.status() == 200).then_some(()) },
    )
    .await;
    let download = app.get(&link).await;
    assert_whole_resume(download).await;
}
