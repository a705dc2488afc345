//! Privacy over real HTTP and the real binary: consent to the privacy notice, the name and company
//! a visitor may give, exporting and erasing one person's request log entries (admin API and
//! CLI, on the file log and on Redis), and retention at startup.

use std::time::Duration;

use crate::support::owner_id;
use docgate::requestlog::{Entry, Event};
use docgate::token::Claims;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{TOKEN, call, json_of};
use crate::support::redis::RedisServer;
use crate::support::{RESUME_LEN, TestApp, cli, eventually, now};

const REQUESTS: &str = "/api/download-requests";

/// POSTs a JSON link request.
async fn ask(app: &TestApp, body: Value) -> (u16, Value) {
    json_of(
        app.client
            .post(format!("{}{REQUESTS}", app.base))
            .json(&body),
    )
    .await
}

/// Waits (bounded) until the log holds `n` entries of the person at `email` (downloads are
/// recorded just after their response ends).
async fn wait_for_person(app: &TestApp, email: &str, n: usize) -> Vec<Entry> {
    let owner = owner_id(email);
    eventually(
        &format!("{n} entries of {email}"),
        Duration::from_secs(5),
        || async {
            let entries = app.app.backends.requests.person(&owner).await.unwrap();
            (entries.len() >= n).then_some(entries)
        },
    )
    .await
}

