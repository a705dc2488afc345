//! Many docgate replicas on one Redis, as production runs them: three real `docgate` processes
//! sharing a 3-master Redis Cluster (or a Sentinel setup), one SMTP server and one documents
//! directory, driven over real HTTP. Links land on every master, each link request is mailed
//! exactly once whichever replica took it, the retention purge running on every replica deletes
//! each old entry once, and 50 clients racing for one link across the replicas get one complete
//! download. A dead letter retried by the operator, a transient SMTP failure retried by every
//! replica's sender, and the owner's notices (mail and webhook) are each delivered once. Traffic
//! through a failover or a crash, on the same replicas: [`crate::crash`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

// The client crate, not `support::redis`.
use ::redis;

use docgate::requestlog::shared::RedisLog;
use docgate::requestlog::{Entry, Event, RequestLog};
use docgate::store::shared::connect;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::binary::Docgate;
use crate::support::mail::Mail;
use crate::support::redis::{RedisCluster, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::webhook::{HOOK_SECRET, Receiver};
use crate::support::*;

/// One running `docgate serve` process.
pub(crate) struct Replica {
    pub(crate) process: Docgate,
    pub(crate) base: String,
    pub(crate) admin_base: String,
    _dir: tempfile::TempDir,
}

/// `count` docgate processes on `redis`, mailing through `sink`, serving the documents of
/// `documents` (one directory for all, as one bucket is).
pub(crate) async fn replicas(
    redis: &impl SharedRedis,
    sink: &SmtpSink,
    documents: &std::path::Path,
    count: usize,
    extra: &[(&str, &str)],
) -> Vec<Replica> {
    write_fixtures(documents);
    let replica = || async {
        let dir = tempfile::tempdir().unwrap();
        let (process, port, admin_port) = Docgate::serve_on_free_ports(
            dir.path(),
            Duration::from_secs(30),
            |port, admin_port| {
                let base = format!("http://127.0.0.1:{port}");
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
                fixture_env_with(dir.path(), &base, SECRET, settings)
            },
        )
        .await;
        Replica {
            process,
            base: format!("http://127.0.0.1:{port}"),
            admin_base: format!("http://127.0.0.1:{admin_port}"),
            _dir: dir,
        }
    };
    // Started side by side, as a deployment's replicas are.
    futures_util::future::join_all((0..count).map(|_| replica())).await
}

/// Asks `replica` for a link to `document` for `email`; returns the status.
pub(crate) async fn ask(
    client: &reqwest::Client,
    replica: &str,
    email: &str,
    document: &str,
) -> u16 {
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
pub(crate) fn links_by_recipient(sink: &SmtpSink) -> HashMap<String, String> {
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
pub(crate) fn mails_by_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for path in sink.messages() {
        *count.entry(Mail::read(&path).to).or_insert(0) += 1;
    }
    count
}

/// Waits (bounded) until every replica says it is ready.
pub(crate) async fn all_ready(client: &reqwest::Client, replicas: &[Replica], within: Duration) {
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
    let mut conn = crate::support::redis::node(port);
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
        let mut conn = crate::support::redis::node(*port);
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

/// A topology's docgate environment, without the harness it came from (so a failover closure may
/// hold the harness mutably).
pub(crate) struct EnvOnly(pub(crate) Vec<(&'static str, String)>);

impl SharedRedis for EnvOnly {
    fn config(&self, _prefix: &str) -> docgate::config::RedisConfig {
        unreachable!("only the environment is used")
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        self.0.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Exactly once across replicas: the mail queue's retries and the owner's notices.

/// The addressee of a saved message (a link mail or an owner's notice).
pub(crate) fn recipient(path: &std::path::Path) -> String {
    let raw = std::fs::read(path).unwrap();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    message
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .unwrap()
        .to_owned()
}

/// Runs `docgate mail ARGS` (the operator's command) against `redis`.
fn mail_command(redis: &impl SharedRedis, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let env = redis.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["mail"];
    all.extend_from_slice(args);
    cli(dir.path(), &env, &all)
}

/// `docgate mail status`: what waits in the queue, as the operator reads it.
fn queue_status(redis: &impl SharedRedis) -> serde_json::Value {
    let (code, out, err) = mail_command(redis, &["status"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).unwrap()
}

/// Waits (bounded) until a replica's `/metrics` counts `n` dead letters.
async fn dead_letters_at(client: &reqwest::Client, admin_base: &str, n: usize) {
    eventually("the dead letters", Duration::from_secs(15), || async {
        let (_, series) = scrape_at(client, admin_base).await;
        (series.get("docgate_mail_dead_letters") == Some(&(n as f64))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_retried_by_the_operator_is_delivered_once_by_three_replicas_on_a_cluster() {
    let cluster = RedisCluster::start();
    let sink = SmtpSink::start();
    sink.control("rcpt 550 5.1.1 <refused@example.org>: no such user here");
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(&cluster, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        ask(&client, &replicas[1].base, "refused@example.org", "resume").await,
        202
    );
    // Refused for good: a dead letter, nothing saved by the server, nothing left to send.
    dead_letters_at(&client, &replicas[0].admin_base, 1).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    assert!(sink.messages().is_empty());
    let (code, out, err) = mail_command(&cluster, &["dead-letters"]);
    assert_eq!(code, 0, "{err}");
    let letters: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{out}");
    assert_eq!(letters[0]["cause"], "rejected");
    assert_eq!(letters[0]["kind"], "link");
    let id = letters[0]["id"].as_str().unwrap().to_owned();

    // The mailbox is fixed; the operator queues it again, and a second retry of the same id (a
    // colleague doing the same) finds nothing: the senders of three replicas deliver it once.
    sink.control("");
    let (code, out, err) = mail_command(&cluster, &["retry", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("queued {id} again")), "{out}");
    let (code, _, err) = mail_command(&cluster, &["retry", &id]);
    assert_eq!(code, 65, "no dead letter left to retry: {err}");
    assert!(err.contains("no dead letter"), "{err}");

    let delivered = sink.delivered(1).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    let mail = Mail::read(&delivered[0]);
    assert_eq!(mail.to, "refused@example.org");
    assert_eq!(
        queue_status(&cluster),
        serde_json::json!({"queued": 0, "retrying": 0, "dead": 0})
    );
    // The retried mail carries the original link, which works once.
    let url = format!("{}/d/{}", replicas[2].base, token_of(&mail.link));
    assert_whole_resume(client.get(&url).send().await.unwrap()).await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 410);
    assert_eq!(sink.messages().len(), 1, "nothing else was mailed");
}

#[tokio::test]
async fn a_transient_smtp_failure_retried_by_three_replicas_delivers_each_mail_once() {
    const N: usize = 9;
    let cluster = RedisCluster::start();
    let sink = SmtpSink::start();
    sink.control("data 451 4.3.0 Try again later");
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(&cluster, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();
    for i in 0..N {
        let email = format!("later{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "resume").await,
            202
        );
    }
    // Every mail met the failure at least once (the server saved none), then the server accepts.
    eventually(
        "every mail refused once",
        Duration::from_secs(15),
        || async {
            let refused = sink.events().iter().filter(|e| *e == "data 451").count();
            (refused >= N).then_some(())
        },
    )
    .await;
    assert!(sink.messages().is_empty());
    sink.control("");

    sink.delivered(N).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    // Once each (a second mail to one address panics), and nothing is dead or waiting.
    let links = links_by_recipient(&sink);
    assert_eq!(links.len(), N);
    assert_eq!(sink.messages().len(), N);
    assert_eq!(
        queue_status(&cluster),
        serde_json::json!({"queued": 0, "retrying": 0, "dead": 0})
    );
}

#[tokio::test]
async fn owner_notices_for_downloads_served_by_three_replicas_arrive_once_each_and_none_for_a_refusal()
 {
    const N: usize = 6;
    const OWNER: &str = "owner@example.com";
    let cluster = RedisCluster::start();
    let sink = SmtpSink::start();
    let receiver = Receiver::start(&[]).await;
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(
        &cluster,
        &sink,
        documents.path(),
        3,
        &[
            ("DOCGATE_OWNER_EMAIL", OWNER),
            ("DOCGATE_OWNER_WEBHOOK_URL", receiver.url.as_str()),
            ("DOCGATE_OWNER_WEBHOOK_SECRET", HOOK_SECRET),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..N {
        let email = format!("reader{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "resume").await,
            202
        );
    }
    sink.delivered(N).await;
    let links = links_by_recipient(&sink);
    assert_eq!(links.len(), N);

    // Each link downloaded whole on one replica, then refused (410) on another; a third link
    // is only looked at (HEAD) and cut short (a Range): none of that tells the owner anything.
    let codec = crate::support::mail::codec();
    let mut completed = std::collections::BTreeSet::new();
    for (i, (_, token)) in links.iter().enumerate() {
        let jti = codec.verify(token, now()).unwrap().jti.as_str().to_owned();
        if i == N - 1 {
            let url = format!("{}/d/{token}", replicas[i % 3].base);
            assert_eq!(client.head(&url).send().await.unwrap().status(), 200);
            let part = client
                .get(&url)
                .header("range", "bytes=0-99")
                .send()
                .await
                .unwrap();
            assert_eq!(part.status(), 206);
            assert_eq!(part.bytes().await.unwrap().len(), 100);
            continue;
        }
        let url = format!("{}/d/{token}", replicas[i % 3].base);
        assert_whole_resume(client.get(&url).send().await.unwrap()).await;
        let again = format!("{}/d/{token}", replicas[(i + 1) % 3].base);
        assert_eq!(client.get(&again).send().await.unwrap().status(), 410);
        completed.insert(jti);
    }

    // One mail and one webhook call per completed download, whichever replica served it.
    let hooks = receiver.wait_for(N - 1).await;
    sink.delivered(N + N - 1).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    let hooks = {
        // Anything late would have arrived while the queues drained.
        assert_eq!(receiver.received().len(), hooks.len());
        hooks
    };
    let mut hooked = std::collections::BTreeSet::new();
    let mut events = std::collections::BTreeSet::new();
    for hook in &hooks {
        hook.verify();
        let json = hook.json();
        assert_eq!(json["event"], "document.downloaded");
        assert!(
            hooked.insert(json["jti"].as_str().unwrap().to_owned()),
            "{json}"
        );
        assert!(
            events.insert(json["id"].as_str().unwrap().to_owned()),
            "{json}"
        );
    }
    assert_eq!(hooked, completed, "one webhook call per completed download");
    let notices: Vec<String> = sink
        .messages()
        .iter()
        .filter(|p| recipient(p) == OWNER)
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let text = message.body_text(0).unwrap().into_owned();
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Link id: "))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(
        notices.len(),
        N - 1,
        "one owner's mail per completed download"
    );
    let mailed: std::collections::BTreeSet<String> = notices.into_iter().collect();
    assert_eq!(mailed, completed);
    assert_eq!(sink.messages().len(), N + N - 1, "nothing else was mailed");
    assert_eq!(
        queue_status(&cluster),
        serde_json::json!({"queued": 0, "retrying": 0, "dead": 0})
    );
}
