//! The storage soak: a few thousand hostile requests over real HTTP, from hundreds of spoofed
//! (but trusted, through `DOCGATE_TRUSTED_PROXIES`) client addresses, against a docgate on the
//! embedded log and one on real Redis. The store's size is read before and after: the request
//! log stays within `DOCGATE_REQUEST_LOG_MAX_ENTRIES` (entries, file bytes, Redis bytes), the
//! refusals are counted in metrics and not stored, and a real request is served afterwards.

use std::collections::HashMap;

use ::redis::{self, Commands};
use docgate::requestlog::{Entry, Event, NOTES_PER_LINK, PER_PERSON_PER_HOUR};
use docgate::token::Claims;
use tokio::task::JoinSet;

use crate::support::redis::RedisServer;
use crate::support::scrape;
use crate::support::*;

/// The log's cap in these tests (the smallest the configuration accepts).
const CAP: usize = 100;
/// Spoofed clients; each sends one [`round`].
const CLIENTS: usize = 400;
/// Addresses asked for again and again, from every client.
const VICTIMS: usize = 10;
/// Empty posts from one client, far past its limit.
const BURST: usize = 200;
/// Concurrent connections sending the rounds.
const WORKERS: usize = 8;
/// The most bytes one stored entry takes (every field is bounded); generous.
const MAX_ENTRY_BYTES: u64 = 2048;
/// The answers of one round, in order.
const ROUND: [u16; 8] = [415, 415, 413, 400, 404, 202, 410, 200];

/// A docgate for the soak: a small cap, a tight per-address limit, clients named by
/// `X-Forwarded-For` from loopback.
async fn soak_app(extra: &[(&str, &str)]) -> TestApp {
    let cap = CAP.to_string();
    let mut env = vec![
        ("DOCGATE_REQUEST_LOG_MAX_ENTRIES", cap.as_str()),
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "10/h"),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
        ("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "10/h"),
    ];
    env.extend_from_slice(extra);
    TestApp::with(&env).await
}

/// The links the hostile clients use: a genuine expired one, and a live one they open.
struct Links {
    expired: String,
    live: String,
}

async fn links(app: &TestApp) -> Links {
    let expired = Claims::new("resume", now() - 2000, 900);
    let expired = format!("{}/d/{}", app.base, app.app.codec.sign(&expired).unwrap());
    let (_, live) = app.mint("resume").await;
    Links { expired, live }
}

