//! Single use means one copy: whatever a client does with cut-offs, short ranges and retries, the
//! bytes one link delivers stay under twice the document, and the link is spent once they cover
//! it. Every case runs on the embedded store and on a real Redis.

use docgate::store::LinkState;
use docgate::token::Jti;

use crate::support::redis::RedisServer;
use crate::support::*;

/// A docgate on the embedded store, or on a Redis server of its own (returned, to keep it alive).
async fn docgate(on_redis: bool, settings: &[(&str, &str)]) -> (TestApp, Option<RedisServer>) {
    let redis = on_redis.then(RedisServer::start);
    let url = redis.as_ref().map(RedisServer::url);
    let mut all = settings.to_vec();
    if let Some(url) = &url {
        all.push(("DOCGATE_REDIS_URL", url));
    }
    (TestApp::with(&all).await, redis)
}

async fn state(app: &TestApp, jti: &Jti) -> LinkState {
    app.app.backends.store.peek(jti).await.unwrap()
}

/// GETs `link` with `Range: bytes={range}`: the status and the body.
async fn get_range(app: &TestApp, link: &str, range: &str) -> (u16, Vec<u8>) {
    let response = app.get_range(link, &format!("bytes={range}")).await;
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Starts a download of `link` and reads `want` bytes of it, then drops the connection: a client
/// that gives up. Returns how many bytes arrived.
async fn cut_at(app: &TestApp, link: &str, want: usize) -> usize {
    let partial = PartialGet::start(app, link, &[], want).await;
    assert_eq!(partial.status, 200);
    partial.body.len()
}

async fn repeated_short_ranges(on_redis: bool) {
    let (app, _redis) = docgate(on_redis, &[]).await;
    let size = RESUME_LEN;
    let whole = content(1, size);

    // Everything but the last byte, over and over: twice, then the link is spent.
    let (claims, link) = app.mint("resume").await;
    let mut received = 0;
    let all_but_last = format!("0-{}", size - 2);
    for expected in [206, 206, 410] {
        let (status, body) = get_range(&app, &link, &all_but_last).await;
        assert_eq!(status, expected, "after {received} bytes");
        if status == 206 {
            assert_eq!(body, whole[..size - 1]);
            received += body.len();
        }
    }
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    assert_eq!(
        get_range(&app, &link, "-1").await.0,
        410,
        "not even the last byte"
    );
    assert!(
        received < 2 * size,
        "{received} bytes of a {size}-byte document"
    );

    // Other short ranges, with attempts to spare: the link is spent by the one whose bytes bring
    // the total to the document's size, and nothing is delivered after that.
    let (app, _redis) = docgate(on_redis, &[("DOCGATE_DOWNLOAD_ATTEMPTS", "50")]).await;
    let (claims, link) = app.mint("resume").await;
    let q = size / 4;
    let ranges = [
        format!("0-{}", q - 1),
        format!("{q}-{}", 2 * q - 1),
        format!("{}-{}", 2 * q, 3 * q - 1),
        format!("{}-{}", 3 * q, size - 2),
        "0-0".to_owned(),
    ];
    let mut received = 0;
    let mut covered = vec![false; size];
    let mut spent_after = None;
    for (i, range) in ranges.iter().cycle().take(20).enumerate() {
        let (status, body) = get_range(&app, &link, range).await;
        if received >= size {
            assert_eq!(status, 410, "request {i} ({range}) after {received} bytes");
            spent_after.get_or_insert(i);
            continue;
        }
        assert_eq!(status, 206, "request {i} ({range}) after {received} bytes");
        let start: usize = range.split('-').next().unwrap().parse().unwrap();
        assert_eq!(body, whole[start..start + body.len()]);
        covered[start..start + body.len()].fill(true);
        received += body.len();
    }
    assert_eq!(spent_after, Some(5), "five ranges make {received} bytes");
    assert_eq!(received, size);
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    assert!(!covered.iter().all(|c| *c), "never the whole document");
    assert!(
        received < 2 * size,
        "{received} bytes of a {size}-byte document"
    );

    // A range that completes the document spends the link at once, with attempts to spare.
    let (claims, link) = app.mint("resume").await;
    let (status, head) = get_range(&app, &link, &format!("0-{}", size - 101)).await;
    assert_eq!(status, 206);
    let (status, tail) = get_range(&app, &link, "-100").await;
    assert_eq!(status, 206);
    assert_eq!([head, tail].concat(), whole);
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    assert_eq!(get_range(&app, &link, "0-0").await.0, 410);
}

#[tokio::test]
async fn repeated_short_ranges_never_yield_the_document_without_spending_the_link() {
    repeated_short_ranges(false).await;
}

#[tokio::test]
async fn repeated_short_ranges_never_yield_the_document_without_spending_the_link_on_redis() {
    repeated_short_ranges(true).await;
}

async fn cut_at_95_percent(on_redis: bool) {
    let (app, _redis) = docgate(on_redis, &[]).await;
    let (claims, link) = app.mint("big").await;
    let most = BIG_LEN * 95 / 100;

    let mut received = cut_at(&app, &link, most).await;
    app.wait_for_head(&link, 200).await;
    assert_eq!(
        state(&app, &claims.jti).await,
        LinkState::Ready { started: 1 }
    );
    received += cut_at(&app, &link, most).await;
    // Two attempts of three started, but the bytes cover the document: spent.
    app.wait_for_head(&link, 410).await;
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    let third = app.get(&link).await;
    assert_eq!(third.status(), 410);
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
    assert!(
        received < 2 * BIG_LEN,
        "{received} bytes of a {BIG_LEN}-byte document"
    );
    if !on_redis {
        let log = app.wait_for_log(3).await;
        let mut outcomes: Vec<_> = log.iter().map(|e| e.outcome.as_str()).collect();
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["interrupted", "interrupted", "link_used"]);
    }
}

