//! The Redis mail queue and its SMTP sender, against a real `redis-server` and a real SMTP server
//! (aiosmtpd), each on a free loopback port per test.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use docgate::mail::smtp::{self, Failure};
use docgate::mail::{LinkMail, MailError};
use docgate::outbox::queue::{RedisOutbox, Revival, Sender, SenderSettings};
use docgate::outbox::{Deliverer, Job, Outbox};
use docgate::store::shared::connect;
use docgate::token::Claims;
use lettre::AsyncTransport;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::mail::{PUBLIC_URL, codec, composer, settings, transport};
use crate::support::redis::{RedisServer, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::{Mail, drained, eventually, now};

const PREFIX: &str = "docgate:";

async fn outbox(redis: &RedisServer) -> RedisOutbox {
    RedisOutbox::new(connect(&redis.config(PREFIX)).unwrap(), PREFIX)
}

/// A link mail for `visitor@example.org`, its link living `ttl` seconds from `iat`.
fn mail_issued(iat: u64, ttl: u64) -> LinkMail {
    LinkMail {
        to: "visitor@example.org".parse().unwrap(),
        claims: Claims::new("resume", iat, ttl),
        title: "Jane Doe's resume".to_owned(),
        size: None,
    }
}

fn mail() -> LinkMail {
    mail_issued(now(), 900)
}

/// A sender running as a task.
struct Running {
    consumer: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn spawn(
        outbox: &RedisOutbox,
        redis: &RedisServer,
        sink: &SmtpSink,
        settings: SenderSettings,
    ) -> Self {
        let sender = Sender::new(
            outbox.clone(),
            redis.config(PREFIX),
            Deliverer::smtp(transport(&sink.url()), composer()),
            settings,
        );
        let consumer = sender.consumer().to_owned();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(sender.run(async {
            let _ = rx.await;
        }));
        Self {
            consumer,
            stop: Some(tx),
            task,
        }
    }

    /// Signals shutdown and waits (bounded) for the sender to stop.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the sender stops promptly")
            .unwrap();
    }

    /// Kills the sender where it stands, as a crash would: nothing runs after this.
    async fn crash(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

async fn wait_for_messages(sink: &SmtpSink, n: usize) {
    eventually(
        &format!("{n} delivered messages"),
        Duration::from_secs(15),
        || async { (sink.messages().len() >= n).then_some(()) },
    )
    .await;
}

/// The claims of a delivered message's link, verified with the shared secret.
fn claims_of(path: &std::path::Path) -> Claims {
    let delivered = Mail::read(path);
    let token = delivered.link.rsplit_once("/d/").unwrap().1;
    codec().verify(token, now()).unwrap()
}

/// Entries pending in the group, per Redis.
fn pending(redis: &RedisServer) -> usize {
    let (count, ..): (usize, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(format!("{PREFIX}{{mail}}:queue"))
        .arg("senders")
        .query(&mut redis.client())
        .unwrap();
    count
}

#[tokio::test]
async fn a_queued_mail_is_delivered_once_with_a_signed_link_and_the_queue_holds_no_link() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let outbox = outbox(&redis).await;
    let mail = mail();
    outbox.submit(&Job::Link(mail.clone())).await.unwrap();

    // What the queue holds: what is needed to sign the link, not the link.
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{PREFIX}{{mail}}:queue"))
        .arg("-")
        .arg("+")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].1;
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "kind",
            "jti",
            "doc",
            "iat",
            "exp",
            "to",
            "title",
            "enqueued-at",
            "attempts"
        ]
    );
    let token = codec().sign(&mail.claims).unwrap();
    let signature = token.rsplit_once('.').unwrap().1;
    for (name, value) in fields {
        assert!(
            !value.contains(signature) && !value.contains("/d/"),
            "{name} holds the link"
        );
    }
    assert_eq!(fields[0].1, "link");
    assert_eq!(fields[1].1, mail.claims.jti);

    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    wait_for_messages(&sink, 1).await;
    let delivered = Mail::read(&sink.messages()[0]);
    assert_eq!(delivered.from, "noreply@example.com");
    assert_eq!(delivered.from_name.as_deref(), Some("Jane Doe"));
    assert_eq!(delivered.to, "visitor@example.org");
    assert_eq!(
        delivered.subject,
        "Your download link for Jane Doe's resume"
    );
    assert_eq!(delivered.link, format!("{PUBLIC_URL}/d/{token}"));
    assert!(
        delivered
            .html
            .contains(&format!("href=\"{}\"", delivered.link))
    );
    assert!(delivered.text.contains("expires in 15 minutes"));
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);

    // Delivered once, acknowledged and deleted: the stream holds only undelivered mail.
    drained(&outbox).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(sink.events(), ["rcpt 250", "data 250"]);
    let depth = outbox.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 0));
    assert_eq!(pending(&redis), 0);
    sender.stop().await;
}

