//! Link mails over real SMTP, end to end over HTTP: the full production journey (Redis, S3,
//! SMTP), mail surviving an SMTP outage and a docgate restart, and SMTP without Redis.

use std::time::Duration;

use crate::support::redis::RedisServer;
use crate::support::smtp::SmtpSink;
use crate::support::*;

fn settings<'a>(redis: &'a str, smtp: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("DOCGATE_REDIS_URL", redis), ("DOCGATE_SMTP_URL", smtp)]
}

#[tokio::test]
async fn the_journey_with_mail_over_smtp() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let (redis_url, smtp_url) = (redis.url(), sink.url());
    let app = TestApp::with(&settings(&redis_url, &smtp_url)).await;

    let response = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(response.status(), 202);
    let mails = sink.delivered(1).await;
    let mail = Mail::read(&mails[0]);
    assert_eq!(mail.to, "visitor@example.org");
    assert_eq!(mail.subject, "Your download link for Jane Doe's resume");
    assert!(app.outbox().is_empty(), "no file outbox in SMTP mode");

    let download = app.get(&mail.link).await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        sha256(&download.bytes().await.unwrap()),
        sha256(&content(1, RESUME_LEN))
    );
    assert_eq!(app.get(&mail.link).await.status(), 410);
    mail_drained(&app).await;
    assert_eq!(sink.messages().len(), 1, "sent once");
}

#[tokio::test]
async fn with_smtp_down_the_request_is_accepted_and_mailed_once_it_is_back() {
    let redis = RedisServer::start();
    let mut sink = SmtpSink::reserved();
    let (redis_url, smtp_url) = (redis.url(), sink.url());
    let app = TestApp::with(&settings(&redis_url, &smtp_url)).await;

    let response = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(response.status(), 202, "queued durably, not sent yet");
    // The sender has met the outage: the mail waits for a retry.
    eventually("a failed attempt", Duration::from_secs(15), || async {
        let (_, series) = scrape(&app).await;
        (series.get("docgate_mail_total{outcome=\"retried\"}") >= Some(&1.0)).then_some(())
    })
    .await;
    sink.restart();
    let mails = sink.delivered(1).await;
    let link = Mail::read(&mails[0]).link;
    assert_eq!(app.get(&link).await.status(), 200);
}

#[tokio::test]
async fn mail_queued_before_a_restart_is_delivered_once_after_it() {
    let redis = RedisServer::start();
    let mut sink = SmtpSink::reserved();
    let (redis_url, smtp_url) = (redis.url(), sink.url());
    let mut first = TestApp::with(&settings(&redis_url, &smtp_url)).await;
    for i in 0..3 {
        let response = first
            .request_link(&format!("visitor{i}@example.org"), "resume")
            .await;
        assert_eq!(response.status(), 202);
    }
    first.stop().await;

    sink.restart();
    let second = TestApp::with(&settings(&redis_url, &smtp_url)).await;
    let mails = sink.delivered(3).await;
    mail_drained(&second).await;
    assert_eq!(sink.messages().len(), 3, "each mail once");
    let mut recipients: Vec<String> = mails.iter().map(|m| Mail::read(m).to).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        [
            "visitor0@example.org",
            "visitor1@example.org",
            "visitor2@example.org"
        ]
    );
    // Links minted by the first process work on the second (shared key and store).
    let link = Mail::read(&mails[0])
        .link
        .replace(&first.base, &second.base);
    assert_eq!(second.get(&link).await.status(), 200);
}

#[tokio::test]
async fn without_redis_smtp_is_direct_and_a_refusal_is_503() {
    let sink = SmtpSink::start();
    let smtp_url = sink.url();
    let app = TestApp::with(&[("DOCGATE_SMTP_URL", &smtp_url)]).await;
    let response = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        sink.messages().len(),
        1,
        "accepted by the SMTP server before the answer"
    );

    sink.control("rcpt 550 5.1.1 No such user");
    let response = app.request_link("visitor2@example.org", "resume").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "service_unavailable");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn the_whole_journey_in_production_mode_redis_s3_and_smtp() {
    use crate::support::s3::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let (redis_url, smtp_url, endpoint) = (redis.url(), sink.url(), s3.endpoint());
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", redis_url.as_str()),
        ("DOCGATE_SMTP_URL", smtp_url.as_str()),
        ("DOCGATE_S3_BUCKET", BUCKET),
        ("DOCGATE_S3_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("DOCGATE_DOCUMENTS_DIR", "/nonexistent/documents"),
    ])
    .await;

    assert_eq!(
        app.request_link("visitor@example.org", "lebenslauf")
            .await
            .status(),
        202
    );
    let mail = Mail::read(&sink.delivered(1).await[0]);
    assert_eq!(mail.subject, "Your download link for Jürgen's Lebenslauf");
    let response = app.get(&mail.link).await;
    assert_lebenslauf(response).await;
    let again = app.get(&mail.link).await;
    assert_eq!(again.status(), 410);
    let (status, _) = app.readyz().await;
    assert_eq!(status, 200);
}

/// Runs `docgate mail ...` against `redis_url`; returns exit code and stdout.
fn mail_cli(dir: &std::path::Path, redis_url: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["mail"];
    all.extend_from_slice(args);
    let (code, out, _) = cli(dir, &[("DOCGATE_REDIS_URL", redis_url)], &all);
    (code, out)
}

#[tokio::test]
async fn an_operator_lists_and_retries_dead_letters_with_the_cli() {
    let redis = RedisServer::start();
    let sink = SmtpSink::start();
    let (redis_url, smtp_url) = (redis.url(), sink.url());
    let app = TestApp::with(&settings(&redis_url, &smtp_url)).await;
    sink.control("rcpt 550 5.1.1 No such user");
    assert_eq!(
        app.request_link("visitor@example.org", "resume")
            .await
            .status(),
        202
    );

    let letters = eventually("a dead letter", Duration::from_secs(5), || async {
        let (code, out) = mail_cli(app.dir.path(), &redis_url, &["dead-letters"]);
        assert_eq!(code, 0);
        (!out.is_empty()).then_some(out)
    })
    .await;
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["cause"], "rejected");
    assert_eq!(letter["to"], "visitor@example.org");
    assert_eq!(letter["doc"], "resume");
    let id = letter["id"].as_str().unwrap().to_owned();
    let (code, status) = mail_cli(app.dir.path(), &redis_url, &["status"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["dead"], 1);

    sink.control("");
    let (code, out) = mail_cli(app.dir.path(), &redis_url, &["retry", &id]);
    assert_eq!(code, 0, "{out}");
    let mail = Mail::read(&sink.delivered(1).await[0]);
    assert_eq!(mail.to, "visitor@example.org");
    assert_eq!(app.get(&mail.link).await.status(), 200);
    let (code, _) = mail_cli(app.dir.path(), &redis_url, &["retry", &id]);
    assert_eq!(code, 65, "a dead letter is retried once");
}