/// One hostile client (`n`): every kind of refused link request, an over-limit address, a `GET`
/// of an expired link, an open of a live one. Returns the statuses.
async fn round(client: reqwest::Client, base: String, links: &Links, n: usize) -> Vec<u16> {
    let ip = format!("10.{}.{}.7", n / 200, n % 200);
    let post = || {
        client
            .post(format!("{base}/api/download-requests"))
            .header("X-Forwarded-For", ip.as_str())
    };
    let json = |body: String| post().header("Content-Type", "application/json").body(body);
    let victim = format!("victim{}@example.org", n % VICTIMS);
    let requests = [
        post(),
        post().header("Content-Type", "text/plain").body("hello"),
        json(format!(r#"{{"email": "{}"}}"#, "a".repeat(5000))),
        json(r#"{"email": "not an address", "document": "resume"}"#.to_owned()),
        json(r#"{"email": "x@example.org", "document": "nothing"}"#.to_owned()),
        json(format!(r#"{{"email": "{victim}", "document": "resume"}}"#)),
        client
            .get(&links.expired)
            .header("X-Forwarded-For", ip.as_str())
            .header("Accept", "application/json"),
        client
            .get(&links.live)
            .header("X-Forwarded-For", ip.as_str())
            .header("Accept", "text/html"),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.send().await.unwrap();
        statuses.push(response.status().as_u16());
        response.bytes().await.unwrap();
    }
    statuses
}

/// Sends every round and the burst; asserts each answer. Returns how many link requests went.
async fn hostile(app: &TestApp) -> usize {
    let links = std::sync::Arc::new(links(app).await);
    let mut workers = JoinSet::new();
    for worker in 0..WORKERS {
        let (client, base, links) = (app.client.clone(), app.base.clone(), links.clone());
        workers.spawn(async move {
            let mut answers = Vec::new();
            for n in (worker..CLIENTS).step_by(WORKERS) {
                answers.push((n, round(client.clone(), base.clone(), &links, n).await));
            }
            answers
        });
    }
    let mut rounds = 0;
    while let Some(answers) = workers.join_next().await {
        for (n, statuses) in answers.unwrap() {
            assert_eq!(statuses, ROUND, "client {n}");
            rounds += 1;
        }
    }
    assert_eq!(rounds, CLIENTS);

    // One client far past its limit: refused with 429, never stored.
    let mut burst = HashMap::<u16, usize>::new();
    for _ in 0..BURST {
        let response = app
            .client
            .post(format!("{}/api/download-requests", app.base))
            .header("X-Forwarded-For", "192.0.2.99")
            .send()
            .await
            .unwrap();
        *burst.entry(response.status().as_u16()).or_default() += 1;
    }
    assert_eq!(burst, HashMap::from([(415, 10), (429, BURST - 10)]));
    CLIENTS * 6 + BURST
}

/// What the log holds after the soak: the cap, only answered requests and bounded notes.
async fn check_log(app: &TestApp, posts: usize) -> Vec<Entry> {
    let log = app
        .app
        .backends
        .requests
        .recent(usize::MAX, 0)
        .await
        .unwrap();
    assert_eq!(log.len(), CAP, "the log is full, not over");
    let mut per_person = HashMap::<String, usize>::new();
    let mut per_link = HashMap::<String, usize>::new();
    let mut per_client = HashMap::<std::net::IpAddr, usize>::new();
    for entry in &log {
        *per_client.entry(entry.client_ip).or_default() += 1;
        match entry.event {
            Event::LinkRequested => {
                assert!(
                    ["sent", "not_sent_address_limit"].contains(&entry.outcome.as_str()),
                    "a refusal was stored: {entry:?}"
                );
                *per_person.entry(entry.email.clone().unwrap()).or_default() += 1;
            }
            Event::Download | Event::LinkOpened => {
                *per_link.entry(entry.jti.clone().unwrap()).or_default() += 1;
            }
        }
    }
    assert!(
        per_person.values().all(|n| *n <= PER_PERSON_PER_HOUR),
        "{per_person:?}"
    );
    assert!(
        per_link.values().all(|n| *n <= NOTES_PER_LINK),
        "{per_link:?}"
    );
    // A client stores at most what its rate limits let through (10 link requests and 10
    // downloads an hour here); the client far past its limit stored nothing.
    assert!(per_client.values().all(|n| *n <= 20), "{per_client:?}");
    assert!(!per_client.contains_key(&"192.0.2.99".parse().unwrap()));

    // Every refusal is counted.
    let (_, series) = scrape(app).await;
    let counted = |outcome: &str| {
        series
            .get(&format!(
                "docgate_link_requests_total{{outcome=\"{outcome}\"}}"
            ))
            .copied()
            .unwrap_or(0.0) as usize
    };
    assert_eq!(counted("unsupported_media_type"), 2 * CLIENTS + 10);
    assert_eq!(counted("body_too_large"), CLIENTS);
    assert_eq!(counted("invalid_request"), CLIENTS);
    assert_eq!(counted("unknown_document"), CLIENTS);
    assert_eq!(counted("rate_limited"), BURST - 10);
    assert_eq!(counted("sent") + counted("not_sent_address_limit"), CLIENTS);
    assert_eq!(counted("sent"), VICTIMS);
    let all: f64 = series
        .iter()
        .filter(|(k, _)| k.starts_with("docgate_link_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(all as usize, posts, "every link request is counted");
    assert_eq!(
        series["docgate_download_refusals_total{outcome=\"link_expired\"}"] as usize,
        CLIENTS
    );
    assert_eq!(series["docgate_link_pages_total"] as usize, CLIENTS);
    log
}

/// A person asks, gets the mail, downloads: served, and stored.
async fn real_request_still_works(app: &TestApp) {
    let link = app.link("real.person@example.org", "resume").await;
    let response = app.get(&link).await;
    assert_whole_resume(response).await;
    let newest = eventually(
        "the real request's download recorded",
        std::time::Duration::from_secs(5),
        || async {
            let newest = app.app.backends.requests.recent(2, 0).await.unwrap();
            (newest.len() == 2 && newest[0].outcome == "completed").then_some(newest)
        },
    )
    .await;
    assert_eq!(newest[1].email.as_deref(), Some("real.person@example.org"));
    assert_eq!(newest[1].outcome, "sent");
    let all = app.app.backends.requests.recent(usize::MAX, 0).await;
    assert_eq!(all.unwrap().len(), CAP, "still the cap");
}

#[tokio::test]
async fn the_embedded_log_stays_under_its_cap_under_a_flood() {
    let app = soak_app(&[]).await;
    let file = app.path("requests.jsonl");
    let size = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let before = size();
    assert_eq!(before, 0);

    let posts = hostile(&app).await;
    check_log(&app, posts).await;
    let after = size();
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    println!("request log file: {before} bytes before, {after} after; {lines} lines");
    // The file holds the live entries and at most as many evicted ones before a compaction.
    assert!(lines <= 2 * CAP + 1, "{lines} lines");
    assert!(
        after <= (2 * CAP as u64 + 1) * MAX_ENTRY_BYTES,
        "{after} bytes"
    );

    real_request_still_works(&app).await;
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines <= 2 * CAP + 1, "{lines} lines");
}

/// `INFO memory`'s `used_memory`.
fn used_memory(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The request log's keys, and the bytes Redis holds for them (`MEMORY USAGE`).
fn log_keys(conn: &mut redis::Connection) -> (Vec<String>, u64) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("docgate:{log}:*")
        .query(conn)
        .unwrap();
    let bytes = keys
        .iter()
        .map(|key| {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .query(conn)
                .unwrap();
            used.unwrap_or(0)
        })
        .sum();
    (keys, bytes)
}

#[tokio::test]
async fn the_redis_log_stays_under_its_cap_under_a_flood() {
    let redis = RedisServer::start();
    let mut conn = redis.client();
    let url = redis.url();
    let app = soak_app(&[("DOCGATE_REDIS_URL", url.as_str())]).await;
    let keys_before: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    let memory_before = used_memory(&mut conn);

    let posts = hostile(&app).await;
    check_log(&app, posts).await;
    let keys_after: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    let memory_after = used_memory(&mut conn);
    let (log_keys_after, log_bytes) = log_keys(&mut conn);
    println!(
        "redis: {keys_before} keys and {memory_before} bytes before, {keys_after} keys and \
         {memory_after} bytes after; the request log: {} keys, {log_bytes} bytes",
        log_keys_after.len()
    );
    let entries: u64 = conn.hlen("docgate:{log}:entries").unwrap();
    let index: u64 = conn.zcard("docgate:{log}:index").unwrap();
    assert_eq!((entries, index), (CAP as u64, CAP as u64));
    // Evicted entries left their person's index too.
    let people: u64 = log_keys_after
        .iter()
        .filter(|k| k.starts_with("docgate:{log}:person:"))
        .map(|k| conn.zcard::<_, u64>(k).unwrap())
        .sum();
    let owners: u64 = conn.hlen("docgate:{log}:owners").unwrap();
    assert!(
        people <= owners && owners <= CAP as u64,
        "{people} {owners}"
    );
    // The log's keys: the entries, their index and counter, one index per person (the victims),
    // one owner per link made, one notes count per link used.
    assert!(
        log_keys_after.len() <= 3 + 2 * VICTIMS + 2,
        "{log_keys_after:?}"
    );
    assert!(
        log_bytes <= CAP as u64 * MAX_ENTRY_BYTES,
        "{log_bytes} bytes"
    );

    real_request_still_works(&app).await;
    let entries: u64 = conn.hlen("docgate:{log}:entries").unwrap();
    assert_eq!(entries, CAP as u64);
}

/// A request log that cannot be written (a full disk: `/dev/full` answers every write with
/// `ENOSPC`) loses entries, with a warning, not requests: the link is mailed and downloads.
#[tokio::test]
async fn a_full_disk_loses_log_entries_not_requests() {
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "Linux has /dev/full"
    );
    let app = TestApp::with(&[("DOCGATE_REQUEST_LOG", "/dev/full")]).await;
    let link = app.link("jane@example.org", "resume").await;
    let response = app.get(&link).await;
    assert_whole_resume(response).await;
    assert!(
        app.app
            .backends
            .requests
            .recent(10, 0)
            .await
            .unwrap()
            .is_empty(),
        "nothing could be stored"
    );
    let (_, series) = scrape(&app).await;
    assert_eq!(series["docgate_link_requests_total{outcome=\"sent\"}"], 1.0);
}
