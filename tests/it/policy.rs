//! Each document's policy in the catalog, over real HTTP, embedded and on Redis: who may ask for
//! it (a refused address is answered exactly like an accepted one, gets no mail, and the owner's
//! request log says why), how long its links live and how many downloads they may start, what an
//! operator's mint makes of it, and a mistake in it stopping `docgate serve` and `docgate check`
//! with one line.

use std::time::Duration;

use docgate::requestlog::Entry;
use docgate::token::LEEWAY_SECS;
use http::Method;
use serde_json::json;

use crate::support::binary::Docgate;
use crate::support::redis::RedisServer;
use crate::support::{Mail, PartialGet, TestApp, newest, now, scrape, token_of, write_fixtures};

const REQUESTS: &str = "/api/download-requests";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// The test catalog: the fixtures' documents, each with a policy.
const CATALOG: &str = r#"
[documents.resume]
key = "resume/Jane_Doe_Resume.pdf"
filename = "Jane_Doe_Resume.pdf"
title = "Jane Doe's resume"
refused_domains = ["rival.example"]

[documents.deck]
key = "resume/lebenslauf.pdf"
filename = "Deck.pdf"
title = "The deck"
allowed_domains = ["Example.COM"]
refused_domains = ["hr.example.com"]

[documents.hourly]
key = "resume/lebenslauf.pdf"
filename = "Hourly.pdf"
title = "An hour's document"
link_ttl = "1h"

[documents.brief]
key = "resume/lebenslauf.pdf"
filename = "Brief.pdf"
title = "A brief document"
link_ttl = "1s"

[documents.reviewed]
key = "resume/lebenslauf.pdf"
filename = "Reviewed.pdf"
title = "A reviewed document"
approval = true

[documents.once]
key = "big.bin"
filename = "big.bin"
title = "A big file, one start"
download_attempts = 1
"#;

/// A docgate serving [`CATALOG`], embedded or on its own Redis, with the admin API on.
async fn docgate(on_redis: bool) -> (TestApp, tempfile::TempDir, Option<RedisServer>) {
    docgate_with(on_redis, &[]).await
}

/// [`docgate`] with these settings too.
async fn docgate_with(
    on_redis: bool,
    extra: &[(&str, &str)],
) -> (TestApp, tempfile::TempDir, Option<RedisServer>) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("policy.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let catalog = catalog.display().to_string();
    let redis = on_redis.then(RedisServer::start);
    let url = redis.as_ref().map(RedisServer::url);
    let mut settings = vec![
        ("DOCGATE_CATALOG", catalog.as_str()),
        ("DOCGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    if let Some(url) = &url {
        settings.push(("DOCGATE_REDIS_URL", url));
    }
    settings.extend_from_slice(extra);
    (TestApp::with(&settings).await, dir, redis)
}

/// A `202` as a client sees it: its status, its headers but `date`, its body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    Answer {
        status,
        headers,
        body: response.text().await.unwrap(),
    }
}

/// Asks for `document` as `email`, as a script does (JSON).
async fn ask(app: &TestApp, email: &str, document: &str) -> Answer {
    answer(app.request_link(email, document).await).await
}

/// Asks for `document` as `email` with the plain HTML form, as a browser does.
async fn ask_with_form(app: &TestApp, email: &str, document: &str) -> Answer {
    let response = app
        .post_form(
            REQUESTS,
            &[("email", email), ("document", document)],
            &[("accept", BROWSER_ACCEPT)],
        )
        .await;
    answer(response).await
}

/// The recipients of the outbox's mails, sorted.
fn mailed_to(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = app.outbox().iter().map(|p| Mail::read(p).to).collect();
    to.sort();
    to
}

/// The one mail in the outbox for the document titled `title`.
fn mail_for(app: &TestApp, title: &str) -> Mail {
    let mut mails: Vec<Mail> = app
        .outbox()
        .iter()
        .map(|p| Mail::read(p))
        .filter(|m| m.subject.ends_with(title))
        .collect();
    assert_eq!(mails.len(), 1, "one mail for {title}");
    mails.remove(0)
}

