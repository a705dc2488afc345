//! docgate serving documents from a private S3 bucket (a real S3-protocol server on loopback),
//! end to end over HTTP: the journey, a missing object, the bucket down, and a body that breaks
//! halfway. None of them may cost the recipient their link, or show them anything about S3.

use std::time::Duration;

use docgate::store::{LinkState, TokenStore};

use crate::support::chaos::ChaosProxy;
use crate::support::redis::RedisServer;
use crate::support::s3::{BUCKET, S3Server, bucket_settings};
use crate::support::*;

/// A docgate on the bucket at `endpoint` (the server itself or a proxy in front of it).
async fn on_bucket(endpoint: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = bucket_settings(endpoint).to_vec();
    settings.extend_from_slice(extra);
    TestApp::with(&settings).await
}

/// Every header and the body, as one string, for leak checks.
fn everything(response_headers: &reqwest::header::HeaderMap, body: &[u8]) -> String {
    let mut all = String::from_utf8_lossy(body).into_owned();
    for (k, v) in response_headers {
        all.push_str(k.as_str());
        all.push_str(v.to_str().unwrap_or(""));
    }
    all.to_lowercase()
}

fn assert_no_s3_detail(all: &str, endpoint: &str) {
    for secret in [
        "x-amz",
        BUCKET,
        "resume/jane_doe_resume.pdf",
        &endpoint.to_lowercase(),
        "127.0.0.1",
        "nosuchkey",
    ] {
        assert!(!all.contains(secret), "{secret:?} leaked: {all}");
    }
}

#[tokio::test]
async fn the_whole_production_journey_on_redis_and_s3() {
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let redis = RedisServer::start();
    let url = redis.url();
    let app = on_bucket(&s3.endpoint(), &[("DOCGATE_REDIS_URL", &url)]).await;

    let link = app.link("visitor@example.org", "big").await;
    let head = app.head(&link).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        BIG_LEN.to_string().as_str()
    );

    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-length"], BIG_LEN.to_string().as_str());
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["etag"].to_str().unwrap().starts_with('"'));
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256(&body), sha256(&content(3, BIG_LEN)));
    assert_no_s3_detail(&everything(&headers, b""), &s3.endpoint());
    assert_eq!(app.get(&link).await.status(), 410);
}

#[tokio::test]
async fn ranges_and_resumes_pass_through_to_the_bucket() {
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let app = on_bucket(&s3.endpoint(), &[]).await;
    let (_, link) = app.mint("resume").await;
    let first = app.get_range(&link, "bytes=0-999").await;
    assert_eq!(first.status(), 206);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        first.headers()["content-range"],
        format!("bytes 0-999/{RESUME_LEN}").as_str()
    );
    let mut whole = first.bytes().await.unwrap().to_vec();
    let rest = app
        .client
        .get(&link)
        .header("range", "bytes=1000-")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    whole.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(sha256(&whole), sha256(&content(1, RESUME_LEN)));
    assert_eq!(app.head(&link).await.status(), 410);
}

#[tokio::test]
async fn a_missing_object_is_404_and_costs_nothing() {
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let app = on_bucket(&s3.endpoint(), &[]).await;
    let (claims, link) = app.mint("lebenslauf").await;
    std::fs::remove_file(s3.root().join(BUCKET).join("resume/lebenslauf.pdf")).unwrap();

    let response = app.get(&link).await;
    assert_eq!(response.status(), 404);
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "document_unavailable");
    assert_no_s3_detail(&everything(&headers, &body), &s3.endpoint());
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
}

#[tokio::test]
async fn the_bucket_down_is_502_and_costs_nothing() {
    let mut s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let endpoint = s3.endpoint();
    let app = on_bucket(&endpoint, &[]).await;
    let (claims, link) = app.mint("resume").await;
    s3.stop().await;

    let response = tokio::time::timeout(Duration::from_secs(30), app.client.get(&link).send())
        .await
        .expect("bounded by the S3 timeouts")
        .unwrap();
    assert_eq!(response.status(), 502);
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "upstream_error");
    assert_no_s3_detail(&everything(&headers, &body), &endpoint);
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 },
        "the link is untouched"
    );
    let (status, ready) = app.readyz().await;
    assert_eq!(status, 503);
    assert_eq!(ready["checks"]["object_store"], "unavailable");
}

#[tokio::test]
async fn a_body_that_breaks_halfway_is_a_truncated_transfer_and_the_link_survives() {
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    let proxy = ChaosProxy::start(s3.addr).await;
    let app = on_bucket(&proxy.endpoint(), &[]).await;
    let (claims, link) = app.mint("big").await;

    proxy.cut_after(4 * 1024 * 1024);
    let response = app.get(&link).await;
    assert_eq!(
        response.status(),
        200,
        "the headers went out before the break"
    );
    assert_eq!(
        response.headers()["content-length"],
        BIG_LEN.to_string().as_str()
    );
    let result = response.bytes().await;
    assert!(
        result.is_err(),
        "the client must see a broken transfer, never a short body passed off as complete"
    );

    // The failure was docgate's side: the attempt is refunded once the claim is released.
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );

    proxy.cut_after(u64::MAX);
    let retry = app.get(&link).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(
        sha256(&retry.bytes().await.unwrap()),
        sha256(&content(3, BIG_LEN))
    );
}

#[tokio::test]
async fn the_content_type_comes_from_the_catalog_else_the_bucket_else_the_filename() {
    let s3 = S3Server::start().await;
    s3.put_fixtures().await;
    // `big.bin` has no type in the catalog and none to guess from its name: the bucket's wins.
    s3.put_typed("big.bin", &content(3, 1000), "application/zip")
        .await;
    // The resume's PDF is stored with a generic type: the name's guess wins over it.
    s3.put_typed(
        "resume/Jane_Doe_Resume.pdf",
        &content(1, RESUME_LEN),
        "binary/octet-stream",
    )
    .await;
    let app = on_bucket(&s3.endpoint(), &[]).await;
    for (document, expected) in [("big", "application/zip"), ("resume", "application/pdf")] {
        let (_, link) = app.mint(document).await;
        let head = app.head(&link).await;
        assert_eq!(head.headers()["content-type"], expected, "{document}: HEAD");
        let response = app.get(&link).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], expected, "{document}");
        response.bytes().await.unwrap();
    }
}
