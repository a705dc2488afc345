//! Many docgate replicas on one Redis, as production runs them: three real `docgate` processes
//! sharing a 3-master Redis Cluster (or a Sentinel setup), one SMTP server and one documents
//! directory, driven over real HTTP. Links land on every master, each link request is mailed
//! exactly once whichever replica took it, the retention purge running on every replica deletes
//! each old entry once, 50 clients racing for one link across the replicas get one complete
//! download, and traffic running through a failover gets successes or clean 503s only, spends no
//! link by a failure and loses no mail.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;
use futures_util::StreamExt;

use docgate::requestlog::shared::RedisLog;
use docgate::requestlog::{Entry, Event, RequestLog};
use docgate::store::shared::connect;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::binary::Docgate;
use crate::support::mail::Mail;
use crate::support::process::free_port;
use crate::support::redis::{RedisCluster, RedisSentinel, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::*;

/// One running `docgate serve` process.
struct Replica {
    process: Docgate,
    base: String,
    admin_base: String,
    _dir: tempfile::TempDir,
}

/// `count` docgate processes on `redis`, mailing through `sink`, serving the documents of
/// `documents` (one directory for all, as one bucket is).
async fn replicas(
    redis: &impl SharedRedis,
    sink: &SmtpSink,
    documents: &std::path::Path,
    count: usize,
    extra: &[(&str, &str)],
) -> Vec<Replica> {
    write_fixtures(documents);
    let mut started = Vec::new();
    for _ in 0..count {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let base = format!("http://127.0.0.1:{port}");
        let mut env = fixture_env(dir.path(), &base, SECRET);
        let mut settings: Vec<(&str, String)> = vec![
            ("DOCGATE_LISTEN", format!("127.0.0.1:{port}")),
            ("DOCGATE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
            (
                "DOCGATE_CATALOG",
                documents.join("catalog.toml").display().to_string(),
            ),
            (
                "DOCGATE_DOCUMENTS_DIR",
                documents.join("documents").display().to_string(),
            ),
            ("DOCGATE_SMTP_URL", sink.url()),
        ];
        settings.extend(redis.env());
        settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        for (k, v) in settings {
            env.retain(|(name, _)| name != k);
            env.push((k.to_owned(), v));
        }
        let process = Docgate::spawn(dir.path(), env, &["serve"]);
        started.push(Replica {
            process,
            base,
            admin_base: format!("http://127.0.0.1:{admin_port}"),
            _dir: dir,
        });
    }
    for replica in &mut started {
        replica.process.serving(Duration::from_secs(30)).await;
    }
    started
}

/// Asks `replica` for a link to `document` for `email`; returns the status.
async fn ask(client: &reqwest::Client, replica: &str, email: &str, document: &str) -> u16 {
    client
        .post(format!("{replica}/api/download-requests"))
        .json(&serde_json::json!({ "email": email, "document": document }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The link in each mail the sink holds, by recipient; panics on a second mail to one address.
fn links_by_recipient(sink: &SmtpSink) -> HashMap<String, String> {
    let mut links = HashMap::new();
    for path in sink.messages() {
        let mail = Mail::read(&path);
        let token = token_of(&mail.link).to_owned();
        assert!(
            links.insert(mail.to.clone(), token).is_none(),
            "a second mail to {}",
            mail.to
        );
    }
    links
}

/// How many mails the sink holds, by recipient.
fn mails_by_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for path in sink.messages() {
        *count.entry(Mail::read(&path).to).or_insert(0) += 1;
    }
    count
}

/// Waits (bounded) until every replica says it is ready.
async fn all_ready(client: &reqwest::Client, replicas: &[Replica], within: Duration) {
    for replica in replicas {
        eventually("every replica ready", within, || async {
            let status = client
                .get(format!("{}/readyz", replica.base))
                .send()
                .await
                .ok()?
                .status();
            (status == 200).then_some(())
        })
        .await;
    }
}

/// The keys of links (`docgate:token:{...}`) a node holds itself.
fn token_keys_on(port: u16) -> Vec<String> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS")
        .arg("docgate:token:{*}")
        .query(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn link_requests_spread_over_three_replicas_are_mailed_once_each_and_land_on_every_master() {
    const N: usize = 24;
    let cluster = RedisCluster::start();
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(&cluster, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();

    for i in 0..N {
        let replica = &replicas[i % 3].base;
        let status = ask(
            &client,
            replica,
            &format!("visitor{i}@example.org"),
            "resume",
        )
        .await;
        assert_eq!(status, 202);
    }
    sink.delivered(N).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    // The queue is empty on every replica: no further send can come. Exactly N, one per address.
    let links = links_by_recipient(&sink);
    assert_eq!(sink.messages().len(), N);
    assert_eq!(links.len(), N);

    // The links' keys are spread over the three masters: each holds some, in the slot of its
    // hash tag.
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    let mut held = 0;
    for port in &masters {
        let keys = token_keys_on(*port);
        assert!(!keys.is_empty(), "the master on {port} holds no link");
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        for key in &keys {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut conn)
                .unwrap();
            let here: i64 = redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(slot)
                .query(&mut conn)
                .unwrap();
            assert!(here >= 1, "{key} is in slot {slot}, served by this master");
        }
        held += keys.len();
    }
    assert_eq!(held, N, "one key per link");

    // Each link downloads once, from any replica, then is spent everywhere.
    for (i, token) in links.values().enumerate() {
        let response = client
            .get(format!("{}/d/{token}", replicas[i % 3].base))
            .send()
            .await
            .unwrap();
        assert_whole_resume(response).await;
        let again = client
            .get(format!("{}/d/{token}", replicas[(i + 1) % 3].base))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 410);
        let body: serde_json::Value = again.json().await.unwrap();
        assert_eq!(body["error"], "link_used");
    }
    for port in &masters {
        assert!(token_keys_on(*port).is_empty(), "a spent link has no key");
    }
    assert_eq!(sink.messages().len(), N, "nothing else was mailed");
}

#[tokio::test]
async fn fifty_clients_racing_across_three_replicas_on_a_cluster_get_one_download() {
    let cluster = RedisCluster::start();
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(&cluster, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        ask(&client, &replicas[0].base, "racer@example.org", "big").await,
        202
    );
    let mail = Mail::read(&sink.delivered(1).await[0]);
    let token = token_of(&mail.link);

    // A script's GET (no text/html in Accept): no confirmation page, the bytes at once.
    let urls = (0..50)
        .map(|i| format!("{}/d/{token}", replicas[i % 3].base))
        .collect();
    let results = race(urls).await;
    let complete = results
        .iter()
        .filter(|(s, len)| *s == 200 && *len == BIG_LEN)
        .count();
    assert_eq!(complete, 1, "{results:?}");
    for (status, len) in &results {
        assert!(
            (*status == 200 && *len == BIG_LEN)
                || (matches!(status, 409 | 410 | 503) && *len < 1024),
            "a refusal carries no document bytes: {status} with {len} bytes"
        );
    }
    for replica in &replicas {
        let again = client
            .get(format!("{}/d/{token}", replica.base))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 410);
    }
    let keys: usize = cluster
        .master_ports()
        .iter()
        .map(|p| token_keys_on(*p).len())
        .sum();
    assert_eq!(keys, 0, "the spent link has no key");
}

#[tokio::test]
async fn the_retention_purge_running_on_every_replica_deletes_each_old_entry_once() {
    const OLD: usize = 30;
    let cluster = RedisCluster::start();
    // The shared request log, as today's replicas left it: old entries and recent ones.
    let config = cluster.config("docgate:");
    let log = RedisLog::new(
        connect(&config).unwrap(),
        &config.prefix,
        None,
        Arc::new(pseudonyms()),
    );
    let entry = |days: i64, email: String| {
        let mut entry = Entry::now(Event::LinkRequested, [192, 0, 2, 1].into(), "sent");
        entry.at = (OffsetDateTime::now_utc() - time::Duration::days(days))
            .format(&Rfc3339)
            .unwrap();
        entry.email = Some(email);
        entry.document = Some("resume".to_owned());
        entry
    };
    for i in 0..OLD {
        log.record(&entry(10, format!("old{i}@example.org")))
            .await
            .unwrap();
    }
    for i in 0..3 {
        log.record(&entry(1, format!("new{i}@example.org")))
            .await
            .unwrap();
    }

    // Three replicas start together; each sweeps the log at once, then hourly.
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(
        &cluster,
        &sink,
        documents.path(),
        3,
        &[
            ("DOCGATE_REQUEST_LOG_RETENTION", "7d"),
            ("DOCGATE_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let purged = || -> u64 {
        replicas
            .iter()
            .flat_map(|r| {
                r.process
                    .stderr
                    .text()
                    .lines()
                    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                    .filter(|v| v["message"] == "request log entries past their retention deleted")
                    .map(|v| v["purged"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    eventually(
        "the old entries purged",
        Duration::from_secs(20),
        || async { (purged() >= OLD as u64).then_some(()) },
    )
    .await;
    // Each deleted once, whichever replica got to it, and no sweep failed.
    assert_eq!(purged(), OLD as u64);
    let left = log.recent(100, 0).await.unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter()
            .all(|e| e.email.as_deref().is_some_and(|a| a.starts_with("new"))),
        "{left:?}"
    );
    for replica in &replicas {
        let log = replica.process.stderr.text();
        assert!(!log.contains("retention not applied"), "{log}");
    }
}

/// Bound on waiting out the lease of a claim whose replica lost Redis (`LEASE_TTL`, 10 s).
const LEASE_LAPSED: Duration = Duration::from_secs(30);

/// What one download attempt during a failover got.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attempt {
    /// 200 and every byte of the `Content-Length`.
    Complete,
    /// 200 cut short of its `Content-Length`: not presented as complete.
    Cut,
    /// A clean 503: no document, no bytes.
    Refused,
}

/// One GET of `url`, read to its end, classified; any other answer fails the test.
async fn attempt(client: &reqwest::Client, url: &str) -> Attempt {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) => panic!("the connection failed before an answer: {e}"),
    };
    match response.status().as_u16() {
        200 => {
            let expected = response.content_length().expect("a Content-Length") as usize;
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(_) => return Attempt::Cut,
                }
            }
            if body.len() < expected {
                return Attempt::Cut;
            }
            assert_eq!(body.len(), expected);
            assert_eq!(sha256(&body), sha256(&content(1, RESUME_LEN)));
            Attempt::Complete
        }
        503 => {
            assert!(response.headers().get("content-disposition").is_none());
            let body = response.bytes().await.unwrap();
            assert!(body.len() < 1024, "an error, not the document");
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "service_unavailable");
            Attempt::Refused
        }
        other => panic!("{url}: {other} during the failover"),
    }
}

/// What the traffic loop saw: each link request's address and status, each download's outcome.
#[derive(Default, Debug)]
struct Seen {
    requests: Vec<(String, u16)>,
    downloads: BTreeMap<String, Attempt>,
}

/// Link requests and downloads (of `tokens`, each once) against `bases` in turn until `stop`,
/// bounded.
async fn traffic(bases: Vec<String>, tokens: Vec<String>, stop: Arc<AtomicBool>) -> Seen {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = Seen::default();
    let mut tokens = tokens.into_iter();
    for i in 0..2000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let base = &bases[i % bases.len()];
        let email = format!("during{i}@example.org");
        let status = ask(&client, base, &email, "resume").await;
        assert!(
            matches!(status, 202 | 503),
            "a link request answered {status}"
        );
        seen.requests.push((email, status));
        if let Some(token) = tokens.next() {
            let outcome = attempt(&client, &format!("{base}/d/{token}")).await;
            seen.downloads.insert(token, outcome);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen
}

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
    for i in 0..LINKS {
        let email = format!("before{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "resume").await,
            202
        );
    }
    sink.delivered(LINKS).await;
    let tokens: Vec<String> = links_by_recipient(&sink).into_values().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let loop_ = tokio::spawn(traffic(bases, tokens.clone(), stop.clone()));
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
                || seen.downloads.values().any(|a| *a == Attempt::Refused),
            "no answer met the outage: {seen:?}"
        );
    }

    // No link was spent by a failed attempt: each one not completed downloads now, whole. (A
    // claim recorded before its download failed is not released while Redis is gone: its lease,
    // `LEASE_TTL`, lapses first, and meanwhile the link answers 409 as while in flight.)
    for token in &tokens {
        let url = format!("{}/d/{token}", replicas[0].base);
        match seen.downloads.get(token) {
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
        seen.downloads.values().fold(BTreeMap::new(), |mut m, a| {
            *m.entry(format!("{a:?}")).or_insert(0) += 1;
            m
        })
    );
}

fn replication(port: u16) -> String {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut conn| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut conn)
        })
        .unwrap_or_default()
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

/// A topology's docgate environment, without the harness it came from (so a failover closure may
/// hold the harness mutably).
struct EnvOnly(Vec<(&'static str, String)>);

impl SharedRedis for EnvOnly {
    fn config(&self, _prefix: &str) -> docgate::config::RedisConfig {
        unreachable!("only the environment is used")
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        self.0.clone()
    }
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