#[tokio::test]
async fn downloads_cut_at_95_percent_spend_the_link_on_the_second() {
    cut_at_95_percent(false).await;
}

#[tokio::test]
async fn downloads_cut_at_95_percent_spend_the_link_on_the_second_on_redis() {
    cut_at_95_percent(true).await;
}

async fn resume_after_95_percent(on_redis: bool) {
    let (app, _redis) = docgate(on_redis, &[]).await;
    let (claims, link) = app.mint("big").await;
    let whole = content(3, BIG_LEN);

    let first = PartialGet::start(&app, &link, &[], BIG_LEN * 95 / 100).await;
    let (etag, got) = app.cut_off(first, &link).await;

    let rest = app.resume(&link, got.len(), &etag).await;
    assert_eq!(rest.status(), 206);
    let rest = rest.bytes().await.unwrap();
    assert_eq!(got.len() + rest.len(), BIG_LEN, "one copy in all");
    assert_eq!(sha256(&[got, rest.to_vec()].concat()), sha256(&whole));
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    assert_eq!(app.get(&link).await.status(), 410);
}

#[tokio::test]
async fn a_download_cut_at_95_percent_is_completed_by_a_range_resume() {
    resume_after_95_percent(false).await;
}

#[tokio::test]
async fn a_download_cut_at_95_percent_is_completed_by_a_range_resume_on_redis() {
    resume_after_95_percent(true).await;
}

async fn source_failure(on_redis: bool) {
    let (app, _redis) = docgate(on_redis, &[]).await;
    let (claims, link) = app.mint("big").await;
    let file = app.path("documents/big.bin");
    let whole = content(3, BIG_LEN);

    // The object is cut short while it streams: past half of it, before three quarters.
    let mut broken = PartialGet::start(&app, &link, &[], BIG_LEN / 2).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len((BIG_LEN * 3 / 4) as u64)
        .unwrap();
    broken.read_more(BIG_LEN).await;
    let received = broken.body.len();
    assert!(
        (BIG_LEN / 2..=BIG_LEN * 3 / 4).contains(&received),
        "a broken transfer: {received} bytes"
    );
    drop(broken);

    // The failure was docgate's: neither the attempt nor its bytes count.
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );
    if !on_redis {
        let log = app.wait_for_log(1).await;
        assert_eq!(log[0].outcome, "failed");
    }

    // Restored, the document can still be cut off at 95 % by the recipient and resumed: had the
    // failed download's bytes counted, the cut-off one would have spent the link.
    std::fs::write(&file, &whole).unwrap();
    let first = PartialGet::start(&app, &link, &[], BIG_LEN * 95 / 100).await;
    assert_eq!(first.status, 200);
    let got = first.body.clone();
    drop(first);
    app.wait_for_head(&link, 200).await;
    assert_eq!(
        state(&app, &claims.jti).await,
        LinkState::Ready { started: 1 }
    );
    let (status, rest) = get_range(&app, &link, &format!("{}-", got.len())).await;
    assert_eq!(status, 206);
    assert_eq!(sha256(&[got, rest].concat()), sha256(&whole));
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
}

#[tokio::test]
async fn a_download_failed_by_the_object_source_costs_neither_an_attempt_nor_its_bytes() {
    source_failure(false).await;
}

#[tokio::test]
async fn a_download_failed_by_the_object_source_costs_neither_an_attempt_nor_its_bytes_on_redis() {
    source_failure(true).await;
}

async fn second_fetch(on_redis: bool) {
    let (app, _redis) = docgate(on_redis, &[]).await;
    let button = [("Sec-Fetch-Site", "same-origin"), ("Content-Length", "0")];

    // The button's download completes: one copy, and the phone's download manager may fetch a
    // second right after.
    let (_, link) = app.mint("big").await;
    let mut clicked = PartialGet::send(&app, "POST", &link, &button, 0).await;
    assert_eq!(clicked.status, 200);
    clicked.read_more(BIG_LEN - clicked.body.len()).await;
    assert_eq!(clicked.body.len(), BIG_LEN);
    app.wait_for_head(&link, 410).await;
    let again = app.get(&link).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap().len(), BIG_LEN);
    assert_eq!(app.get(&link).await.status(), 410);

    // Cut off at 95 %, then clicked again to the end: almost two copies already, so no more.
    let (claims, link) = app.mint("big").await;
    let cut = PartialGet::send(&app, "POST", &link, &button, BIG_LEN * 95 / 100).await;
    assert_eq!(cut.status, 200);
    drop(cut);
    app.wait_for_head(&link, 200).await;
    let mut clicked = PartialGet::send(&app, "POST", &link, &button, 0).await;
    assert_eq!(clicked.status, 200);
    clicked.read_more(BIG_LEN - clicked.body.len()).await;
    assert_eq!(clicked.body.len(), BIG_LEN);
    app.wait_for_head(&link, 410).await;
    assert_eq!(state(&app, &claims.jti).await, LinkState::Used);
    let again = app.get(&link).await;
    assert_eq!(again.status(), 410);
}

#[tokio::test]
async fn the_second_fetch_follows_one_copy_only() {
    second_fetch(false).await;
}

#[tokio::test]
async fn the_second_fetch_follows_one_copy_only_on_redis() {
    second_fetch(true).await;
}
