//! Owner notifications of completed downloads, with real parts: docgate over real HTTP, a real
//! `redis-server` and SMTP server (aiosmtpd), and a webhook receiver (`support::webhook`) that
//! checks each request's signature with the shared secret.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use docgate::metrics::Metrics;
use docgate::notify::Download;
use docgate::notify::webhook::Webhook;
use docgate::outbox::direct::Direct;
use docgate::outbox::queue::{RedisOutbox, Revival, Sender};
use docgate::outbox::{Deliverer, Job, Outbox};
use docgate::token::Claims;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::support::binary::Docgate;
use crate::support::free_port;
use crate::support::mail::{codec, composer, settings, transport};
use crate::support::redis::{RedisServer, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::webhook::{HOOK_SECRET, HOOK_TOKEN, Receiver};
use crate::support::{
    BIG_LEN, Mail, PartialGet, RESUME_LEN, SECRET, TestApp, assert_whole_resume, drained,
    drained_at, eventually, fixture_env, fixture_env_with, now, token_of, write_fixtures,
};

const VISITOR: &str = "visitor@example.org";
const OWNER: &str = "owner@example.com";

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A delivered owner's notice, parsed.
struct NoticeMail {
    to: String,
    reply_to: Option<String>,
    subject: String,
    text: String,
}

fn notice_mails(paths: &[std::path::PathBuf]) -> Vec<NoticeMail> {
    paths
        .iter()
        .filter_map(|path| {
            let raw = std::fs::read(path).unwrap();
            let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let to = message.to()?.first()?.address()?.to_owned();
            (to == OWNER).then(|| NoticeMail {
                to,
                reply_to: message
                    .reply_to()
                    .and_then(|r| r.first())
                    .and_then(|a| a.address())
                    .map(str::to_owned),
                subject: message.subject().unwrap_or_default().to_owned(),
                text: message.body_text(0).unwrap_or_default().into_owned(),
            })
        })
        .collect()
}

fn download() -> Download {
    Download {
        event_id: docgate::token::new_jti(),
        jti: docgate::token::Jti::generate(),
        doc: "resume".to_owned(),
        title: "Jane Doe's resume".to_owned(),
        email: Some(VISITOR.to_owned()),
        downloaded_at: now(),
        client_ip: IpAddr::from([192, 0, 2, 7]),
    }
}

/// A queue on `redis` and its sender, delivering to `sink` and `webhook`, counting in `metrics`.
async fn queue(
    redis: &RedisServer,
    sink: &SmtpSink,
    webhook: Option<Webhook>,
    metrics: Arc<Metrics>,
) -> (
    RedisOutbox,
    tokio_util::sync::CancellationToken,
    JoinHandle<()>,
) {
    let outbox = RedisOutbox::new(
        docgate::store::shared::connect(&redis.config("docgate:")).unwrap(),
        "docgate:",
    );
    let sender = Sender::new(
        outbox.clone(),
        redis.config("docgate:"),
        Deliverer::smtp(transport(&sink.url()), composer())
            .with_webhook(webhook)
            .with_metrics(metrics),
        settings(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone().cancelled_owned()));
    (outbox, stop, task)
}

/// A webhook notice queued in Redis, its sender running, the receiver answering `statuses` first.
struct HookQueue {
    _redis: RedisServer,
    sink: SmtpSink,
    receiver: Receiver,
    metrics: Arc<Metrics>,
    outbox: RedisOutbox,
    stop: tokio_util::sync::CancellationToken,
    task: JoinHandle<()>,
    download: Download,
}

impl HookQueue {
    async fn notify(statuses: &[u16]) -> Self {
        let redis = RedisServer::start();
        let sink = SmtpSink::start();
        let receiver = Receiver::start(statuses).await;
        let metrics = Arc::new(Metrics::new());
        let webhook = Webhook::new(&receiver.config()).unwrap();
        let (outbox, stop, task) = queue(&redis, &sink, Some(webhook), metrics.clone()).await;
        let download = download();
        outbox
            .submit(&Job::Webhook(download.clone()))
            .await
            .unwrap();
        Self {
            _redis: redis,
            sink,
            receiver,
            metrics,
            outbox,
            stop,
            task,
            download,
        }
    }
}

fn series(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not rendered"))
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn a_completed_download_reaches_the_owner_by_mail_and_by_signed_webhook_without_logging_addresses()
 {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{HOOK_SECRET}\n")).unwrap();
    let (docgate, port, admin_port) =
        Docgate::serve_on_free_ports(dir.path(), Duration::from_secs(20), |port, admin_port| {
            let base = format!("http://127.0.0.1:{port}");
            let settings = [
                ("DOCGATE_LISTEN", format!("127.0.0.1:{port}")),
                ("DOCGATE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
                ("DOCGATE_REDIS_URL", redis.url()),
                ("DOCGATE_SMTP_URL", sink.url()),
                ("DOCGATE_OWNER_EMAIL", format!("Jane Doe <{OWNER}>")),
                ("DOCGATE_OWNER_WEBHOOK_URL", receiver.url.clone()),
                (
                    "DOCGATE_OWNER_WEBHOOK_SECRET_FILE",
                    secret_file.display().to_string(),
                ),
                ("DOCGATE_LOG", "docgate=debug".to_owned()),
                ("DOCGATE_LOG_FORMAT", "json".to_owned()),
            ];
            fixture_env_with(dir.path(), &base, SECRET, settings)
        })
        .await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // The link mail, with the document's size and the expiry in words.
    let asked = client
        .post(format!("{base}/api/download-requests"))
        .json(&serde_json::json!({ "email": VISITOR, "document": "resume" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    let mail = Mail::read(&sink.delivered(1).await[0]);
    assert_eq!(mail.to, VISITOR);
    assert!(
        mail.text.contains("Jane Doe's resume (307 kB)"),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains("expires in 15 minutes, at "),
        "{}",
        mail.text
    );
    assert!(mail.html.contains(&format!("href=\"{}\"", mail.link)));
    let claims: Claims = codec().verify(token_of(&mail.link), now()).unwrap();

    // Where the notice's address comes from: the owner's request log, by the link's jti. The
    // token has none, and nothing else keeps it.
    let mut conn = redis.client();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("docgate:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        keys.iter().all(|k| !k.contains("requester")),
        "no second copy of the address: {keys:?}"
    );
    let token_fields: Vec<String> = redis::cmd("HVALS")
        .arg(format!("docgate:token:{}", claims.jti.as_str()))
        .query(&mut conn)
        .unwrap();
    assert!(
        token_fields.iter().all(|v| !v.contains('@')),
        "{token_fields:?}"
    );

    let started = now();
    let body = client.get(&mail.link).send().await.unwrap();
    assert_whole_resume(body).await;

    // The owner's mail, through the same queue and SMTP server.
    let delivered = sink.delivered(2).await;
    let notices = notice_mails(&delivered);
    assert_eq!(notices.len(), 1);
    let notice = &notices[0];
    assert_eq!(notice.to, OWNER);
    assert_eq!(notice.subject, "Jane Doe's resume was downloaded");
    assert_eq!(notice.reply_to.as_deref(), Some(VISITOR));
    for expected in [
        "Jane Doe's resume was downloaded completely.",
        "Document: Jane Doe's resume (resume)",
        &format!("Link requested by: {VISITOR}"),
        "Downloaded from: 127.0.0.1",
        &format!("Link id: {}", claims.jti.as_str()),
        " UTC",
    ] {
        assert!(
            notice.text.contains(expected),
            "{expected:?} missing:\n{}",
            notice.text
        );
    }

    // The webhook: signed with the secret from the file, with every field.
    let received = receiver.wait_for(1).await;
    let hook = &received[0];
    assert_eq!(
        hook.path_and_query,
        format!("/hooks/docgate?token={HOOK_TOKEN}")
    );
    assert_eq!(hook.header("content-type"), "application/json");
    assert!(hook.header("user-agent").starts_with("docgate/"));
    hook.verify();
    let json = hook.json();
    assert_eq!(json["event"], "document.downloaded");
    assert_eq!(json["id"], hook.header("docgate-event-id"));
    assert_eq!(json["document"], "resume");
    assert_eq!(json["title"], "Jane Doe's resume");
    assert_eq!(json["email"], VISITOR);
    assert_eq!(json["client_ip"], "127.0.0.1");
    assert_eq!(json["jti"], claims.jti.as_str());
    let at = time::OffsetDateTime::parse(
        json["downloaded_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!(
        (i64::try_from(started).unwrap()..=i64::try_from(now()).unwrap() + 1).contains(&at),
        "{at}"
    );

    // One notice each, not more, and counted: nothing is left in the queue to send.
    drained_at(&client, &format!("http://127.0.0.1:{admin_port}")).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(sink.messages().len(), 2);
    let metrics = client
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "docgate_notifications_total{channel=\"webhook\",outcome=\"sent\"} 1",
        "docgate_notifications_total{channel=\"mail\",outcome=\"sent\"} 1",
        "docgate_mail_total{outcome=\"sent\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    // None of the addresses, the webhook's URL token or its secret reached the logs, which did
    // capture the journey.
    let logs = docgate.stderr.text();
    assert!(logs.contains("download notice queued"), "{logs}");
    assert!(logs.contains("mail delivered"), "{logs}");
    for secret in [
        VISITOR,
        OWNER,
        HOOK_TOKEN,
        HOOK_SECRET,
        token_of(&mail.link),
    ] {
        if let Some(at) = logs.find(secret) {
            let line = logs[..at].rsplit('\n').next().unwrap_or("");
            panic!("{secret:?} is in the logs: {line}...");
        }
    }
}

#[tokio::test]
async fn a_webhook_answering_500_twice_is_retried_with_backoff_until_it_answers_200() {
    let queued = HookQueue::notify(&[500, 500]).await;
    let received = queued.receiver.wait_for(3).await;
    // Every attempt is signed anew, and carries the same event id.
    for hook in &received {
        hook.verify();
        assert_eq!(hook.header("docgate-event-id"), queued.download.event_id);
        assert_eq!(hook.json()["jti"], queued.download.jti.as_str());
    }
    // Waits of 100 ms, then 200 ms, between the attempts.
    assert!(received[1].at - received[0].at >= Duration::from_millis(100));
    assert!(received[2].at - received[1].at >= Duration::from_millis(200));

    drained(&queued.outbox).await;
    assert_eq!(
        queued.receiver.received().len(),
        3,
        "delivered once: no more attempts"
    );
    let depth = queued.outbox.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 0));
    assert!(
        queued.sink.messages().is_empty(),
        "a webhook notice is no mail"
    );
    for (outcome, n) in [("retried", 2.0), ("sent", 1.0), ("dead_lettered", 0.0)] {
        let name =
            format!("docgate_notifications_total{{channel=\"webhook\",outcome=\"{outcome}\"}}");
        assert_eq!(series(&queued.metrics, &name), n, "{name}");
    }
    queued.stop.cancel();
    queued.task.await.unwrap();
}

#[tokio::test]
async fn a_webhook_answering_400_is_dead_lettered_at_once_and_an_operator_can_retry_it() {
    let queued = HookQueue::notify(&[400]).await;
    let dead = eventually(
        "the webhook's dead letter",
        Duration::from_secs(10),
        || async {
            assert!(queued.receiver.received().len() <= 1);
            queued.outbox.dead_letters(10).await.unwrap().pop()
        },
    )
    .await;
    assert_eq!(dead.kind, "webhook");
    assert_eq!(dead.cause, "rejected");
    assert_eq!(dead.detail, "the webhook answered HTTP 400");
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.jti, queued.download.jti);
    assert_eq!(dead.email.as_deref(), Some(VISITOR));
    drained(&queued.outbox).await;
    assert_eq!(queued.receiver.received().len(), 1, "a 400 is not retried");
    assert_eq!(
        series(
            &queued.metrics,
            "docgate_notifications_total{channel=\"webhook\",outcome=\"dead_lettered\"}"
        ),
        1.0
    );

    // The receiver is fixed (it answers 200 from now on): the operator queues the notice again,
    // and it arrives with its original event id.
    assert_eq!(
        queued.outbox.retry_dead_letter(&dead.id).await.unwrap(),
        Revival::Queued
    );
    let received = queued.receiver.wait_for(2).await;
    received[1].verify();
    assert_eq!(
        received[1].header("docgate-event-id"),
        queued.download.event_id
    );
    assert_eq!(received[1].body, received[0].body);
    drained(&queued.outbox).await;
    assert!(queued.outbox.dead_letters(10).await.unwrap().is_empty());
    queued.stop.cancel();
    queued.task.await.unwrap();
}

#[tokio::test]
async fn without_a_queue_an_interrupted_or_partial_download_tells_nobody_and_a_completed_one_does()
{
    let receiver = Receiver::start(&[503]).await;
    let app = TestApp::with(&[
        ("DOCGATE_OWNER_EMAIL", OWNER),
        ("DOCGATE_OWNER_WEBHOOK_URL", &receiver.url),
        ("DOCGATE_OWNER_WEBHOOK_SECRET", HOOK_SECRET),
    ])
    .await;
    let link = app.link(VISITOR, "big").await;
    let mails = app.outbox().len();

    // Cut off mid-transfer.
    let partial = PartialGet::start(&app, &link, &[], 1024 * 1024).await;
    assert_eq!(partial.status, 200);
    drop(partial);
    app.wait_for_head(&link, 200).await;
    // A range short of the end.
    let range = app.get_range(&link, "bytes=0-99").await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap().len(), 100);
    let log = app.wait_for_log(3).await;
    let mut outcomes: Vec<&str> = log.iter().map(|e| e.outcome.as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["interrupted", "partial", "sent"]);
    app.idle().await;
    assert_eq!(app.outbox().len(), mails, "no notice mail");
    assert!(receiver.received().is_empty(), "no webhook call");

    // Completed: the owner's mail is written to the outbox, and the webhook, answering 503 at
    // first, is called again a second later.
    assert_eq!(app.download(&link).await.len(), BIG_LEN);
    let notices = eventually("the owner's notice", Duration::from_secs(10), || async {
        let notices = notice_mails(&app.outbox());
        (!notices.is_empty()).then_some(notices)
    })
    .await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "A big file was downloaded");
    assert!(
        notices[0]
            .text
            .contains(&format!("Link requested by: {VISITOR}"))
    );
    let received = receiver.wait_for(2).await;
    assert!(received[1].at - received[0].at >= Duration::from_millis(900));
    for hook in &received {
        hook.verify();
        assert_eq!(hook.json()["email"], VISITOR);
        assert_eq!(hook.json()["document"], "big");
    }
    assert_eq!(
        received[0].header("docgate-event-id"),
        received[1].header("docgate-event-id")
    );
    // Counted once the delivery returned, just after the receiver answered.
    let sent = "docgate_notifications_total{channel=\"webhook\",outcome=\"sent\"}";
    eventually(sent, Duration::from_secs(5), || async {
        (series(&app.app.metrics, sent) >= 1.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_link_minted_without_an_address_is_reported_with_the_address_unknown() {
    let receiver = Receiver::start(&[]).await;
    let app = TestApp::with(&[
        ("DOCGATE_OWNER_WEBHOOK_URL", &receiver.url),
        ("DOCGATE_OWNER_WEBHOOK_SECRET", HOOK_SECRET),
    ])
    .await;
    // Recorded straight in the store, as before notifications were turned on.
    let (claims, link) = app.mint("resume").await;
    assert_eq!(app.download(&link).await.len(), RESUME_LEN);
    let received = receiver.wait_for(1).await;
    received[0].verify();
    assert_eq!(received[0].json()["email"], Value::Null);
    assert_eq!(received[0].json()["jti"], claims.jti.as_str());
}

#[tokio::test]
async fn direct_smtp_sends_the_owner_s_mail() {
    let sink = SmtpSink::start();
    let mailer = Direct::new(Deliverer::smtp(transport(&sink.url()), composer()));
    let download = download();
    mailer
        .submit(&Job::OwnerMail {
            to: OWNER.parse().unwrap(),
            download: download.clone(),
        })
        .await
        .unwrap();
    let notices = notice_mails(&sink.delivered(1).await);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "Jane Doe's resume was downloaded");
    assert!(notices[0].text.contains("Downloaded from: 192.0.2.7"));
    assert!(notices[0].text.contains(download.jti.as_str()));
}

#[tokio::test]
async fn a_link_mail_queued_by_an_older_docgate_is_still_delivered() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let claims = Claims::new("resume", now(), 900);
    // The fields an older docgate wrote: no `kind`, no `size`.
    let _: String = redis::cmd("XADD")
        .arg("docgate:{mail}:queue")
        .arg("*")
        .arg(&[
            ("jti", claims.jti.as_str()),
            ("doc", "resume"),
            ("iat", &claims.iat.to_string()),
            ("exp", &claims.exp.to_string()),
            ("to", VISITOR),
            ("title", "Jane Doe's resume"),
            ("enqueued-at", "0"),
            ("attempts", "0"),
        ])
        .query(&mut redis.client())
        .unwrap();
    let (_outbox, stop, task) = queue(&redis, &sink, None, Arc::new(Metrics::new())).await;
    let mail = Mail::read(&sink.delivered(1).await[0]);
    assert_eq!(mail.to, VISITOR);
    assert_eq!(codec().verify(token_of(&mail.link), now()).unwrap(), claims);
    assert!(
        mail.text.contains("download Jane Doe's resume."),
        "no size: none told"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn check_says_how_the_owner_is_told_and_reaches_the_webhook_host() {
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let config = |url: &str| {
        let mut env: std::collections::HashMap<String, String> =
            fixture_env(dir.path(), "http://localhost:8080", SECRET)
                .into_iter()
                .collect();
        for (k, v) in [
            ("DOCGATE_OWNER_EMAIL", OWNER),
            ("DOCGATE_OWNER_WEBHOOK_URL", url),
            ("DOCGATE_OWNER_WEBHOOK_SECRET", HOOK_SECRET),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        docgate::config::Config::from_source(&env).unwrap()
    };
    let lines = docgate::check::run(config(&receiver.url)).await.unwrap();
    let line = lines.iter().find(|l| l.name == "owner notices").unwrap();
    assert_eq!(
        line.to_string(),
        "owner notices: ok (mail to the owner; webhook host 127.0.0.1 takes connections)"
    );
    assert!(receiver.received().is_empty(), "check sends no event");

    let closed = format!("http://127.0.0.1:{}/hooks?token={HOOK_TOKEN}", free_port());
    let lines = docgate::check::run(config(&closed)).await.unwrap();
    let line = lines.iter().find(|l| l.name == "owner notices").unwrap();
    assert!(!line.ok, "{line}");
    let text = line.to_string();
    assert!(
        text.contains("webhook host 127.0.0.1: the webhook could not be reached"),
        "{text}"
    );
    assert!(
        !text.contains(HOOK_TOKEN) && !text.contains(OWNER),
        "{text}"
    );
}