#[tokio::test]
async fn with_smtp_down_the_mail_is_queued_and_delivered_once_the_server_is_back() {
    let redis = RedisServer::start();
    let mut sink = SmtpSink::reserved();
    let outbox = outbox(&redis).await;
    let sender = Running::spawn(&outbox, &redis, &sink, settings());

    let mail = mail();
    outbox
        .submit(&Job::Link(mail.clone()))
        .await
        .expect("queued while SMTP is down");
    // At least one attempt failed and the job waits for its retry.
    eventually("a failed attempt", Duration::from_secs(5), || async {
        let depth = outbox.queue_depth().await.unwrap();
        (depth.retrying == 1).then_some(())
    })
    .await;
    let retry: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{PREFIX}{{mail}}:retry"))
        .arg(0)
        .arg(-1)
        .query(&mut redis.client())
        .unwrap();
    assert!(retry[0].contains("\"last-error\""), "{retry:?}");
    assert!(sink.messages().is_empty());

    sink.restart();
    wait_for_messages(&sink, 1).await;
    drained(&outbox).await;
    assert_eq!(sink.messages().len(), 1, "delivered once");
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);
    assert!(outbox.dead_letters(10).await.unwrap().is_empty());
    sender.stop().await;
}

#[tokio::test]
async fn a_permanent_rejection_lands_in_the_dead_letters_and_an_operator_can_retry_it() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    sink.control("rcpt 550 5.1.1 <visitor@example.org>: no such user here");
    let outbox = outbox(&redis).await;
    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    let mail = mail();
    outbox.submit(&Job::Link(mail.clone())).await.unwrap();

    let dead = eventually("a dead letter", Duration::from_secs(5), || async {
        outbox.dead_letters(10).await.unwrap().pop()
    })
    .await;
    assert_eq!(dead.cause, "rejected");
    assert!(dead.detail.contains("550"), "{}", dead.detail);
    assert!(dead.detail.contains("no such user"), "{}", dead.detail);
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.jti, mail.claims.jti);
    assert_eq!(dead.to, "visitor@example.org");
    assert_eq!(dead.exp, mail.claims.exp);

    // Not retried: a 5xx is final.
    drained(&outbox).await;
    assert_eq!(sink.events(), ["rcpt 550"]);
    assert!(sink.messages().is_empty());
    let depth = outbox.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 1));

    // The operator fixed the mailbox and retries: delivered once, with the original link.
    sink.control("");
    assert_eq!(
        outbox.retry_dead_letter(&dead.id).await.unwrap(),
        Revival::Queued
    );
    wait_for_messages(&sink, 1).await;
    drained(&outbox).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);
    assert!(outbox.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(
        outbox.retry_dead_letter(&dead.id).await.unwrap(),
        Revival::NotFound
    );
    sender.stop().await;
}

#[tokio::test]
async fn a_sender_delivers_several_mails_at_once_each_exactly_once() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    // Every RCPT TO waits half a second: one at a time, the mails would follow each other.
    sink.control("delay 0.5");
    let outbox = outbox(&redis).await;
    let mails: Vec<LinkMail> = (0..6).map(|_| mail()).collect();
    for mail in &mails {
        outbox.submit(&Job::Link(mail.clone())).await.unwrap();
    }
    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    wait_for_messages(&sink, 6).await;
    drained(&outbox).await;

    // Several transactions were waiting at the server at the same time.
    let mut waiting = 0;
    let mut most = 0;
    for event in sink.events() {
        match event.as_str() {
            "rcpt-wait" => waiting += 1,
            "rcpt 250" => waiting -= 1,
            _ => {}
        }
        most = most.max(waiting);
    }
    assert!(most >= 2, "at most {most} delivery at a time");
    // And each mail went once.
    let delivered: HashSet<String> = sink
        .messages()
        .iter()
        .map(|m| claims_of(m).jti.as_str().to_owned())
        .collect();
    let sent: HashSet<String> = mails
        .iter()
        .map(|m| m.claims.jti.as_str().to_owned())
        .collect();
    assert_eq!(sink.messages().len(), 6);
    assert_eq!(delivered, sent);
    assert_eq!(pending(&redis), 0);
    sender.stop().await;
}

