//! Every error path of a download link (`/d/{token}`), over real HTTP: malformed, forged, expired,
//! revoked and used links, a document gone, an unsatisfiable range, the download rate, and a page
//! for a person where a script gets JSON. Each checks the status, the body, and that nothing else
//! happened; every response is also checked for leaks of the storage layout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::config::Secret;
use docgate::store::LinkState;
use docgate::token::{Claims, TokenCodec};

use crate::support::probe::*;
use crate::support::*;

#[tokio::test]
async fn malformed_tampered_and_foreign_tokens_are_invalid_links() {
    let app = TestApp::start().await;
    let (sentinel, sentinel_link) = app.mint("resume").await;

    // A genuine token to damage: recorded, so only the damage can explain a refusal.
    let (_, link) = app.mint("resume").await;
    let token = token_of(&link).to_owned();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let first = signature.chars().next().unwrap();
    let flipped = format!(
        "{signed}.{}{}",
        if first == 'A' { 'B' } else { 'A' },
        &signature[1..]
    );
    let (head, claims_part) = signed.split_once('.').unwrap();

    let foreign_codec = TokenCodec::single(&Secret::new(
        b"another secret that is long enough!!".to_vec(),
    ));
    let foreign_claims = Claims::new("resume", now(), 900);
    record(&app, &foreign_claims).await;
    let foreign = foreign_codec.sign(&foreign_claims).unwrap();

    let traversal = sign(&app, &Claims::new("../etc/passwd", now(), 900));
    let alg_none = format!("{}.{claims_part}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_part).unwrap()).unwrap();
    claims["doc"] = "big".into();
    let swapped_claims = format!("{head}.{}.{signature}", b64(&claims.to_string()));

    let live = 3;
    let cases = vec![
        ("garbage", "abc".to_owned()),
        ("one signature character changed", flipped),
        ("an extra segment", format!("{token}.x")),
        ("two segments", signed.to_owned()),
        ("3 KiB", "A".repeat(3 * 1024)),
        (
            "3 KiB of dotted segments",
            format!(
                "{}.{}.{}",
                "A".repeat(1024),
                "B".repeat(1024),
                "C".repeat(1024)
            ),
        ),
        ("signed with another secret", foreign),
        ("document id with a path", traversal),
        ("alg none", alg_none),
        ("claims swapped under a valid signature", swapped_claims),
        ("empty", String::new()),
    ];

    for (name, bad) in cases {
        let url = format!("{}/d/{bad}", app.base);
        let sent = send(&app, name, app.client.get(&url)).await;
        let body = assert_error(name, &sent, 400, "invalid_link");
        assert!(
            body["message"].as_str().unwrap().contains("link"),
            "{name}: {body}"
        );
        let head = send(&app, name, app.client.head(&url)).await;
        assert_eq!(head.status, 400, "{name}: HEAD");
        assert_untouched(&app, name, live, &sentinel).await;
    }

    // The foreign token's jti is recorded, but its signature is not ours: still untouched.
    assert_eq!(
        state(&app, &foreign_claims).await,
        LinkState::Ready { started: 0 }
    );
    assert_downloads_resume(&app, "damaged link's original", &link).await;
    assert_downloads_resume(&app, "sentinel", &sentinel_link).await;
}

#[tokio::test]
async fn expired_revoked_and_used_links_are_gone_each_with_its_own_message() {
    let app = TestApp::start().await;
    let (sentinel, _) = app.mint("resume").await;

    // Expired, recorded nowhere.
    let expired = Claims::new("resume", now() - 1000, 900);
    assert!(expired.exp < now() - 50);
    let name = "expired";
    let url = format!("{}/d/{}", app.base, sign(&app, &expired));
    let sent = send(&app, name, app.client.get(&url)).await;
    let expired_body = assert_error(name, &sent, 410, "link_expired");
    assert!(
        expired_body["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired_body}"
    );
    assert_eq!(send(&app, name, app.client.head(&url)).await.status, 410);
    assert_untouched(&app, name, 1, &sentinel).await;

    // Expired although the store still holds it: the token's own exp decides.
    let stale = Claims::new("resume", now() - 1000, 900);
    record(&app, &stale).await;
    let name = "expired but recorded";
    let sent = send(
        &app,
        name,
        app.client
            .get(format!("{}/d/{}", app.base, sign(&app, &stale))),
    )
    .await;
    assert_error(name, &sent, 410, "link_expired");
    assert_eq!(state(&app, &stale).await, LinkState::Ready { started: 0 });

    // Validly signed, never recorded (or revoked): withdrawn.
    let unknown = Claims::new("resume", now(), 900);
    let name = "revoked";
    let url = format!("{}/d/{}", app.base, sign(&app, &unknown));
    let sent = send(&app, name, app.client.get(&url)).await;
    let revoked_body = assert_error(name, &sent, 410, "link_revoked");
    let head = send(&app, name, app.client.head(&url)).await;
    assert_eq!(head.status, 410, "{name}: HEAD");
    assert_untouched(&app, name, 2, &sentinel).await;

    // Used: one complete download, then gone.
    let (used, link) = app.mint("resume").await;
    assert_downloads_resume(&app, "first download", &link).await;
    let name = "used";
    let sent = send(&app, name, app.client.get(&link)).await;
    let used_body = assert_error(name, &sent, 410, "link_used");
    assert!(
        used_body["message"]
            .as_str()
            .unwrap()
            .contains("already been used"),
        "{used_body}"
    );
    let head = send(&app, name, app.client.head(&link)).await;
    assert_eq!(head.status, 410, "{name}: HEAD");
    assert_eq!(state(&app, &used).await, LinkState::Used);

    assert_ne!(
        revoked_body["message"], used_body["message"],
        "revoked and used links say different things"
    );
    assert_ne!(revoked_body["message"], expired_body["message"]);
    assert_ne!(used_body["message"], expired_body["message"]);
    assert!(app.outbox().is_empty());
}

#[tokio::test]
async fn a_document_gone_from_the_catalog_or_the_disk_is_unavailable_and_costs_nothing() {
    let app = TestApp::start().await;

    // Gone from the catalog: a genuine, recorded link to a document no longer on offer.
    let ghost = Claims::new("ghost", now(), 900);
    record(&app, &ghost).await;
    let name = "gone from the catalog";
    let url = format!("{}/d/{}", app.base, sign(&app, &ghost));
    let sent = send(&app, name, app.client.get(&url)).await;
    assert_error(name, &sent, 404, "document_unavailable");
    assert_eq!(send(&app, name, app.client.head(&url)).await.status, 404);
    assert_eq!(state(&app, &ghost).await, LinkState::Ready { started: 0 });

    // Gone from the disk: refused, and the link is not burnt by the failed attempts.
    let (claims, link) = app.mint("resume").await;
    let file = app.path("documents/resume/Jane_Doe_Resume.pdf");
    std::fs::remove_file(&file).unwrap();
    let name = "gone from the disk";
    let head = send(&app, name, app.client.head(&link)).await;
    assert_eq!(head.status, 404, "{name}: HEAD");
    // More failed GETs than the link has attempts: none of them may count.
    for i in 0..=app.app.config.download_attempts {
        let name = format!("{name}, GET {}", i + 1);
        let sent = send(&app, &name, app.client.get(&link)).await;
        assert_error(&name, &sent, 404, "document_unavailable");
        assert_eq!(
            state(&app, &claims).await,
            LinkState::Ready { started: 0 },
            "{name}: the attempt was counted"
        );
    }
    assert!(app.outbox().is_empty());

    std::fs::write(&file, content(1, RESUME_LEN)).unwrap();
    assert_downloads_resume(&app, "restored", &link).await;
    assert_eq!(state(&app, &claims).await, LinkState::Used);
}

#[tokio::test]
async fn an_unsatisfiable_range_is_416_and_leaves_the_link_usable() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("resume").await;

    for i in 0..=app.app.config.download_attempts {
        let name = format!("range beyond the end, try {}", i + 1);
        let sent = send(
            &app,
            &name,
            get_request(&app, &link, &[("range", "bytes=999999999-")]),
        )
        .await;
        assert_error(&name, &sent, 416, "range_not_satisfiable");
        assert_eq!(
            sent.header("content-range"),
            Some(format!("bytes */{RESUME_LEN}").as_str()),
            "{name}"
        );
        assert_eq!(
            state(&app, &claims).await,
            LinkState::Ready { started: 0 },
            "{name}: the attempt was counted"
        );
    }
    let name = "range from exactly the size";
    let sent = send(
        &app,
        name,
        get_request(&app, &link, &[("range", &format!("bytes={RESUME_LEN}-"))]),
    )
    .await;
    assert_error(name, &sent, 416, "range_not_satisfiable");

    let name = "HEAD with the bad range";
    let head = send(
        &app,
        name,
        app.client.head(&link).header("range", "bytes=999999999-"),
    )
    .await;
    assert_eq!(head.status, 416, "{name}");
    let head = send(&app, "HEAD", app.client.head(&link)).await;
    assert_eq!(head.status, 200, "the link is still usable");

    assert_downloads_resume(&app, "after the 416s", &link).await;
    let again = send(&app, "after the download", app.client.get(&link)).await;
    assert_error("after the download", &again, 410, "link_used");
}

#[tokio::test]
async fn downloads_over_the_per_ip_rate_are_refused_with_retry_after() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "2/m")]).await;
    let (_, first) = app.mint("resume").await;
    let (_, second) = app.mint("resume").await;
    let (third_claims, third) = app.mint("resume").await;
    assert_downloads_resume(&app, "first", &first).await;
    assert_downloads_resume(&app, "second", &second).await;

    let name = "third download";
    let sent = send(&app, name, app.client.get(&third)).await;
    assert_error(name, &sent, 429, "rate_limited");
    assert_retry_after(name, &sent, 1..=30);
    assert!(sent.header("content-disposition").is_none(), "{name}");
    assert_eq!(
        state(&app, &third_claims).await,
        LinkState::Ready { started: 0 },
        "{name}: the refused download touched the link"
    );

    let name = "garbage token while limited";
    let sent = send(&app, name, app.client.get(format!("{}/d/abc", app.base))).await;
    assert_error(name, &sent, 429, "rate_limited");
    assert_retry_after(name, &sent, 1..=30);
}