/// The owner's request log (in the file or in Redis), oldest first.
async fn request_log(app: &TestApp) -> Vec<Entry> {
    let mut entries = app.app.backends.requests.recent(1000, 0).await.unwrap();
    entries.reverse();
    entries
}

/// The link requests in the log as `(email, document, outcome, made a link)`.
async fn requests(app: &TestApp) -> Vec<(String, String, String, bool)> {
    request_log(app)
        .await
        .into_iter()
        .map(|e| {
            (
                e.email.unwrap_or_default(),
                e.document.unwrap_or_default(),
                e.outcome,
                e.jti.is_some(),
            )
        })
        .collect()
}

fn entry(email: &str, document: &str, outcome: &str, link: bool) -> (String, String, String, bool) {
    (email.into(), document.into(), outcome.into(), link)
}

/// The live links in the token store (embedded) or the `token:` keys (Redis).
fn live_links(app: &TestApp, redis: Option<&RedisServer>) -> usize {
    match redis {
        None => app.store().live_links(),
        Some(redis) => {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("docgate:token:*")
                .query(&mut redis.client())
                .unwrap();
            keys.len()
        }
    }
}

async fn a_refused_domain_is_answered_like_any_other_address(on_redis: bool) {
    let (app, _dir, redis) = docgate(on_redis).await;
    let accepted = ask(&app, "jane@example.org", "resume").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(mailed_to(&app), ["jane@example.org"]);

    // The domain, a subdomain of it and another spelling of it: the same answer, byte for byte,
    // and no mail.
    for email in [
        "x@rival.example",
        "y@team.rival.example",
        "Z@Sales.RIVAL.Example",
    ] {
        assert_eq!(ask(&app, email, "resume").await, accepted, "{email}");
    }
    let form = ask_with_form(&app, "a@example.org", "resume").await;
    assert_eq!(form.status, 202, "{}", form.body);
    assert_eq!(ask_with_form(&app, "b@rival.example", "resume").await, form);
    assert_eq!(mailed_to(&app), ["a@example.org", "jane@example.org"]);
    assert_eq!(live_links(&app, redis.as_ref()), 2, "no link made for them");

    // The owner learns who asked, and why they got nothing.
    assert_eq!(
        requests(&app).await,
        [
            entry("jane@example.org", "resume", "sent", true),
            entry(
                "x@rival.example",
                "resume",
                "not_sent_domain_refused",
                false
            ),
            entry(
                "y@team.rival.example",
                "resume",
                "not_sent_domain_refused",
                false
            ),
            entry(
                "Z@Sales.RIVAL.Example",
                "resume",
                "not_sent_domain_refused",
                false
            ),
            entry("a@example.org", "resume", "sent", true),
            entry(
                "b@rival.example",
                "resume",
                "not_sent_domain_refused",
                false
            ),
        ]
    );
    let (_, series) = scrape(&app).await;
    assert_eq!(
        series["docgate_link_requests_total{outcome=\"not_sent_domain_refused\"}"],
        4.0
    );
    assert_eq!(series["docgate_link_requests_total{outcome=\"sent\"}"], 2.0);

    // Another document has no such policy: the same address is mailed for it.
    app.link("x@rival.example", "hourly").await;
}

#[tokio::test]
async fn a_refused_domain_is_answered_like_any_other_address_embedded() {
    a_refused_domain_is_answered_like_any_other_address(false).await;
}

#[tokio::test]
async fn a_refused_domain_is_answered_like_any_other_address_on_redis() {
    a_refused_domain_is_answered_like_any_other_address(true).await;
}

