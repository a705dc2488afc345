//! Single use as recipients meet it: one *completed* download spends a link; a cut-off download
//! leaves it usable for a retry or a `Range` resume, up to the attempt limit; racing clients get
//! exactly one body; `HEAD` never consumes.

use crate::support::*;

#[tokio::test]
async fn a_cut_off_download_can_be_resumed_with_range() {
    let app = TestApp::start().await;
    let link = app.link("visitor@example.org", "big").await;
    let expected = content(3, BIG_LEN);

    let first = PartialGet::start(&app, &link, &[], 1024 * 1024).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-length"),
        Some(BIG_LEN.to_string().as_str())
    );
    // The link survives the cut-off.
    let (etag, got) = app.cut_off(first, &link).await;

    let rest = app.resume(&link, got.len(), &etag).await;
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.headers()["content-range"],
        format!("bytes {}-{}/{BIG_LEN}", got.len(), BIG_LEN - 1).as_str()
    );
    assert_eq!(
        rest.headers()["content-length"],
        (BIG_LEN - got.len()).to_string().as_str()
    );
    let rest = rest.bytes().await.unwrap();
    let mut whole = got;
    whole.extend_from_slice(&rest);
    assert_eq!(sha256(&whole), sha256(&expected));

    // The response that delivered the last byte spent the link.
    let after = app.get(&link).await;
    assert_eq!(after.status(), 410);
    let log = app.wait_for_log(3).await;
    let outcomes: Vec<_> = log.iter().map(|e| e.outcome.as_str()).collect();
    assert!(outcomes.contains(&"interrupted"), "{outcomes:?}");
    assert!(outcomes.contains(&"completed"), "{outcomes:?}");
}

#[tokio::test]
async fn attempts_run_out_after_the_configured_number_of_starts() {
    let app = TestApp::with(&[("DOCGATE_DOWNLOAD_ATTEMPTS", "2")]).await;
    let (_, link) = app.mint("big").await;
    for expected_after in [200, 410] {
        let partial = PartialGet::start(&app, &link, &[], 64 * 1024).await;
        assert_eq!(partial.status, 200);
        drop(partial);
        app.wait_for_head(&link, expected_after).await;
    }
    let response = app.get(&link).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
}

#[tokio::test]
async fn a_second_download_while_one_is_in_flight_gets_409() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("big").await;
    let first = PartialGet::start(&app, &link, &[], 64 * 1024).await;
    assert_eq!(first.status, 200);

    let second = app.get(&link).await;
    assert_eq!(second.status(), 409);
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"], "download_in_progress");
    let head = app.head(&link).await;
    assert_eq!(head.status(), 409, "HEAD tells what a GET would get now");

    drop(first);
    app.wait_for_head(&link, 200).await;
    let third = app.get(&link).await;
    assert_eq!(third.status(), 200);
    assert_eq!(third.bytes().await.unwrap().len(), BIG_LEN);
}

#[tokio::test]
async fn twenty_racing_clients_get_exactly_one_body() {
    let app = TestApp::start().await;
    for document in ["big", "resume"] {
        let (_, link) = app.mint(document).await;
        let results = race(vec![link.clone(); 20]).await;
        let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
        assert_eq!(winners.len(), 1, "{document}: {results:?}");
        let full = if document == "big" {
            BIG_LEN
        } else {
            RESUME_LEN
        };
        assert_eq!(winners[0].1, full);
        for (status, len) in &results {
            if *status != 200 {
                assert!(matches!(status, 409 | 410), "{document}: {results:?}");
                assert!(*len < 1024, "an error body, not a document");
            }
        }
    }
}

#[tokio::test]
async fn head_never_consumes() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("resume").await;
    for _ in 0..5 {
        let head = app.head(&link).await;
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            RESUME_LEN.to_string().as_str()
        );
        assert_eq!(head.headers()["content-type"], "application/pdf");
        assert_eq!(head.headers()["accept-ranges"], "bytes");
        assert!(head.headers().contains_key("etag"));
        assert!(
            head.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
    }
    let ranged = app
        .client
        .head(&link)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 0-99/{RESUME_LEN}").as_str()
    );
    assert_eq!(ranged.headers()["content-length"], "100");

    let get = app.get(&link).await;
    assert_whole_resume(get).await;
    let head = app.head(&link).await;
    assert_eq!(head.status(), 410);
}

#[tokio::test]
async fn a_range_short_of_the_end_counts_a_start_but_does_not_spend() {
    let app = TestApp::with(&[("DOCGATE_DOWNLOAD_ATTEMPTS", "2")]).await;
    let (claims, link) = app.mint("resume").await;
    let part = app.get_range(&link, "bytes=0-99").await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &content(1, 100)[..]);
    assert_eq!(
        docgate::store::TokenStore::peek(app.store(), &claims.jti)
            .await
            .unwrap(),
        docgate::store::LinkState::Ready { started: 1 }
    );
    // The second (last) start delivers the last byte and spends the link.
    let rest = app.get_range(&link, "bytes=100-").await;
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.bytes().await.unwrap().as_ref(),
        &content(1, RESUME_LEN)[100..]
    );
    assert_eq!(app.head(&link).await.status(), 410);
}

#[tokio::test]
async fn a_stale_if_range_gets_the_whole_document() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("resume").await;
    let response = app
        .client
        .get(&link)
        .header("range", "bytes=100-")
        .header("if-range", "\"an-older-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("content-range"));
    assert_eq!(response.bytes().await.unwrap().len(), RESUME_LEN);
}

#[tokio::test]
async fn several_ranges_get_the_whole_document() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("resume").await;
    let response = app.get_range(&link, "bytes=0-9,20-29").await;
    assert_whole_resume(response).await;
}