#[tokio::test]
async fn a_person_gets_a_page_and_a_script_gets_json() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("resume").await;
    assert_downloads_resume(&app, "first download", &link).await;

    let name = "410 for a browser";
    let sent = send(
        &app,
        name,
        get_request(&app, &link, &[("accept", BROWSER_ACCEPT)]),
    )
    .await;
    let csp = assert_page(name, &sent, 410);
    assert!(csp.contains("default-src 'none'"), "{name}: {csp}");
    assert!(sent.body.starts_with("<!DOCTYPE html>"), "{name}");
    assert!(
        sent.body
            .contains("This download link has already been used. Ask for the document again"),
        "{name}: {}",
        sent.body
    );
    // The code names the page for scripts and styles only; a person never reads it.
    assert!(
        sent.body.contains("<body data-page=\"link_used\">"),
        "{name}"
    );
    assert_eq!(
        sent.body.matches("link_used").count(),
        1,
        "{name}: no error codes for people"
    );

    let name = "410 for */*";
    let sent = send(&app, name, app.client.get(&link).header("accept", "*/*")).await;
    assert_error(name, &sent, 410, "link_used");

    let name = "410 for application/json";
    let sent = send(
        &app,
        name,
        get_request(&app, &link, &[("accept", "application/json")]),
    )
    .await;
    assert_error(name, &sent, 410, "link_used");

    let name = "400 for a browser";
    let sent = send(
        &app,
        name,
        get_request(&app, "/d/abc", &[("accept", BROWSER_ACCEPT)]),
    )
    .await;
    assert_page(name, &sent, 400);
    assert!(
        sent.body.contains("copied the whole link"),
        "{name}: {}",
        sent.body
    );

    // A plain HTML form that fails: a page too, and nothing sent.
    let name = "form error for a browser";
    let sent = send(
        &app,
        name,
        app.client
            .post(format!("{}{REQUESTS}", app.base))
            .header("accept", BROWSER_ACCEPT)
            .form(&[("email", "someone@mailinator.com"), ("document", "resume")]),
    )
    .await;
    assert_page(name, &sent, 400);
    // The form again, as typed, with the problem beside its field.
    assert!(
        sent.body.contains(
            "<p id=\"email-error\" class=\"error\" aria-live=\"polite\">Disposable email \
             addresses are not accepted; use a permanent address.</p>"
        ),
        "{name}: the page says what is wrong with the field: {}",
        sent.body
    );
    assert!(
        sent.body.contains("value=\"someone@mailinator.com\""),
        "{name}: what was typed is kept"
    );
    assert!(sent.body.contains("aria-invalid=\"true\""), "{name}");
    assert!(app.outbox().is_empty(), "{name}");
}