async fn only_allowed_domains_get_mail(on_redis: bool) {
    let (app, _dir, redis) = docgate(on_redis).await;
    let accepted = ask(&app, "jane@example.com", "deck").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    for email in ["joe@mail.EXAMPLE.com", "ann@a.b.example.com"] {
        assert_eq!(ask(&app, email, "deck").await, accepted, "{email}");
    }
    // Outside the list (a look-alike too), and inside it but refused: answered alike, no mail.
    for email in [
        "x@example.org",
        "y@notexample.com",
        "z@example.com.rival.example",
        "boss@hr.example.com",
    ] {
        assert_eq!(ask(&app, email, "deck").await, accepted, "{email}");
    }
    assert_eq!(
        mailed_to(&app),
        [
            "ann@a.b.example.com",
            "jane@example.com",
            "joe@mail.EXAMPLE.com"
        ]
    );
    assert_eq!(live_links(&app, redis.as_ref()), 3);
    let outcomes: Vec<(String, String)> = requests(&app)
        .await
        .into_iter()
        .map(|(email, _, outcome, _)| (email, outcome))
        .collect();
    let expected: Vec<(String, String)> = [
        ("jane@example.com", "sent"),
        ("joe@mail.EXAMPLE.com", "sent"),
        ("ann@a.b.example.com", "sent"),
        ("x@example.org", "not_sent_domain_not_allowed"),
        ("y@notexample.com", "not_sent_domain_not_allowed"),
        ("z@example.com.rival.example", "not_sent_domain_not_allowed"),
        ("boss@hr.example.com", "not_sent_domain_refused"),
    ]
    .into_iter()
    .map(|(e, o)| (e.to_owned(), o.to_owned()))
    .collect();
    assert_eq!(outcomes, expected);
}

#[tokio::test]
async fn only_allowed_domains_get_mail_embedded() {
    only_allowed_domains_get_mail(false).await;
}

#[tokio::test]
async fn only_allowed_domains_get_mail_on_redis() {
    only_allowed_domains_get_mail(true).await;
}

#[tokio::test]
async fn a_refused_domain_still_spends_its_addresss_budget() {
    // The limits come before the policy: an address is refused by its budget first, whatever
    // the document says, so the limits tell nothing about the policy either.
    let (app, _dir, _redis) =
        docgate_with(false, &[("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h")]).await;
    let first = ask(&app, "x@rival.example", "resume").await;
    assert_eq!(first.status, 202);
    // The budget is spent: even for a document that would mail it, nothing is sent.
    assert_eq!(ask(&app, "x@rival.example", "hourly").await.status, 202);
    assert!(app.outbox().is_empty());
    let outcomes: Vec<String> = requests(&app).await.into_iter().map(|r| r.2).collect();
    assert_eq!(
        outcomes,
        ["not_sent_domain_refused", "not_sent_address_limit"]
    );
}

async fn a_documents_link_ttl_is_the_links_lifetime(on_redis: bool) {
    let (app, _dir, _redis) = docgate(on_redis).await;

    // An hour: in the answer, in the mail, in the token.
    let response = app.request_link("jane@example.org", "hourly").await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Check your inbox: the link expires in 1 hour."
    );
    let mail = mail_for(&app, "An hour's document");
    assert!(mail.text.contains("expires in 1 hour,"), "{}", mail.text);
    let claims = app
        .app
        .codec
        .verify(crate::support::token_of(&mail.link), now())
        .unwrap();
    assert_eq!(claims.exp - claims.iat, 3600);
    // The service-wide lifetime still holds for the others.
    let response = app.request_link("jane@example.org", "resume").await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Check your inbox: the link expires in 15 minutes."
    );

    // A second: the link works at once, and is expired once that second (and the clock
    // leeway) has passed.
    let response = app
        .post_form(
            REQUESTS,
            &[("email", "joe@example.org"), ("document", "brief")],
            &[("accept", BROWSER_ACCEPT)],
        )
        .await;
    assert_eq!(response.status(), 202);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("It works once and expires in 1 second."),
        "the page states the real lifetime"
    );
    let link = mail_for(&app, "A brief document").link;
    let claims = app
        .app
        .codec
        .verify(crate::support::token_of(&link), now())
        .unwrap();
    assert_eq!(claims.exp - claims.iat, 1);
    assert_eq!(app.head(&link).await.status(), 200, "usable at first");
    let wait = (claims.exp + LEEWAY_SECS + 1).saturating_sub(now());
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let response = app.get_with(&link, &[("accept", "application/json")]).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "link_expired");
}