/// The emails of the rows `GET /admin/requests` shows.
async fn request_rows(app: &TestApp) -> Vec<Value> {
    let (status, page) = json_of(call(app, Method::GET, "/admin/requests?limit=100")).await;
    assert_eq!(status, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn consent_is_required_when_a_privacy_notice_is_set() {
    let app = TestApp::with(&[("DOCGATE_PRIVACY_URL", "https://example.com/privacy")]).await;
    let refusals = [
        json!({"email": "jane@example.org", "document": "resume"}),
        json!({"email": "jane@example.org", "document": "resume", "consent": false}),
        json!({"email": "jane@example.org", "document": "resume", "consent": "no"}),
        json!({"email": "jane@example.org", "document": "resume", "consent": null}),
    ];
    for body in refusals {
        let (status, answer) = ask(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["errors"]["consent"][0].is_string(), "{answer}");
        assert_eq!(answer["errors"].as_object().unwrap().len(), 1, "{answer}");
    }
    // Other problems are reported with it.
    let (status, answer) = ask(&app, json!({"email": "nope", "document": "resume"})).await;
    assert_eq!(status, 400);
    assert!(answer["errors"]["email"].is_array() && answer["errors"]["consent"].is_array());
    assert!(app.outbox().is_empty(), "nothing mailed on a refusal");
    assert_eq!(app.store().live_links(), 0);

    let (status, answer) = ask(
        &app,
        json!({"email": "jane@example.org", "document": "resume", "consent": true}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    // A plain HTML form's checked checkbox posts `on`.
    let response = app
        .post_form(
            REQUESTS,
            &[
                ("email", "joe@example.org"),
                ("document", "resume"),
                ("consent", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(app.outbox().len(), 2);

    let consents: Vec<(String, Option<bool>)> = app
        .request_log()
        .into_iter()
        .map(|e| (e.outcome, e.consent))
        .collect();
    // The refusals are counted, not stored.
    assert_eq!(
        consents,
        [
            ("sent".to_owned(), Some(true)),
            ("sent".to_owned(), Some(true)),
        ]
    );

    // Without a privacy notice, consent is not asked (and recorded when given anyway).
    let open = TestApp::start().await;
    let (status, _) = ask(
        &open,
        json!({"email": "jane@example.org", "document": "resume"}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(open.request_log()[0].consent, None);
}

#[tokio::test]
async fn names_and_companies_are_checked_and_shown_to_the_owner() {
    let app = TestApp::with(&[("DOCGATE_ADMIN_TOKEN", TOKEN)]).await;
    let cases = [
        (json!({"name": "Jane\r\nBcc: x@example.org"}), vec!["name"]),
        (json!({"company": "c".repeat(101)}), vec!["company"]),
        (
            json!({"name": "\u{1b}[2JJane", "company": "Doe \u{202E}dtL"}),
            vec!["company", "name"],
        ),
        (json!({"name": 5}), vec!["body"]),
    ];
    for (extra, fields) in cases {
        let mut body = json!({"email": "jane@example.org", "document": "resume"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = ask(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let mut got: Vec<&str> = answer["errors"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        got.sort_unstable();
        assert_eq!(got, fields, "{body}: {answer}");
    }
    assert!(app.outbox().is_empty());

    let (status, _) = ask(
        &app,
        json!({
            "email": "jane@example.org",
            "document": "resume",
            "name": "  Jane Doe ",
            "company": "é".repeat(100),
        }),
    )
    .await;
    assert_eq!(status, 202);
    let response = app
        .post_form(
            REQUESTS,
            &[
                ("email", "joe@example.org"),
                ("document", "resume"),
                ("name", "Joe"),
                ("company", ""),
            ],
            &[],
        )
        .await;
    assert_eq!(response.status(), 202);

    let rows = request_rows(&app).await;
    assert_eq!(rows[0]["email"], "joe@example.org");
    assert_eq!(rows[0]["name"], "Joe");
    assert_eq!(
        rows[0]["company"],
        Value::Null,
        "an empty field is no company"
    );
    assert_eq!(rows[1]["name"], "Jane Doe");
    assert_eq!(rows[1]["company"], "é".repeat(100));
    assert_eq!(rows[1]["consent"], Value::Null);
    assert_eq!(rows[1]["opened"], json!([]));
}

#[tokio::test]
async fn the_owner_sees_when_a_link_was_opened_before_its_download() {
    let app = TestApp::with(&[("DOCGATE_ADMIN_TOKEN", TOKEN)]).await;
    let link = app.link("jane@example.org", "resume").await;
    let jti = app.request_log()[0].jti.clone().unwrap();
    let fetched = now();
    let claims = Claims {
        jti: jti.into(),
        doc: "resume".to_owned(),
        iat: fetched - 3,
        exp: fetched + 900,
        iss: "docgate".to_owned(),
    };
    let scanner = Entry::link_opened(
        "203.0.113.9".parse().unwrap(),
        &claims,
        fetched,
        Some("Mozilla/5.0 (compatible; LinkScanner)\n"),
    );
    app.app.backends.requests.record(&scanner).await.unwrap();
    assert_eq!(app.download(&link).await.len(), RESUME_LEN);
    app.wait_for_log(3).await;

    let rows = request_rows(&app).await;
    assert_eq!(
        rows.len(),
        1,
        "opens and downloads join their request: {rows:?}"
    );
    assert_eq!(rows[0]["download"], "completed");
    let opened = rows[0]["opened"].as_array().unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0]["user_agent"],
        "Mozilla/5.0 (compatible; LinkScanner)"
    );
    assert_eq!(opened[0]["after_send_secs"], 3);
    assert_eq!(opened[0]["client_ip"], "203.0.113.9");
    assert_eq!(opened[0]["at"], scanner.at);

    let json: Value = serde_json::from_str(
        std::fs::read_to_string(app.path("requests.jsonl"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["event"], "link_opened");
}

#[tokio::test]
async fn the_admin_api_exports_and_erases_one_person() {
    let app = TestApp::with(&[("DOCGATE_ADMIN_TOKEN", TOKEN)]).await;
    let first = app.link("jane@example.org", "resume").await;
    let second = app.link("Jane@Example.org", "lebenslauf").await;
    let joe = app.link("joe@example.org", "resume").await;
    assert_eq!(app.download(&first).await.len(), RESUME_LEN);
    assert_eq!(app.download(&joe).await.len(), RESUME_LEN);
    app.wait_for_log(5).await;

    // The bearer token, as on every admin route.
    let off = TestApp::start().await;
    for (method, path) in [
        (Method::GET, "/admin/people?email=jane%40example.org"),
        (Method::POST, "/admin/erasures"),
    ] {
        let url = format!("{}{path}", app.admin_base);
        let no_token = app.client.request(method.clone(), &url);
        let wrong = app
            .client
            .request(method.clone(), &url)
            .bearer_auth("y".repeat(28));
        let api_off = off
            .client
            .request(method.clone(), format!("{}{path}", off.admin_base))
            .bearer_auth(TOKEN);
        for request in [no_token, wrong, api_off] {
            let request = request.json(&json!({"email": "jane@example.org"}));
            let (status, body) = json_of(request).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("unauthorized"))
            );
        }
    }

    // Bad input.
    let bad = [
        (call(&app, Method::GET, "/admin/people?email=nope"), "email"),
        (call(&app, Method::GET, "/admin/people"), "email"),
        (
            call(
                &app,
                Method::GET,
                "/admin/people?email=a%40example.org&email=b%40example.org",
            ),
            "query",
        ),
        (
            call(&app, Method::GET, "/admin/people?address=a%40example.org"),
            "query",
        ),
        (
            call(&app, Method::POST, "/admin/erasures").json(&json!({"email": "nope"})),
            "email",
        ),
        (
            call(&app, Method::POST, "/admin/erasures").json(&json!({"address": "a@b.org"})),
            "body",
        ),
    ];
    for (request, field) in bad {
        let (status, body) = json_of(request).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["errors"][field].is_array(), "{field}: {body}");
    }
    for (method, path) in [
        (Method::POST, "/admin/people"),
        (Method::GET, "/admin/erasures"),
    ] {
        let (status, _) = json_of(call(&app, method, path)).await;
        assert_eq!(status, 405, "{path}");
    }

    // Export: her two requests and her download, newest first; nobody else's.
    let (status, body) = json_of(call(
        &app,
        Method::GET,
        "/admin/people?email=JANE%40example.org",
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let events: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("download", "completed"),
            ("link_requested", "sent"),
            ("link_requested", "sent")
        ]
    );
    assert!(
        entries.iter().all(|e| e["email"] != "joe@example.org"),
        "{body}"
    );

    // Erase: those three, and nothing else.
    let (status, body) = json_of(
        call(&app, Method::POST, "/admin/erasures").json(&json!({"email": "jane@EXAMPLE.org"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"erased": 3})));
    let (_, body) = json_of(call(
        &app,
        Method::GET,
        "/admin/people?email=jane%40example.org",
    ))
    .await;
    assert_eq!(body, json!({"entries": []}));
    let rows = request_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["email"], "joe@example.org");
    assert_eq!(rows[0]["download"], "completed");
    let text = std::fs::read_to_string(app.path("requests.jsonl")).unwrap();
    assert!(!text.to_lowercase().contains("jane"), "{text}");

    // Her other link still works (erasure is of the log, not a revocation); its download is
    // recorded without joining her.
    assert_eq!(app.download(&second).await.len(), 4096);
    app.wait_for_log(3).await;
    assert!(
        wait_for_person(&app, "jane@example.org", 0)
            .await
            .is_empty()
    );
    let (_, body) = json_of(
        call(&app, Method::POST, "/admin/erasures").json(&json!({"email": "jane@example.org"})),
    )
    .await;
    assert_eq!(body, json!({"erased": 0}));
}

#[tokio::test]
async fn the_command_line_exports_and_erases_against_the_running_service() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_ADMIN_TOKEN", TOKEN),
    ])
    .await;
    let dir = app.dir.path();
    let env = [("DOCGATE_REDIS_URL", url.as_str()), ("DOCGATE_LOG", "warn")];

    let link = app.link("jane@example.org", "resume").await;
    app.link("joe@example.org", "resume").await;
    assert_eq!(app.download(&link).await.len(), RESUME_LEN);
    wait_for_person(&app, "jane@example.org", 2).await;
    assert!(
        !app.path("requests.jsonl").exists(),
        "with Redis the file is not written"
    );

    // Export: one JSON object per line, newest first.
    let (code, out, err) = cli(
        dir,
        &env,
        &["requests", "export", "--email", "Jane@Example.org"],
    );
    assert_eq!(code, 0, "{err}");
    let entries: Vec<Entry> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<Event> = entries.iter().map(|e| e.event).collect();
    assert_eq!(events, [Event::Download, Event::LinkRequested]);
    assert_eq!(entries[1].email.as_deref(), Some("jane@example.org"));
    assert_eq!(entries[0].jti, entries[1].jti);

    // Erase, with an audit line that names nobody.
    let audited = [
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_LOG", "info"),
        ("DOCGATE_LOG_FORMAT", "json"),
    ];
    let (code, out, log) = cli(
        dir,
        &audited,
        &["requests", "erase", "--email", "jane@example.org"],
    );
    assert_eq!((code, out.trim()), (0, "erased 2 entries"), "{log}");
    let audit: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["action"].is_string())
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert_eq!(audit[0]["action"], "erase_person");
    assert_eq!(audit[0]["erased"], 2);
    assert!(
        audit[0]["email"].as_str().unwrap().starts_with("e:"),
        "{log}"
    );
    assert!(!log.to_lowercase().contains("jane@"), "{log}");

    // The running service sees the erasure at once: the log is shared.
    let (code, out, err) = cli(
        dir,
        &env,
        &["requests", "export", "--email", "jane@example.org"],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let rows = request_rows(&app).await;
    let emails: Vec<&Value> = rows.iter().map(|r| &r["email"]).collect();
    assert_eq!(emails, [&json!("joe@example.org")]);
    let (code, out, _) = cli(
        dir,
        &env,
        &["requests", "erase", "--email", "jane@example.org"],
    );
    assert_eq!((code, out.trim()), (0, "erased 0 entries"));

    // Errors: a bad address, no Redis, no address.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);
    let cases: [Case; 4] = [
        (&["requests", "export", "--email", "nope"], &env, 65),
        (
            &["requests", "erase", "--email", "x@mailinator.com"],
            &env,
            65,
        ),
        (
            &["requests", "erase", "--email", "jane@example.org"],
            &[],
            64,
        ),
        (&["requests", "export"], &env, 2),
    ];
    for (args, env, want) in cases {
        let (code, out, err) = cli(dir, env, args);
        assert_eq!(code, want, "{args:?}: {out} {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.is_empty(), "{args:?}: a message on stderr");
    }
}

#[tokio::test]
async fn entries_past_retention_are_deleted_at_startup() {
    let seeded = tempfile::tempdir().unwrap();
    let path = seeded.path().join("requests.jsonl");
    let mut old = Entry::now(Event::LinkRequested, "192.0.2.1".parse().unwrap(), "sent");
    old.at = "2020-01-01T00:00:00Z".to_owned();
    old.email = Some("old@example.org".to_owned());
    let mut recent = old.clone();
    recent.at = Entry::now(Event::Download, "192.0.2.1".parse().unwrap(), "").at;
    recent.email = Some("recent@example.org".to_owned());
    let lines = [&old, &recent]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect::<String>();
    std::fs::write(&path, lines).unwrap();

    let app = TestApp::with(&[
        ("DOCGATE_REQUEST_LOG", path.to_str().unwrap()),
        ("DOCGATE_REQUEST_LOG_RETENTION", "365d"),
    ])
    .await;
    let left = eventually("the sweep at startup", Duration::from_secs(5), || async {
        let left = app.app.backends.requests.recent(10, 0).await.unwrap();
        (left.len() == 1).then_some(left)
    })
    .await;
    assert_eq!(left, [recent]);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("old@"));
}
