//! What the owner's page shows and does, over real HTTP, embedded and on Redis: the log with its
//! search and pages, each request's outcome in words, the funnel, the export, and the actions
//! (revoke all of a person's links, erase them, approve and decline pending requests) doing what
//! the admin API does.

use std::time::Duration;

use reqwest::header::LOCATION;

use crate::admin::{call, json_of};
use crate::owner_page::*;
use crate::support::redis::RedisServer;
use crate::support::*;

async fn revoke_all_and_erase(redis: Option<&RedisServer>) {
    let app = owner_app_on(redis).await;
    let first = app.link(JANE, "resume").await;
    let second = app.link(JANE, "lebenslauf").await;
    let john = app.link(JOHN, "resume").await;
    let owner = sign_in(&app).await;

    // The person's view: both requests, each with a Revoke button, and the person's actions.
    let html = owner.page(&app, "/?email=jane.owner%40example.com").await;
    assert_eq!(html.matches("name=\"jti\"").count(), 2, "{html}");
    assert!(html.contains("id=\"person\""));
    assert!(!html.contains(JOHN));

    let back = "/?email=jane.owner%40example.com";
    let done = owner
        .post(
            &app,
            "/revoke-all",
            &owner.csrf,
            &[("email", JANE), ("back", back)],
        )
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()[LOCATION],
        format!("{back}&done=revoked_all&n=2")
    );
    for link in [&first, &second] {
        assert_eq!(app.client.get(link).send().await.unwrap().status(), 410);
    }
    assert_eq!(
        link_status(&app, &john).await,
        200,
        "another person's link stays"
    );
    let html = owner
        .page(&app, &format!("{back}&done=revoked_all&n=2"))
        .await;
    assert!(html.contains("2 usable links revoked."), "{html}");

    // Erasing asks first, and erases nothing until confirmed.
    assert!(exported(&app, JANE).await >= 2);
    let ask = owner
        .post(&app, "/erase", &owner.csrf, &[("email", JANE)])
        .await;
    assert_eq!(ask.status(), 200);
    let confirm = ask.text().await.unwrap();
    assert!(confirm.contains("data-page=\"owner-erase\""), "{confirm}");
    assert!(confirm.contains("name=\"confirm\" value=\"yes\""));
    let before = exported(&app, JANE).await;
    assert!(before >= 2);
    let erased = owner
        .post(
            &app,
            "/erase",
            &owner.csrf,
            &[("email", JANE), ("confirm", "yes")],
        )
        .await;
    assert_eq!(erased.status(), 303);
    assert_eq!(
        erased.headers()[LOCATION],
        format!("/?done=erased&n={before}")
    );
    assert_eq!(
        exported(&app, JANE).await,
        0,
        "the person's entries are gone"
    );
    assert_eq!(exported(&app, JOHN).await, 1, "another person's stay");
    let html = owner.page(&app, back).await;
    assert!(html.contains("id=\"log-empty\""), "{html}");
    let html = owner.page(&app, "/").await;
    assert!(!html.contains(JANE));
    assert!(html.contains(JOHN));
}

embedded_and_on_redis!(revoke_all_and_erase:
    revoke_all_and_erase_do_what_the_admin_api_does,
    revoke_all_and_erase_do_what_the_admin_api_does_on_redis);

embedded_and_on_redis!(search_and_funnel:
    the_log_is_searched_by_address_and_document_and_the_funnel_counts_each_stage,
    the_log_is_searched_and_the_funnel_counted_on_redis);