#[tokio::test]
async fn a_documents_link_ttl_is_the_links_lifetime_embedded() {
    a_documents_link_ttl_is_the_links_lifetime(false).await;
}

#[tokio::test]
async fn a_documents_link_ttl_is_the_links_lifetime_on_redis() {
    a_documents_link_ttl_is_the_links_lifetime(true).await;
}

async fn one_download_attempt_allows_one_start(on_redis: bool) {
    let (app, _dir, _redis) = docgate(on_redis).await;
    let link = app.link("jane@example.org", "once").await;
    let partial = PartialGet::start(&app, &link, &[], 64 * 1024).await;
    assert_eq!(partial.status, 200);
    drop(partial);
    // Cut off, and no attempt left: the service-wide 3 would allow two more.
    app.wait_for_head(&link, 410).await;
    let response = app.get_with(&link, &[("accept", "application/json")]).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "link_used");

    // Another document's link keeps the service-wide attempts: cut off, it is usable again.
    let link = app.link("jane@example.org", "resume").await;
    let partial = PartialGet::start(&app, &link, &[], 1024).await;
    assert_eq!(partial.status, 200);
    drop(partial);
    app.wait_for_head(&link, 200).await;
}

#[tokio::test]
async fn one_download_attempt_allows_one_start_embedded() {
    one_download_attempt_allows_one_start(false).await;
}

#[tokio::test]
async fn one_download_attempt_allows_one_start_on_redis() {
    one_download_attempt_allows_one_start(true).await;
}

