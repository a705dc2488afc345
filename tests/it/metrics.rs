//! The admin listener's `/metrics` after a user journey: every counter moved by exactly what
//! happened, and nothing personal in any label.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::redis::RedisServer;
use crate::support::smtp::SmtpSink;
use crate::support::{Mail, RESUME_LEN, TestApp, eventually, scrape, token_of};

fn value(series: &BTreeMap<String, f64>, name: &str) -> f64 {
    series.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn a_journey_moves_each_counter_by_exactly_what_happened() {
    let app = TestApp::start().await;
    let (_, before) = scrape(&app).await;
    assert_eq!(value(&before, "docgate_downloads_started_total"), 0.0);
    assert_eq!(value(&before, "docgate_downloads_in_flight"), 0.0);

    let link = app.link("jane.metrics@example.org", "resume").await;
    let refused = app.request_link("not an address", "resume").await;
    assert_eq!(refused.status(), 400);
    let body = app.download(&link).await;
    assert_eq!(body.len(), RESUME_LEN);
    let used = app.get(&link).await;
    assert_eq!(used.status(), 410);
    let forged = app
        .client
        .get(format!("{}/d/a.b.c", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    // The download's end is recorded as its body finishes: wait for it, boundedly.
    let (text, after) = eventually("the download's end", Duration::from_secs(5), || async {
        let (text, after) = scrape(&app).await;
        (value(&after, "docgate_downloads_total{outcome=\"completed\"}") > 0.0)
            .then_some((text, after))
    })
    .await;
    let expected = [
        ("docgate_link_requests_total{outcome=\"sent\"}", 1.0),
        (
            "docgate_link_requests_total{outcome=\"invalid_request\"}",
            1.0,
        ),
        ("docgate_mail_total{outcome=\"sent\"}", 1.0),
        ("docgate_object_first_byte_seconds_count", 1.0),
        // The download's claim, and the refused second one.
        (
            "docgate_store_operation_seconds_count{operation=\"claim\"}",
            2.0,
        ),
        ("docgate_downloads_started_total", 1.0),
        ("docgate_downloads_total{outcome=\"completed\"}", 1.0),
        ("docgate_downloads_in_flight", 0.0),
        ("docgate_download_duration_seconds_count", 1.0),
        ("docgate_download_bytes_total", RESUME_LEN as f64),
        (
            "docgate_download_refusals_total{outcome=\"link_used\"}",
            1.0,
        ),
        (
            "docgate_download_refusals_total{outcome=\"invalid_link\"}",
            1.0,
        ),
        (
            "docgate_http_responses_total{route=\"link_request\",status=\"202\"}",
            1.0,
        ),
        (
            "docgate_http_responses_total{route=\"download\",status=\"200\"}",
            1.0,
        ),
        (
            "docgate_http_responses_total{route=\"download\",status=\"410\"}",
            1.0,
        ),
    ];
    for (series, want) in expected {
        assert_eq!(value(&after, series), want, "{series} in\n{text}");
    }
    assert!(text.contains("docgate_build_info{version=\""), "{text}");
    for secret in ["jane.metrics", "example.org", token_of(&link)] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // The admin listener serves nothing else; the public one has no metrics.
    let other = app
        .client
        .get(format!("{}/nothing", app.admin_base))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let public = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

#[tokio::test]
async fn rate_limit_refusals_are_counted_by_limit() {
    let app = TestApp::with(&[
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
        ("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "1/h"),
    ])
    .await;
    for _ in 0..3 {
        app.request_link("same@example.org", "resume").await;
    }
    for _ in 0..2 {
        app.get(&format!("{}/d/a.b.c", app.base)).await;
    }
    let (text, series) = scrape(&app).await;
    assert_eq!(
        value(&series, "docgate_rate_limited_total{limit=\"req-email\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&series, "docgate_rate_limited_total{limit=\"dl-ip\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &series,
            "docgate_link_requests_total{outcome=\"not_sent_address_limit\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn store_object_and_mail_metrics_follow_a_production_journey() {
    let mut redis = RedisServer::start();
    let mut sink = SmtpSink::reserved();
    let (redis_url, smtp_url) = (redis.url(), sink.url());
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", redis_url.as_str()),
        ("DOCGATE_SMTP_URL", smtp_url.as_str()),
    ])
    .await;

    // SMTP is down: the mail waits in the queue and its first delivery fails.
    assert_eq!(
        app.request_link("queued@example.org", "resume")
            .await
            .status(),
        202
    );
    let series = eventually("a retried mail", Duration::from_secs(5), || async {
        let (_, series) = scrape(&app).await;
        (value(&series, "docgate_mail_total{outcome=\"retried\"}") >= 1.0).then_some(series)
    })
    .await;
    assert!(value(&series, "docgate_mail_total{outcome=\"retried\"}") >= 1.0);
    assert_eq!(value(&series, "docgate_mail_queue_depth"), 1.0);
    assert_eq!(value(&series, "docgate_mail_total{outcome=\"sent\"}"), 0.0);

    // SMTP back: delivered once, the queue empties.
    sink.restart();
    let mail = Mail::read(&sink.delivered(1).await[0]);
    // The delivery is counted when the server accepts it, and leaves the queue when Redis has
    // its acknowledgement, a moment later.
    let series = eventually("the delivery counted", Duration::from_secs(5), || async {
        let (_, series) = scrape(&app).await;
        (value(&series, "docgate_mail_total{outcome=\"sent\"}") >= 1.0
            && value(&series, "docgate_mail_queue_depth") == 0.0)
            .then_some(series)
    })
    .await;
    assert_eq!(value(&series, "docgate_mail_total{outcome=\"sent\"}"), 1.0);
    assert_eq!(value(&series, "docgate_mail_queue_depth"), 0.0);
    assert_eq!(value(&series, "docgate_mail_dead_letters"), 0.0);

    let body = app.get(&mail.link).await;
    assert_eq!(body.bytes().await.unwrap().len(), RESUME_LEN);
    let (text, series) = scrape(&app).await;
    for operation in ["insert", "claim", "complete"] {
        let count = format!("docgate_store_operation_seconds_count{{operation=\"{operation}\"}}");
        assert!(value(&series, &count) >= 1.0, "{count} in\n{text}");
    }
    assert_eq!(
        value(&series, "docgate_object_first_byte_seconds_count"),
        1.0
    );
    assert_eq!(
        value(&series, "docgate_store_errors_total{operation=\"claim\"}"),
        0.0
    );

    // Redis gone: requests fail closed, and each failure is counted.
    redis.stop();
    let refused = app.get(&mail.link).await;
    assert_eq!(refused.status(), 503);
    let (text, series) = scrape(&app).await;
    let errors: f64 = series
        .iter()
        .filter(|(k, _)| k.starts_with("docgate_store_errors_total"))
        .map(|(_, v)| v)
        .sum();
    assert!(errors >= 1.0, "{text}");
}
