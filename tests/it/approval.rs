//! Approval, over real HTTP, embedded and on Redis: a request for a document with
//! `approval = true` is answered `202` "the owner will review", mails the owner one-click
//! Approve and Decline links and nobody else; a scanner's `GET`/`HEAD` of those links decides
//! nothing; the `POST` decides once (the recipient gets the usual link, or the decline note, or
//! nothing); pending requests expire; the admin API lists and decides them, once across replicas.

use std::time::Duration;

use http::Method;
use serde_json::json;

use crate::support::redis::RedisServer;
use crate::support::{Mail, TestApp, embedded_and_on_redis, eventually};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const OWNER: &str = "owner@example.net";
const REVIEW: &str =
    "Thank you: the owner will review your request. If they approve it, the link comes by email.";

const CATALOG: &str = r#"
[documents.reviewed]
key = "resume/lebenslauf.pdf"
filename = "Reviewed.pdf"
title = "A reviewed document"
approval = true
refused_domains = ["rival.example"]
"#;

/// A docgate serving [`CATALOG`] with the owner's address set, embedded or on `redis`.
async fn docgate(redis: Option<&RedisServer>, extra: &[(&str, &str)]) -> App {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("approval.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let catalog = catalog.display().to_string();
    let url = redis.map(RedisServer::url);
    let mut settings = vec![
        ("DOCGATE_CATALOG", catalog.as_str()),
        ("DOCGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DOCGATE_OWNER_EMAIL", OWNER),
    ];
    if let Some(url) = &url {
        settings.push(("DOCGATE_REDIS_URL", url));
    }
    settings.extend_from_slice(extra);
    App {
        app: TestApp::with(&settings).await,
        catalog,
        _catalog_dir: dir,
    }
}

/// A test server and its catalog's directory.
struct App {
    app: TestApp,
    /// The catalog file's path.
    catalog: String,
    _catalog_dir: tempfile::TempDir,
}

impl std::ops::Deref for App {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Every mail in the outbox, oldest first.
fn mails(app: &TestApp) -> Vec<Mail> {
    let mut paths = app.outbox();
    paths.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    paths.iter().map(|p| Mail::parse(p)).collect()
}

/// The Approve and Decline links of the owner's mail.
fn decision_links(mail: &Mail) -> (String, String) {
    let links: Vec<&str> = mail
        .text
        .split_whitespace()
        .filter(|w| w.contains("/approvals/"))
        .collect();
    assert_eq!(links.len(), 2, "{}", mail.text);
    (links[0].to_owned(), links[1].to_owned())
}

/// Asks for the reviewed document as `email`: the status and the JSON answer.
async fn ask(app: &TestApp, email: &str) -> (u16, serde_json::Value) {
    let response = app.request_link(email, "reviewed").await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `GET /admin/approvals` with the admin token, or without one.
async fn get_approvals(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let request = app
        .client
        .get(format!("{}/admin/approvals", app.admin_base));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// The pending requests, as `GET /admin/approvals` lists them.
async fn pending(app: &TestApp) -> Vec<serde_json::Value> {
    let response = get_approvals(app, Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["pending"].as_array().unwrap().clone()
}

/// `POST /admin/approvals/{id}` with `body`: the status and the JSON answer.
async fn decide(app: &TestApp, id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app
        .client
        .request(
            Method::POST,
            format!("{}/admin/approvals/{id}", app.admin_base),
        )
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The request log's outcomes, oldest first, as `(email, outcome, made a link)`.
async fn outcomes(app: &TestApp) -> Vec<(String, String, bool)> {
    let mut entries = app.app.backends.requests.recent(100, 0).await.unwrap();
    entries.reverse();
    entries
        .into_iter()
        .map(|e| (e.email.unwrap_or_default(), e.outcome, e.jti.is_some()))
        .collect()
}

fn outcome(email: &str, outcome: &str, link: bool) -> (String, String, bool) {
    (email.into(), outcome.into(), link)
}

/// Jane's request decided by the owner's `POST` of a link of the owner's mail: Approve
/// (`approve`) or Decline. `200`, one mail more, to her, the decision in the log (with a link on
/// approval); then nothing waits, and both links say it is decided and change nothing. Her mail,
/// and the page the owner saw.
async fn decide_by_mail(
    app: &TestApp,
    (approve_link, decline_link): &(String, String),
    approve: bool,
) -> (Mail, String) {
    let link = if approve { approve_link } else { decline_link };
    let response = app.client.post(link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let mut sent = mails(app);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to, "jane@example.org");
    assert!(pending(app).await.is_empty());
    let decided = if approve { "approved" } else { "declined" };
    assert_eq!(
        outcomes(app).await,
        [
            outcome("jane@example.org", "pending_approval", false),
            outcome("jane@example.org", decided, approve),
        ]
    );

    // Decided once: both links now say so, and change nothing.
    for link in [approve_link, decline_link] {
        let again = app.client.post(link).send().await.unwrap();
        assert_eq!(again.status(), 404);
        assert!(again.text().await.unwrap().contains("already been decided"));
        assert_eq!(app.client.get(link).send().await.unwrap().status(), 404);
    }
    assert_eq!(mails(app).len(), 2);
    (sent.remove(1), page)
}

async fn the_round_trip_mails_the_owner_then_the_recipient(redis: Option<&RedisServer>) {
    let app = docgate(redis, &[]).await;
    let (status, body) = ask(&app, "jane@example.org").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message"], REVIEW);

    // The owner is asked; the person gets nothing yet.
    let sent = mails(&app);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, OWNER);
    assert_eq!(
        sent[0].subject,
        "Approve a request for A reviewed document?"
    );
    assert!(
        sent[0].text.contains("jane@example.org"),
        "{}",
        sent[0].text
    );
    let (approve, decline) = decision_links(&sent[0]);
    assert!(
        approve.starts_with(&format!("{}/approvals/", app.base)),
        "{approve}"
    );
    assert_eq!(
        outcomes(&app).await,
        [outcome("jane@example.org", "pending_approval", false)]
    );
    let listed = pending(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["email"], "jane@example.org");
    assert_eq!(listed[0]["document"], "reviewed");

    // A mail scanner fetching both links decides nothing: a page that asks to confirm.
    for link in [&approve, &decline] {
        let page = app.client.get(link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("method=\"post\""), "{html}");
        assert!(
            html.contains("jane@example.org asks for A reviewed document."),
            "{html}"
        );
        let head = app.client.head(link).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    assert_eq!(mails(&app).len(), 1);
    assert_eq!(pending(&app).await.len(), 1);

    // The owner's POST approves: the person gets the usual link mail.
    let (mail, page) = decide_by_mail(&app, &(approve, decline), true).await;
    assert!(page.contains("on its way to jane@example.org"), "{page}");
    let download = app.get(&mail.link).await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        crate::support::content(2, 4096)
    );
}

embedded_and_on_redis!(the_round_trip_mails_the_owner_then_the_recipient:
    the_round_trip_mails_the_owner_then_the_recipient_embedded,
    the_round_trip_mails_the_owner_then_the_recipient_on_redis);

async fn decline_mails_a_polite_note_or_nothing(redis: Option<&RedisServer>) {
    let app = docgate(redis, &[]).await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let links = decision_links(&mails(&app)[0]);
    let (note, _) = decide_by_mail(&app, &links, false).await;
    assert_eq!(note.subject, "Your request for A reviewed document");
    assert!(
        note.text.contains("decided not to share it"),
        "{}",
        note.text
    );
    assert!(!note.text.contains("/d/"), "no link: {}", note.text);

    // With the note turned off, declining sends nothing.
    let quiet = docgate(redis, &[("DOCGATE_APPROVAL_DECLINE_TEXT", "off")]).await;
    assert_eq!(ask(&quiet, "joe@example.org").await.0, 202);
    let id = pending(&quiet).await[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        decide(&quiet, &id, json!({"decision": "decline"})).await,
        (200, json!({"decided": "decline"}))
    );
    let sent = mails(&quiet);
    assert_eq!(sent.len(), 1, "the owner's mail only: {sent:?}");
    assert_eq!(sent[0].to, OWNER);
}

embedded_and_on_redis!(decline_mails_a_polite_note_or_nothing:
    decline_mails_a_polite_note_or_nothing_embedded,
    decline_mails_a_polite_note_or_nothing_on_redis);

async fn pending_requests_expire(redis: Option<&RedisServer>) {
    // Long enough to list the request on a busy machine before it expires.
    let app = docgate(redis, &[("DOCGATE_APPROVAL_TTL", "2s")]).await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let id = pending(&app).await[0]["id"].as_str().unwrap().to_owned();
    let (approve, _) = decision_links(&mails(&app)[0]);
    eventually("the request to expire", Duration::from_secs(10), || async {
        pending(&app).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        app.client.post(&approve).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        decide(&app, &id, json!({"decision": "approve"})).await.0,
        404
    );
    assert_eq!(mails(&app).len(), 1, "nothing sent after expiry");
}

embedded_and_on_redis!(pending_requests_expire:
    pending_requests_expire_embedded,
    pending_requests_expire_on_redis);

#[tokio::test]
async fn a_refused_domain_never_reaches_the_owner() {
    let app = docgate(None, &[]).await;
    let (status, body) = ask(&app, "x@rival.example").await;
    assert_eq!((status, &body["message"]), (202, &json!(REVIEW)));
    assert!(mails(&app).is_empty());
    assert!(pending(&app).await.is_empty());
    assert_eq!(
        outcomes(&app).await,
        [outcome("x@rival.example", "not_sent_domain_refused", false)]
    );
}

#[tokio::test]
async fn the_admin_api_lists_and_decides_with_clear_errors() {
    let app = docgate(None, &[]).await;
    assert!(pending(&app).await.is_empty());
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let listed = pending(&app).await;
    assert_eq!(listed.len(), 1);
    let row = listed[0].as_object().unwrap();
    let mut fields: Vec<&str> = row.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["asked_at", "document", "email", "id"]);
    let id = row["id"].as_str().unwrap().to_owned();

    let (status, body) = decide(&app, &id, json!({"decision": "maybe"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        decide(
            &app,
            "no-such-request-id-0123",
            json!({"decision": "approve"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        decide(&app, "x", json!({"decision": "approve"})).await.0,
        404
    );
    assert_eq!(mails(&app).len(), 1, "nothing decided yet");

    assert_eq!(
        decide(&app, &id, json!({"decision": "approve"})).await,
        (200, json!({"decided": "approve"}))
    );
    assert_eq!(
        decide(&app, &id, json!({"decision": "decline"})).await.0,
        404
    );
    let sent = mails(&app);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].to, "jane@example.org");

    // Without the token, nothing.
    assert_eq!(get_approvals(&app, None).await.status(), 401);
}

#[tokio::test]
async fn two_replicas_decide_a_request_once() {
    let redis = RedisServer::start();
    let a = docgate(Some(&redis), &[]).await;
    let b = docgate(Some(&redis), &[]).await;
    assert_eq!(ask(&a, "jane@example.org").await.0, 202);
    let id = pending(&b).await[0]["id"].as_str().unwrap().to_owned();
    let approve = json!({"decision": "approve"});
    let (on_a, on_b) = tokio::join!(decide(&a, &id, approve.clone()), decide(&b, &id, approve));
    let mut statuses = [on_a.0, on_b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 404]);
    let links: usize = [&a, &b]
        .iter()
        .map(|app| {
            mails(app)
                .iter()
                .filter(|m| m.to == "jane@example.org")
                .count()
        })
        .sum();
    assert_eq!(links, 1, "one link mail in all");
}

#[tokio::test]
async fn the_command_line_lists_and_decides_on_redis() {
    let redis = RedisServer::start();
    let app = docgate(Some(&redis), &[]).await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let url = redis.url();
    let env = [
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_CATALOG", app.catalog.as_str()),
        ("DOCGATE_OWNER_EMAIL", OWNER),
    ];
    let dir = app.dir.path();
    let (code, out, err) = crate::support::cli(dir, &env, &["approvals"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["email"], "jane@example.org");
    let id = rows[0]["id"].as_str().unwrap().to_owned();

    let (code, out, err) = crate::support::cli(dir, &env, &["approve", &id]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("approved {id}").as_str()),
        "{err}"
    );
    assert_eq!(
        mails(&app)
            .iter()
            .filter(|m| m.to == "jane@example.org")
            .count(),
        1,
        "the link mail"
    );
    let (code, _, err) = crate::support::cli(dir, &env, &["decline", &id]);
    assert_eq!(code, 65);
    assert!(err.contains("no pending request has the id"), "{err}");
    let (code, out, _) = crate::support::cli(dir, &env, &["approvals"]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[tokio::test]
async fn the_owners_webhook_gets_a_signed_event_with_the_decision_links() {
    use crate::support::webhook::{HOOK_SECRET, Receiver};
    let receiver = Receiver::start(&[]).await;
    let app = docgate(
        None,
        &[
            ("DOCGATE_OWNER_WEBHOOK_URL", &receiver.url),
            ("DOCGATE_OWNER_WEBHOOK_SECRET", HOOK_SECRET),
        ],
    )
    .await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let received = receiver.wait_for(1).await;
    received[0].verify();
    let event = received[0].json();
    assert_eq!(event["event"], "approval.requested");
    assert_eq!(event["email"], "jane@example.org");
    assert_eq!(event["document"], "reviewed");
    let id = pending(&app).await[0]["id"].clone();
    assert_eq!(event["id"], id);
    assert_eq!(received[0].header("docgate-event-id"), id.as_str().unwrap());
    // Its Approve link is the mail's, and decides as it does.
    let (approve, _) = decision_links(&mails(&app)[0]);
    assert_eq!(event["approve_url"], approve.as_str());
    let approved = app
        .client
        .post(event["approve_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    assert_eq!(mails(&app)[1].to, "jane@example.org");
}

#[tokio::test]
async fn through_the_durable_mail_queue_over_smtp() {
    let redis = RedisServer::start();
    let sink = crate::support::smtp::SmtpSink::start();
    let smtp = sink.url();
    let app = docgate(
        Some(&redis),
        &[
            ("DOCGATE_SMTP_URL", &smtp),
            ("DOCGATE_APPROVAL_DECLINE_TEXT", "off"),
        ],
    )
    .await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let delivered = sink.delivered(1).await;
    let owner = Mail::parse(&delivered[0]);
    assert_eq!(owner.to, OWNER);
    let (approve, _) = decision_links(&owner);
    assert_eq!(
        app.client.post(&approve).send().await.unwrap().status(),
        200
    );
    let delivered = sink.delivered(2).await;
    let link = crate::support::Mail::read(&delivered[1]);
    assert_eq!(link.to, "jane@example.org");
    let download = app.get(&link.link).await;
    assert_eq!(download.status(), 200);
    assert!(app.outbox().is_empty(), "no file outbox in SMTP mode");
}

#[tokio::test]
async fn a_decision_link_is_no_download_link_and_a_tampered_one_decides_nothing() {
    let app = docgate(None, &[]).await;
    // A person with a browser gets the review page.
    let page = app
        .post_form(
            "/api/download-requests",
            &[("email", "jane@example.org"), ("document", "reviewed")],
            &[("accept", "text/html,application/xhtml+xml")],
        )
        .await;
    assert_eq!(page.status(), 202);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-page=\"request-review\""), "{html}");
    assert!(
        html.contains("the owner will review your request"),
        "{html}"
    );

    let (approve, _) = decision_links(&mails(&app)[0]);
    let token = approve.rsplit('/').next().unwrap();
    // Signed by the same keys, but not a link: it downloads nothing.
    let download = app.get(&format!("/d/{token}")).await;
    assert!(download.status().is_client_error(), "{}", download.status());
    // A tampered token, or a download link's, decides nothing.
    // (A character inside the signature: the last one carries padding bits.)
    let at = approve.len() - 10;
    let flipped = if &approve[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &approve[..at], &approve[at + 1..]);
    assert_eq!(
        app.client.post(&tampered).send().await.unwrap().status(),
        404
    );
    let (_, link) = app.mint("reviewed").await;
    let as_decision = format!("{}/approvals/{}", app.base, crate::support::token_of(&link));
    assert_eq!(
        app.client.post(&as_decision).send().await.unwrap().status(),
        404
    );
    assert_eq!(pending(&app).await.len(), 1, "still waiting");
    assert_eq!(mails(&app).len(), 1);
    // Other methods are refused.
    let put = app.client.put(&approve).send().await.unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(
        app.client.post(&approve).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn with_redis_down_nothing_is_asked_or_decided() {
    let mut redis = RedisServer::start();
    let app = docgate(Some(&redis), &[]).await;
    assert_eq!(ask(&app, "jane@example.org").await.0, 202);
    let (approve, _) = decision_links(&mails(&app)[0]);
    redis.stop();
    // Fail closed: no request waits that the owner could not decide, and nothing is decided.
    let (status, body) = ask(&app, "joe@example.org").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        app.client.post(&approve).send().await.unwrap().status(),
        503
    );
    assert_eq!(app.client.get(&approve).send().await.unwrap().status(), 503);
    let response = get_approvals(&app, Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), 503);
    let sent = mails(&app);
    assert_eq!(
        sent.len(),
        1,
        "only the first request's owner mail: {sent:?}"
    );
}

#[tokio::test]
async fn on_a_cluster_node_requests_wait_and_are_decided() {
    let server = crate::key_layout::slot_checking_redis();
    let app = docgate(Some(&server), &[]).await;
    for email in ["jane@example.org", "joe@example.org"] {
        assert_eq!(ask(&app, email).await.0, 202);
    }
    let listed = pending(&app).await;
    assert_eq!(listed.len(), 2);
    for row in &listed {
        let id = row["id"].as_str().unwrap();
        assert_eq!(
            decide(&app, id, json!({"decision": "approve"})).await.0,
            200
        );
    }
    assert!(pending(&app).await.is_empty());
    let to: Vec<String> = mails(&app).into_iter().map(|m| m.to).collect();
    assert_eq!(to.iter().filter(|t| *t == OWNER).count(), 2);
    assert_eq!(to.len(), 4, "{to:?}");
}

#[tokio::test]
async fn the_command_line_decides_through_a_running_embedded_service() {
    use crate::support::binary::Docgate;
    use crate::support::{fixture_env_with, write_fixtures};
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let catalog = dir.path().join("approval.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let settings = |port: u16, admin_port: u16| {
        [
            ("DOCGATE_LISTEN", format!("127.0.0.1:{port}")),
            ("DOCGATE_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
            ("DOCGATE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("DOCGATE_CATALOG", catalog.display().to_string()),
            ("DOCGATE_OWNER_EMAIL", OWNER.to_owned()),
        ]
    };
    let (_docgate, port, admin_port) =
        Docgate::serve_on_free_ports(dir.path(), Duration::from_secs(20), |port, admin_port| {
            let base = format!("http://127.0.0.1:{port}");
            fixture_env_with(
                dir.path(),
                &base,
                crate::support::SECRET,
                settings(port, admin_port),
            )
        })
        .await;
    let base = format!("http://127.0.0.1:{port}");
    let settings = settings(port, admin_port);
    let response = crate::support::request_link(
        &reqwest::Client::new(),
        &base,
        "jane@example.org",
        "reviewed",
    )
    .await;
    assert_eq!(response.status(), 202);

    let cli_env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = crate::support::cli(dir.path(), &cli_env, &["approvals"]);
    assert_eq!(code, 0, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["email"], "jane@example.org");
    let id = row["id"].as_str().unwrap().to_owned();
    let (code, out, err) = crate::support::cli(dir.path(), &cli_env, &["decline", &id]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("declined {id}").as_str()),
        "{err}"
    );
    let (code, _, err) = crate::support::cli(dir.path(), &cli_env, &["approve", &id]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("no pending request has the id"), "{err}");
    let (code, _, err) = crate::support::cli(dir.path(), &cli_env, &["approve", "not an id"]);
    assert_eq!(code, 65, "{err}");
}