async fn a_document_needing_approval_is_never_mailed_on_request_alone(on_redis: bool) {
    let (app, _dir, redis) = docgate(on_redis).await;
    let accepted = ask(&app, "jane@example.org", "resume").await;
    assert_eq!(accepted.status, 202);
    // The request waits for the owner (`tests/it/approval.rs`): no link, no mail.
    let review = ask(&app, "joe@example.org", "reviewed").await;
    assert_eq!(review.status, 202);
    assert!(
        review.body.contains("the owner will review"),
        "{}",
        review.body
    );
    assert_eq!(mailed_to(&app), ["jane@example.org"]);
    assert_eq!(live_links(&app, redis.as_ref()), 1);
    assert_eq!(
        requests(&app).await[1],
        entry("joe@example.org", "reviewed", "pending_approval", false)
    );
    // The owner decides through the operator's mint.
    let (status, minted) = mint(
        &app,
        json!({"email": "joe@example.org", "document": "reviewed", "send": true}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(mailed_to(&app), ["jane@example.org", "joe@example.org"]);
}

#[tokio::test]
async fn a_document_needing_approval_is_never_mailed_on_request_alone_embedded() {
    a_document_needing_approval_is_never_mailed_on_request_alone(false).await;
}

#[tokio::test]
async fn a_document_needing_approval_is_never_mailed_on_request_alone_on_redis() {
    a_document_needing_approval_is_never_mailed_on_request_alone(true).await;
}

/// `POST /admin/links` with `body`: the status and the JSON answer.
async fn mint(app: &TestApp, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app
        .client
        .request(Method::POST, format!("{}/admin/links", app.admin_base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Seconds from now to a minted link's `expires_at`.
fn lifetime(minted: &serde_json::Value) -> u64 {
    let expires = time::OffsetDateTime::parse(
        minted["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp() as u64;
    expires - now()
}

#[tokio::test]
async fn an_operator_mints_with_the_documents_lifetime_and_past_its_domains() {
    let (app, _dir, _redis) = docgate(false).await;
    // The document's lifetime unless the operator gives one.
    let (status, minted) = mint(
        &app,
        json!({"email": "jane@example.org", "document": "hourly"}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert!((3590..=3600).contains(&lifetime(&minted)), "{minted}");
    let (status, minted) = mint(
        &app,
        json!({"email": "jane@example.org", "document": "hourly", "ttl": "10m"}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert!((590..=600).contains(&lifetime(&minted)), "{minted}");

    // The policy governs what the public may ask for; an operator mints and mails for anyone.
    let (status, minted) = mint(
        &app,
        json!({"email": "x@rival.example", "document": "resume", "send": true}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(mailed_to(&app), ["x@rival.example"]);
    assert_eq!(Mail::read(newest(&app.outbox())).link, minted["url"]);

    // The document's attempts hold for a minted link too.
    let (status, minted) = mint(
        &app,
        json!({"email": "jane@example.org", "document": "once"}),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let link = minted["url"].as_str().unwrap();
    let partial = PartialGet::start(&app, link, &[], 64 * 1024).await;
    assert_eq!(partial.status, 200);
    drop(partial);
    app.wait_for_head(link, 410).await;
}

/// One mistake per catalog, and the line `docgate check` and `docgate serve` stop with.
const MISTAKES: [(&str, &str); 3] = [
    (
        "refused_domains = [\"rival example\"]",
        "documents.resume.refused_domains \"rival example\" is not a domain name",
    ),
    (
        "link_ttl = \"45d\"",
        "documents.resume.link_ttl must be a duration from 1s to 30d",
    ),
    (
        "content_type = \"text/plain\"\nwatermark = true",
        "documents.resume.watermark is only for PDF documents",
    ),
];

#[tokio::test]
async fn a_policy_mistake_stops_check_and_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    for (i, (lines, expected)) in MISTAKES.into_iter().enumerate() {
        let catalog = dir.path().join(format!("mistake-{i}.toml"));
        std::fs::write(
            &catalog,
            format!(
                "[documents.resume]\nkey = \"resume/Jane_Doe_Resume.pdf\"\n\
                 filename = \"Jane_Doe_Resume.pdf\"\ntitle = \"Jane Doe's resume\"\n{lines}\n"
            ),
        )
        .unwrap();
        let catalog = catalog.display().to_string();
        let one_line = |err: &str| {
            let err = err.trim_end_matches('\n');
            assert_eq!(err.lines().count(), 1, "{lines}: {err:?}");
            assert!(err.contains("DOCGATE_CATALOG="), "{err}");
            assert!(err.contains(expected), "{lines}: {err}");
        };

        // `check` reports on stdout, one line per check: the configuration's is the only one.
        let (code, out, err) =
            crate::support::cli(dir.path(), &[("DOCGATE_CATALOG", &catalog)], &["check"]);
        assert_eq!(code, 64, "{out} {err}");
        one_line(&out);
        assert!(out.starts_with("config: FAILED"), "{out}");

        let mut env = crate::support::fixture_env(
            dir.path(),
            "http://localhost:8080",
            crate::support::SECRET,
        );
        env.push(("DOCGATE_CATALOG".to_owned(), catalog.clone()));
        env.push(("DOCGATE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()));
        let mut serve = Docgate::spawn(dir.path(), env, &["serve"]);
        let status = serve.exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(64), "{}", serve.stderr.text());
        one_line(&serve.stderr.text());
    }
}

#[tokio::test]
async fn a_spent_link_of_a_long_lived_document_says_used_for_the_rest_of_its_life_on_redis() {
    // Links of other documents live 2 s; this document's an hour.
    let (app, _dir, redis) = docgate_with(true, &[("DOCGATE_TOKEN_TTL", "2s")]).await;
    let redis = redis.unwrap();
    let link = app.link("jane@example.org", "hourly").await;
    let claims = app.app.codec.verify(token_of(&link), now()).unwrap();
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    // The "used" marker lives as long as the link would have, not DOCGATE_TOKEN_TTL.
    let left: i64 = ::redis::cmd("PTTL")
        .arg(format!("docgate:spent:{{{}}}", claims.jti.as_str()))
        .query(&mut redis.client())
        .unwrap();
    assert!(left > 50 * 60 * 1000, "the marker lives {left} ms");
    let again = app.get_with(&link, &[("accept", "application/json")]).await;
    assert_eq!(again.status(), 410);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
}