#[tokio::test]
async fn a_transient_rejection_is_retried_with_backoff_until_accepted() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    sink.control("data 451 4.3.0 Try again later");
    let outbox = outbox(&redis).await;
    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    let mail = mail();
    let started = Instant::now();
    outbox.submit(&Job::Link(mail.clone())).await.unwrap();

    eventually("three refused attempts", Duration::from_secs(5), || async {
        (sink.events().iter().filter(|e| *e == "data 451").count() >= 3).then_some(())
    })
    .await;
    // Waits of 100 ms then 200 ms separate the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(sink.messages().is_empty());

    sink.control("");
    wait_for_messages(&sink, 1).await;
    drained(&outbox).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);
    assert!(outbox.dead_letters(10).await.unwrap().is_empty());
    let depth = outbox.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying), (0, 0));
    sender.stop().await;
}

#[tokio::test]
async fn a_restart_mid_queue_delivers_each_mail_exactly_once() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    // Slow enough that the first process stops with most of the queue left.
    sink.control("delay 0.05");
    let first = outbox(&redis).await;
    let mut jtis = HashSet::new();
    for _ in 0..20 {
        let mail = mail();
        jtis.insert(mail.claims.jti.clone());
        first.submit(&Job::Link(mail.clone())).await.unwrap();
    }
    let sender = Running::spawn(&first, &redis, &sink, settings());
    let consumer = sender.consumer.clone();
    wait_for_messages(&sink, 3).await;
    // Two jobs read under the sender's name but not delivered when the stop comes (as after a
    // Redis hiccup): the stopping sender must hand them back, or they would wait `claim_idle`.
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("senders")
        .arg(&consumer)
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(format!("{PREFIX}{{mail}}:queue"))
        .arg(">")
        .query(&mut redis.client())
        .unwrap();
    assert!(matches!(read, redis::Value::Array(ref a) if !a.is_empty()));
    sender.stop().await;
    drop(first);
    let sent_before = sink.messages().len();
    assert!(sent_before < 18, "the restart happened mid-queue");

    // The stopped process left nothing pending and left the group.
    assert_eq!(pending(&redis), 0);
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("{PREFIX}{{mail}}:queue"))
        .arg("senders")
        .query(&mut redis.client())
        .unwrap();
    assert!(!format!("{consumers:?}").contains(&consumer));

    // `claim_idle` (10 s) is far off: only handed-back jobs can be delivered this soon.
    let second = outbox(&redis).await;
    let restarted = Instant::now();
    let sender = Running::spawn(&second, &redis, &sink, settings());
    wait_for_messages(&sink, 20).await;
    assert!(restarted.elapsed() < Duration::from_secs(8));
    drained(&second).await;
    let delivered: Vec<Claims> = sink.messages().iter().map(|p| claims_of(p)).collect();
    assert_eq!(delivered.len(), 20, "each mail exactly once");
    let delivered_jtis: HashSet<_> = delivered.into_iter().map(|c| c.jti).collect();
    assert_eq!(delivered_jtis, jtis);
    let depth = second.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 0));
    sender.stop().await;
}

#[tokio::test]
async fn a_crashed_sender_s_mail_is_taken_over_and_delivered_once() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    // The server takes its time over RCPT: the process dies mid-delivery, before the server
    // accepted anything.
    sink.control("delay 1");
    let first = outbox(&redis).await;
    let crashing = Running::spawn(&first, &redis, &sink, settings());
    let mail = mail();
    first.submit(&Job::Link(mail.clone())).await.unwrap();
    eventually("the delivery to start", Duration::from_secs(5), || async {
        sink.events()
            .contains(&"rcpt-wait".to_owned())
            .then_some(())
    })
    .await;
    crashing.crash().await;
    drop(first);
    assert_eq!(
        pending(&redis),
        1,
        "the job stays pending under the dead consumer"
    );
    sink.control("");

    // A new process takes over jobs idle longer than `claim_idle`.
    let second = outbox(&redis).await;
    let sender = Running::spawn(
        &second,
        &redis,
        &sink,
        SenderSettings {
            claim_idle: Duration::from_millis(500),
            ..settings()
        },
    );
    wait_for_messages(&sink, 1).await;
    drained(&second).await;
    assert_eq!(sink.messages().len(), 1, "delivered once");
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);
    assert_eq!(pending(&redis), 0);
    let depth = second.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 0));
    sender.stop().await;
}