async fn search_and_funnel(redis: Option<&RedisServer>) {
    let app = owner_app_on(redis).await;
    let downloaded = app.link(JANE, "resume").await;
    app.link(JOHN, "lebenslauf").await;
    app.link(JOHN, "resume").await;
    assert_whole_resume(app.client.get(&downloaded).send().await.unwrap()).await;
    // The download's entry is written just after its response ends.
    eventually(
        "the download in the log",
        Duration::from_secs(10),
        || async { (exported(&app, JANE).await >= 2).then_some(()) },
    )
    .await;
    let owner = sign_in(&app).await;

    let by_address = owner.page(&app, "/?email=JANE.owner%40example.com").await;
    assert_eq!(rows(&by_address), 1, "{by_address}");
    assert!(by_address.contains(JANE) && !by_address.contains(JOHN));
    assert!(by_address.contains("Downloaded "));

    let by_document = owner.page(&app, "/?document=lebenslauf").await;
    let log = log_of(&by_document);
    assert_eq!(rows(&by_document), 1, "{log}");
    assert!(log.contains(JOHN) && !log.contains(JANE));
    assert!(log.contains("<option value=\"lebenslauf\" selected>"));

    let both = owner
        .page(&app, "/?email=john.other%40example.org&document=resume")
        .await;
    assert_eq!(rows(&both), 1, "{both}");

    // An address that is not one: 400, a page saying why.
    let (status, html) = get_page(&app, &owner.cookie, "/?email=not-an-address").await;
    assert_eq!(status, 400, "{html}");

    // The funnel: per document, the totals as text and an SVG chart named by them.
    let page = owner.page(&app, "/").await;
    let resume = &page[page
        .find("data-document=\"Jane Doe&#39;s resume\"")
        .unwrap()..];
    let resume = &resume[..resume.find("</svg>").unwrap()];
    for (stage, n) in [
        ("Asked", 2),
        ("Mailed", 2),
        ("Opened", 1),
        ("Downloaded", 1),
    ] {
        assert!(
            resume.contains(&format!("{stage}: <strong>{n}</strong>")),
            "{stage}: {resume}"
        );
    }
    assert!(
        resume.contains("per day: 2 asked, 2 mailed, 1 opened, 1 downloaded"),
        "{resume}"
    );
    assert_eq!(
        resume.matches("<rect").count(),
        4,
        "today's four bars: {resume}"
    );
    assert!(
        page.contains("data-document=\"A big file\""),
        "every document, even unasked"
    );
}

#[tokio::test]
async fn the_export_is_the_admin_apis_and_the_log_pages() {
    let app = owner_app(&[]).await;
    app.link(JANE, "resume").await;
    for i in 0..26 {
        app.request_link(&format!("p{i}@example.net"), "big").await;
    }
    app.wait_for_log(27).await;
    let owner = sign_in(&app).await;
    let response = get_with(
        &app,
        &owner.cookie,
        "/export?email=jane.owner%40example.com",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let (_, api) = json_of(call(
        &app,
        reqwest::Method::GET,
        "/admin/people?email=jane.owner@example.com",
    ))
    .await;
    assert_eq!(body, api);

    let first = owner.page(&app, "/").await;
    assert_eq!(rows(&first), 25, "{first}");
    assert!(first.contains("id=\"older\" href=\"/?offset=25\""));
    assert!(!first.contains("id=\"newer\""));
    let second = owner.page(&app, "/?offset=25").await;
    assert!(
        second.contains(JANE),
        "the oldest request on the second page"
    );
    assert!(second.contains("id=\"newer\" href=\"/\""));
}

#[tokio::test]
async fn pending_approvals_are_approved_and_declined_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("approval.toml");
    std::fs::write(
        &catalog,
        "[documents.reviewed]\nkey = \"resume/lebenslauf.pdf\"\nfilename = \"Reviewed.pdf\"\n\
         title = \"A reviewed document\"\napproval = true\n",
    )
    .unwrap();
    let catalog = catalog.display().to_string();
    let app = owner_app(&[("DOCGATE_CATALOG", &catalog)]).await;
    for email in [JANE, JOHN] {
        assert_eq!(app.request_link(email, "reviewed").await.status(), 202);
    }
    let owner = sign_in(&app).await;
    let html = owner.page(&app, "/").await;
    assert!(html.contains("id=\"pending\""), "{html}");
    assert!(
        html.contains(&format!("{JANE} asks for A reviewed document")),
        "{html}"
    );
    assert!(html.contains("Waiting for your approval"), "{html}");
    assert!(app.outbox().is_empty(), "nobody mailed yet");

    // The id each request's forms post back.
    let id_of = |email: &str| {
        let item = html
            .split("<li>")
            .find(|li| li.contains(&format!("{email} asks for")))
            .expect("a pending item");
        let field = "name=\"id\" value=\"";
        let start = item.find(field).unwrap() + field.len();
        item[start..][..item[start..].find('"').unwrap()].to_owned()
    };
    let ids = [id_of(JANE), id_of(JOHN)];
    assert_ne!(ids[0], ids[1]);

    // Without the session's CSRF token, nothing is decided.
    let refused = owner
        .post(&app, "/approve", "wrong", &[("id", &ids[0])])
        .await;
    assert_eq!(refused.status(), 403);
    assert!(app.outbox().is_empty());

    assert_eq!(
        owner.decide(&app, "/approve", &ids[0]).await,
        "/?done=approved"
    );
    let mails = app.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(crate::support::Mail::read(&mails[0]).to, JANE);

    assert_eq!(
        owner.decide(&app, "/decline", &ids[1]).await,
        "/?done=declined"
    );
    assert_eq!(app.outbox().len(), 2, "the decline note");

    // Decided once: a second click changes nothing, and says so.
    assert_eq!(
        owner.decide(&app, "/approve", &ids[0]).await,
        "/?done=not_decided"
    );
    assert_eq!(app.outbox().len(), 2);
    let html = owner.page(&app, "/?done=not_decided").await;
    assert!(!html.contains("id=\"pending\""), "{html}");
    assert!(html.contains("already decided"), "{html}");
}

