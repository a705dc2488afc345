//! The `Outbox` contract, written once and run against every implementation: the file outbox
//! (embedded), the durable Redis queue with its SMTP sender, and direct SMTP. `submit` answering
//! `Ok` means the mail reaches the recipient's server: one message, to the right address, with a
//! genuine link to the right document in both parts and the subject naming the document.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docgate::config::{Secret, SmtpConfig};
use docgate::mail::{Composer, LinkMail, smtp};
use docgate::outbox::direct::Direct;
use docgate::outbox::queue::{RedisOutbox, Sender, SenderSettings};
use docgate::outbox::{Deliverer, Job, Outbox};
use docgate::token::{Claims, TokenCodec};

use crate::support::redis::{RedisCluster, RedisSentinel, RedisServer, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::{Mail, SECRET, eventually, now, token_of};

fn composer() -> Composer {
    Composer::new(
        Arc::new(TokenCodec::single(&Secret::new(SECRET.as_bytes().to_vec()))),
        "https://docs.example.com",
        "Jane Doe <noreply@example.com>".parse().unwrap(),
    )
}

/// Sends two mails through `mailer` and checks what `delivered` finds.
async fn mailer_contract(mailer: &dyn Outbox, delivered: impl Fn() -> Vec<PathBuf>) {
    let codec = TokenCodec::single(&Secret::new(SECRET.as_bytes().to_vec()));
    let mut sent = Vec::new();
    for (to, doc, title) in [
        ("first@example.org", "resume", "Jane Doe's resume"),
        ("second@example.org", "lebenslauf", "Jürgen's Lebenslauf"),
    ] {
        let claims = Claims::new(doc, now(), 900);
        mailer
            .submit(&Job::Link(LinkMail {
                to: to.parse().unwrap(),
                claims: claims.clone(),
                title: title.to_owned(),
                size: Some(1_234_567),
            }))
            .await
            .unwrap();
        sent.push((to, claims, title));
    }

    let mails = eventually("every message", Duration::from_secs(10), || async {
        let mails = delivered();
        (mails.len() >= sent.len()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), sent.len(), "one message per send");
    let mails: Vec<Mail> = mails.iter().map(|p| Mail::read(p)).collect();
    for (to, claims, title) in sent {
        let mail = mails
            .iter()
            .find(|m| m.to == to)
            .expect("a mail to each address");
        assert_eq!(mail.from, "noreply@example.com");
        assert_eq!(mail.from_name.as_deref(), Some("Jane Doe"));
        assert_eq!(mail.subject, format!("Your download link for {title}"));
        assert!(mail.link.starts_with("https://docs.example.com/d/"));
        assert!(mail.html.contains(&format!("href=\"{}\"", mail.link)));
        assert!(mail.text.contains(&format!("{title} (1.2 MB)")));
        let verified = codec.verify(token_of(&mail.link), now()).unwrap();
        assert_eq!(verified, claims, "the link carries exactly the claims sent");
    }
}

fn eml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_file_outbox_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Direct::new(Deliverer::files(dir.path(), composer()).unwrap());
    mailer_contract(&outbox, || eml_files(dir.path())).await;
}

#[tokio::test]
async fn the_redis_queue_with_its_sender_meets_the_contract() {
    redis_queue_meets_the_contract(&RedisServer::start(), "docgate:").await;
}

#[tokio::test]
async fn the_redis_queue_keeps_every_script_on_one_slot() {
    redis_queue_meets_the_contract(&crate::key_layout::slot_checking_redis(), "docgate:").await;
}

#[tokio::test]
async fn the_redis_queue_on_sentinel_meets_the_contract() {
    redis_queue_meets_the_contract(&RedisSentinel::start(), "docgate:").await;
}

#[tokio::test]
async fn the_redis_queue_on_a_cluster_meets_the_contract() {
    redis_queue_meets_the_contract(&RedisCluster::start(), "docgate:").await;
}

/// A prefix with a hash tag of its own puts every key in that one slot, which still works: the
/// sender's blocking reads (`XREADGROUP BLOCK`) go to that slot's master on a connection of
/// their own.
#[tokio::test]
async fn the_redis_queue_on_a_cluster_under_one_hash_tag_meets_the_contract() {
    redis_queue_meets_the_contract(&RedisCluster::start(), "{docgate}:").await;
}

/// The queue on `redis`, its keys under `prefix`, with its sender delivering to a real SMTP
/// server.
async fn redis_queue_meets_the_contract(redis: &impl SharedRedis, prefix: &str) {
    let sink = SmtpSink::start();
    let config = redis.config(prefix);
    let outbox = RedisOutbox::new(docgate::store::shared::connect(&config).unwrap(), prefix);
    let transport = smtp::transport(&SmtpConfig {
        url: Secret::new(sink.url().into_bytes()),
    })
    .unwrap();
    let sender = Sender::new(
        outbox.clone(),
        config,
        Deliverer::smtp(transport, composer()),
        SenderSettings::default(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(sender.run(stop.clone().cancelled_owned()));
    mailer_contract(&outbox, || sink.messages()).await;
    stop.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn direct_smtp_meets_the_contract() {
    let sink = SmtpSink::start();
    let transport = smtp::transport(&SmtpConfig {
        url: Secret::new(sink.url().into_bytes()),
    })
    .unwrap();
    let mailer = Direct::new(Deliverer::smtp(transport, composer()));
    mailer_contract(&mailer, || sink.messages()).await;
}