#[tokio::test]
async fn an_expired_link_is_not_mailed_but_dead_lettered() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let outbox = outbox(&redis).await;
    let mail = mail_issued(now() - 120, 119);
    outbox.submit(&Job::Link(mail.clone())).await.unwrap();
    let sender = Running::spawn(&outbox, &redis, &sink, settings());

    let dead = eventually("a dead letter", Duration::from_secs(5), || async {
        outbox.dead_letters(10).await.unwrap().pop()
    })
    .await;
    assert_eq!(dead.cause, "expired");
    assert_eq!(dead.jti, mail.claims.jti);
    assert_eq!(dead.attempts, 0);
    assert!(sink.events().is_empty(), "the server was never contacted");
    assert!(sink.messages().is_empty());
    assert_eq!(
        outbox.retry_dead_letter(&dead.id).await.unwrap(),
        Revival::Expired
    );
    assert_eq!(outbox.dead_letters(10).await.unwrap().len(), 1);
    sender.stop().await;
}

#[tokio::test]
async fn a_link_that_expires_while_its_mail_is_retried_is_not_sent() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    sink.control("rcpt 451 4.7.1 Greylisted, try again later");
    let outbox = outbox(&redis).await;
    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    let mail = mail_issued(now(), 2);
    outbox.submit(&Job::Link(mail.clone())).await.unwrap();

    let dead = eventually("a dead letter", Duration::from_secs(8), || async {
        outbox.dead_letters(10).await.unwrap().pop()
    })
    .await;
    assert_eq!(dead.cause, "expired");
    assert!(dead.attempts >= 1);
    assert!(sink.events().iter().any(|e| e == "rcpt 451"));
    sink.control("");
    drained(&outbox).await;
    assert!(
        sink.messages().is_empty(),
        "an expired link is never mailed"
    );
    let depth = outbox.queue_depth().await.unwrap();
    assert_eq!((depth.queued, depth.retrying, depth.dead), (0, 0, 1));
    sender.stop().await;
}

#[tokio::test]
async fn with_redis_down_send_fails_quickly() {
    let mut redis = RedisServer::start();
    let outbox = outbox(&redis).await;
    redis.stop();
    let started = Instant::now();
    let err = outbox.submit(&Job::Link(mail())).await.unwrap_err();
    assert!(matches!(err, MailError::Delivery(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_sender_resumes_after_a_redis_outage() {
    let mut redis = RedisServer::start();
    let sink = SmtpSink::start();
    let outbox = outbox(&redis).await;
    let sender = Running::spawn(&outbox, &redis, &sink, settings());
    // The sender has made its consumer group: the outage takes it away.
    eventually(
        "the sender's consumer group",
        Duration::from_secs(5),
        || async {
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(format!("{PREFIX}{{mail}}:queue"))
                .query::<Vec<redis::Value>>(&mut redis.client())
                .is_ok_and(|groups| !groups.is_empty())
                .then_some(())
        },
    )
    .await;
    // The restarted server has lost everything, consumer group included.
    redis.restart();
    let mail = mail();
    eventually(
        "Redis to accept the mail again",
        Duration::from_secs(10),
        || async { outbox.submit(&Job::Link(mail.clone())).await.ok() },
    )
    .await;
    // The sender backs off up to 10 s between failed rounds while Redis is down; on a loaded
    // machine the restart can take long enough for the pause to grow that far.
    eventually(
        "the mail after the outage",
        Duration::from_secs(30),
        || async { (!sink.messages().is_empty()).then_some(()) },
    )
    .await;
    drained(&outbox).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(claims_of(&sink.messages()[0]), mail.claims);
    sender.stop().await;
}

#[tokio::test]
async fn smtp_failures_are_classified_by_reply_and_check_reaches_the_server() {
    let mut sink = SmtpSink::start();
    let transport = transport(&sink.url());
    smtp::test_connection(&transport).await.unwrap();
    let message = || composer().compose(&mail()).unwrap();

    transport.send(message()).await.unwrap();
    assert_eq!(sink.messages().len(), 1);

    sink.control("rcpt 550 5.1.1 No such user");
    let err = transport.send(message()).await.unwrap_err();
    assert_eq!(smtp::classify(&err), Failure::Permanent);
    assert_eq!(smtp::describe(&err), "permanent SMTP reply 550");

    sink.control("data 452 4.3.1 Insufficient system storage");
    let err = transport.send(message()).await.unwrap_err();
    assert_eq!(smtp::classify(&err), Failure::Transient);
    assert_eq!(smtp::describe(&err), "transient SMTP reply 452");

    sink.stop();
    let err = transport.send(message()).await.unwrap_err();
    assert_eq!(smtp::classify(&err), Failure::Transient, "{err}");
    let started = Instant::now();
    assert!(smtp::test_connection(&transport).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sink.messages().len(), 1);
}