/// A document that only some domains may ask for, and a watermarked one that cannot be stamped
/// (its bytes are no PDF) and refuses a domain.
const POLICIES: &str = r#"
[documents.memo]
key = "resume/Jane_Doe_Resume.pdf"
filename = "Memo.pdf"
title = "The memo"
allowed_domains = ["example.com"]

[documents.deck]
key = "resume/lebenslauf.pdf"
filename = "Deck.pdf"
title = "The deck"
watermark = true
refused_domains = ["rival.example"]
"#;

#[tokio::test]
async fn the_log_says_in_words_why_no_mail_went_and_what_the_watermark_did() {
    let catalog = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(catalog.path(), POLICIES).unwrap();
    let catalog = catalog.path().display().to_string();
    for (fallback, status, said) in [
        (
            "refuse",
            503,
            "download refused: the PDF could not be stamped",
        ),
        (
            "serve",
            200,
            "served unstamped: the PDF could not be stamped",
        ),
    ] {
        let app = owner_app(&[
            ("DOCGATE_CATALOG", &catalog),
            ("DOCGATE_WATERMARK_FALLBACK", fallback),
        ])
        .await;
        for (email, document) in [(JOHN, "memo"), ("x@rival.example", "deck")] {
            assert_eq!(app.request_link(email, document).await.status(), 202);
        }
        let link = app.link(JANE, "deck").await;
        assert_eq!(app.client.get(&link).send().await.unwrap().status(), status);
        app.wait_for_log(4).await;
        assert_eq!(app.outbox().len(), 1, "only Jane was mailed");

        let owner = sign_in(&app).await;
        let log = owner.page(&app, "/").await;
        let log = log_of(&log);
        for words in [
            "The memo · Not mailed: the domain is not one the document allows",
            "The deck · Not mailed: the document refuses this domain",
            said,
        ] {
            assert!(log.contains(words), "{fallback}: {words} in {log}");
        }
        assert!(!log.contains("not_sent_"), "{log}");
    }
}

#[tokio::test]
async fn the_log_says_when_a_copy_was_stamped_with_its_recipient() {
    use crate::support::pdf::{pdf, plain_pages};

    let catalog = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(catalog.path(), POLICIES).unwrap();
    let catalog = catalog.path().display().to_string();
    let app = owner_app(&[("DOCGATE_CATALOG", &catalog)]).await;
    // The deck as a real PDF, which the stamp can name its recipient in.
    std::fs::write(
        app.path("documents/resume/lebenslauf.pdf"),
        pdf(&plain_pages(2)),
    )
    .unwrap();
    let link = app.link(JANE, "deck").await;
    let response = app.client.get(&link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let entries = app.wait_for_log(2).await;
    assert!(
        entries
            .iter()
            .any(|e| e.watermark.as_deref() == Some("stamped")),
        "{entries:?}"
    );

    let owner = sign_in(&app).await;
    let log = owner.page(&app, "/").await;
    let log = log_of(&log);
    assert!(log.contains("copy stamped with their address"), "{log}");
    assert!(!log.contains("unstamped"), "{log}");
}
