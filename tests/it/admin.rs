//! The admin API on the admin listener, over real HTTP: the bearer token, minting, revoking one
//! link or all of one person's, and reading the request log, each with its error cases.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::support::redis::RedisServer;
use crate::support::{Mail, RESUME_LEN, TestApp, cli, now};

pub const TOKEN: &str = "admin-token-0123456789abcdef";

async fn admin_app() -> TestApp {
    TestApp::with(&[("DOCGATE_ADMIN_TOKEN", TOKEN)]).await
}

/// An admin API request with the right bearer token.
pub fn call(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.client
        .request(method, format!("{}{path}", app.admin_base))
        .bearer_auth(TOKEN)
}

/// Sends and returns the status and the JSON body (`Null` when empty).
pub async fn json_of(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, body)
}

#[tokio::test]
async fn every_admin_route_wants_the_bearer_token() {
    let app = admin_app().await;
    let off = TestApp::start().await;
    let routes = [
        (Method::POST, "/admin/links"),
        (Method::DELETE, "/admin/tokens/abcdefghijklmnopqrstuvwx"),
        (Method::POST, "/admin/revocations"),
        (Method::GET, "/admin/requests"),
    ];
    for (method, path) in routes {
        let url = format!("{}{path}", app.admin_base);
        let attempts = [
            ("no token", app.client.request(method.clone(), &url)),
            (
                "wrong token",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("x".repeat(28)),
            ),
            (
                "a prefix of the token",
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth(&TOKEN[..20]),
            ),
            (
                "basic auth",
                app.client
                    .request(method.clone(), &url)
                    .basic_auth("admin", Some(TOKEN)),
            ),
            (
                "the admin API off",
                off.client
                    .request(method.clone(), format!("{}{path}", off.admin_base))
                    .bearer_auth(TOKEN),
            ),
        ];
        for (name, request) in attempts {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path}: {name}");
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"docgate admin\""
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized");
        }
    }
    assert_eq!(app.store().live_links(), 0, "nothing was minted");
}

#[tokio::test]
async fn an_operator_mints_a_link_that_downloads_and_can_mail_it() {
    let app = admin_app().await;
    let (status, minted) = json_of(
        call(&app, Method::POST, "/admin/links")
            .json(&json!({"email": "jane@example.org", "document": "resume", "ttl": "2h"})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/d/", app.base)), "{url}");
    let jti = minted["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 24);
    let expires = time::OffsetDateTime::parse(
        minted["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp() as u64;
    assert!((now() + 7190..=now() + 7200).contains(&expires), "{minted}");
    assert!(app.outbox().is_empty(), "not sent unless asked");

    let body = app.download(url).await;
    assert_eq!(body.len(), RESUME_LEN);

    let (status, sent) = json_of(
        call(&app, Method::POST, "/admin/links")
            .json(&json!({"email": "joe@example.org", "document": "resume", "send": true})),
    )
    .await;
    assert_eq!(status, 201);
    let mails = app.outbox();
    assert_eq!(mails.len(), 1);
    let mail = Mail::read(&mails[0]);
    assert_eq!(mail.to, "joe@example.org");
    assert_eq!(mail.link, sent["url"], "the mail carries the same link");

    let log = app.wait_for_log(2).await;
    let outcomes: Vec<&str> = log
        .iter()
        .filter(|e| e.email.is_some())
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["admin_minted", "admin_sent"]);
}

#[tokio::test]
async fn minting_refuses_bad_input_and_mints_nothing() {
    let app = admin_app().await;
    let cases = [
        (json!({"email": "nope", "document": "resume"}), 400, "email"),
        (
            json!({"email": "x@mailinator.com", "document": "resume"}),
            400,
            "email",
        ),
        (
            json!({"email": "jane@example.org", "document": "resume", "ttl": "5"}),
            400,
            "ttl",
        ),
        (
            json!({"email": "jane@example.org", "document": "resume", "ttl": "90d"}),
            400,
            "ttl",
        ),
        (
            json!({"email": "jane@example.org", "document": "resume", "extra": 1}),
            400,
            "body",
        ),
        (json!({"email": "jane@example.org"}), 400, "body"),
        (json!(["jane@example.org", "resume"]), 400, "body"),
        (
            json!({"email": "jane@example.org", "document": "nothing"}),
            404,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let (got, answer) = json_of(call(&app, Method::POST, "/admin/links").json(&body)).await;
        assert_eq!(got, status, "{body}: {answer}");
        if field.is_empty() {
            assert_eq!(answer["error"], "unknown_document");
        } else {
            assert!(answer["errors"][field].is_array(), "{body}: {answer}");
        }
    }
    let big = json!({"email": "jane@example.org", "document": "x".repeat(5000)});
    let (got, answer) = json_of(call(&app, Method::POST, "/admin/links").json(&big)).await;
    assert_eq!(
        (got, answer["error"].as_str()),
        (413, Some("body_too_large"))
    );
    let (got, _) = json_of(call(&app, Method::GET, "/admin/links")).await;
    assert_eq!(got, 405);
    assert_eq!(app.store().live_links(), 0);
    assert!(app.outbox().is_empty());
}

#[tokio::test]
async fn an_operator_revokes_one_link_then_every_link_of_one_person() {
    let app = admin_app().await;
    let jane_1 = app.link("jane@example.org", "resume").await;
    let jane_2 = app.link("Jane@Example.org", "lebenslauf").await;
    let joe = app.link("joe@example.org", "resume").await;
    let (_, minted) = json_of(
        call(&app, Method::POST, "/admin/links")
            .json(&json!({"email": "jane@example.org", "document": "resume"})),
    )
    .await;
    let jane_3 = minted["url"].as_str().unwrap().to_owned();

    // One link by its id.
    let jti = minted["jti"].as_str().unwrap();
    let (status, body) = json_of(call(&app, Method::DELETE, &format!("/admin/tokens/{jti}"))).await;
    assert_eq!((status, body), (204, Value::Null));
    let gone = app.client.get(&jane_3).header("Accept", "application/json");
    let (status, body) = json_of(gone).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("link_revoked"))
    );
    let (status, body) = json_of(call(&app, Method::DELETE, &format!("/admin/tokens/{jti}"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_link"))
    );
    let (status, body) = json_of(call(&app, Method::DELETE, "/admin/tokens/..%2Fx")).await;
    assert_eq!(status, 400, "{body}");

    // Every link of one person, whatever the case of the address.
    let (status, body) = json_of(
        call(&app, Method::POST, "/admin/revocations").json(&json!({"email": "JANE@example.org"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"revoked": 2})));
    for link in [&jane_1, &jane_2] {
        assert_eq!(app.get(link).await.status(), 410);
    }
    assert_eq!(
        app.get(&joe).await.status(),
        200,
        "another person's link still works"
    );
    let (status, body) = json_of(
        call(&app, Method::POST, "/admin/revocations").json(&json!({"email": "not an address"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_request_log_reads_newest_first_in_pages() {
    let app = admin_app().await;
    let mut links = Vec::new();
    for n in 0..5 {
        links.push(app.link(&format!("person{n}@example.org"), "resume").await);
    }
    // A refused request is counted, not stored: it is no row of the log.
    let refused = app.request_link("nobody@mailinator.com", "resume").await;
    assert_eq!(refused.status(), 400);
    // person4 downloads; person3's first try is cut off by an unsatisfiable range, then used.
    let body = app.get(&links[4]).await;
    assert_eq!(body.bytes().await.unwrap().len(), RESUME_LEN);
    let range = app
        .client
        .get(&links[3])
        .header("Range", "bytes=999999999-");
    assert_eq!(range.send().await.unwrap().status(), 416);
    app.wait_for_log(7).await;

    let (status, page) = json_of(call(&app, Method::GET, "/admin/requests?limit=3")).await;
    assert_eq!(status, 200);
    let emails = |page: &Value| -> Vec<String> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["email"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        emails(&page),
        [
            "person4@example.org",
            "person3@example.org",
            "person2@example.org"
        ]
    );
    assert_eq!(page["next_offset"], 3);
    let rows = page["entries"].as_array().unwrap();
    assert_eq!(rows[0]["outcome"], "sent");
    assert_eq!(rows[0]["document"], "resume");
    assert_eq!(rows[0]["download"], "completed");
    assert_eq!(rows[0]["download_attempts"], 1);
    let asked = rows[0]["asked_at"].as_str().unwrap();
    let downloaded = rows[0]["downloaded_at"].as_str().unwrap();
    assert!(downloaded >= asked, "{asked} {downloaded}");
    assert_eq!(rows[1]["download"], "range_not_satisfiable");
    assert_eq!(rows[1]["downloaded_at"], Value::Null);
    assert!(
        app.request_log()
            .iter()
            .all(|e| e.email.as_deref() != Some("nobody@mailinator.com")),
        "the refusal is not stored"
    );

    let (_, page) = json_of(call(&app, Method::GET, "/admin/requests?limit=2&offset=4")).await;
    assert_eq!(emails(&page), ["person0@example.org"]);
    assert_eq!(page["next_offset"], Value::Null);

    let (status, body) = json_of(call(&app, Method::GET, "/admin/requests?limit=lots")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = json_of(call(&app, Method::POST, "/admin/requests")).await;
    assert_eq!(status, 405);

    // The scheme is case-insensitive.
    let lower = app
        .client
        .get(format!("{}/admin/requests", app.admin_base))
        .header("Authorization", format!("bearer {TOKEN}"));
    assert_eq!(lower.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_command_line_mints_and_revokes_against_the_running_service() {
    let redis = RedisServer::start();
    let url = redis.url();
    let app = TestApp::with(&[("DOCGATE_REDIS_URL", url.as_str())]).await;
    let dir = app.dir.path();
    let env = [
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_PUBLIC_URL", app.base.as_str()),
        ("DOCGATE_LOG", "warn"),
    ];

    // A link minted by the CLI downloads from the server.
    let (code, out, err) = cli(
        dir,
        &env,
        &[
            "link",
            "--email",
            "jane@example.org",
            "--document",
            "resume",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let link = out.trim();
    assert!(link.starts_with(&format!("{}/d/", app.base)), "{out}");
    let body = app.download(link).await;
    assert_eq!(body.len(), RESUME_LEN);

    // `--json` prints the link's id as well.
    let mint_json = |extra: &[&str]| -> Value {
        let mut args = vec![
            "link",
            "--email",
            "jane@example.org",
            "--document",
            "resume",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(dir, &env, &args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let minted = mint_json(&["--ttl", "1h"]);
    let jti = minted["jti"].as_str().unwrap();

    // Each action leaves an audit line: the link by its jti prefix, never the token or address.
    let audited = [
        ("DOCGATE_LOG", "info"),
        ("DOCGATE_LOG_FORMAT", "json"),
        ("DOCGATE_REDIS_URL", url.as_str()),
    ];
    let (code, out, log) = cli(dir, &audited, &["revoke", jti]);
    assert_eq!(code, 0, "{log}");
    let audit: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit" || l["action"].is_string())
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert_eq!(audit[0]["action"], "revoke");
    assert_eq!(audit[0]["link"], &jti[..6]);
    assert!(!log.contains(jti) && !log.contains("jane@"), "{log}");
    assert_eq!(out.trim(), format!("revoked {jti}"));

    // Revoked by id: the server refuses it; revoking again finds nothing.
    let minted = mint_json(&[]);
    let jti = minted["jti"].as_str().unwrap();
    let (code, out, _) = cli(dir, &env, &["revoke", jti]);
    assert_eq!((code, out.trim()), (0, format!("revoked {jti}").as_str()));
    let url = minted["url"].as_str().unwrap();
    assert_eq!(app.get(url).await.status(), 410);
    let (code, _, err) = cli(dir, &env, &["revoke", jti]);
    assert_eq!(code, 65, "{err}");

    // Every link of one address, two of them requested over HTTP and mailed.
    let first = app.link("joe@example.org", "resume").await;
    let second = app.link("joe@example.org", "lebenslauf").await;
    let (code, out, err) = cli(dir, &env, &["revoke", "--email", "Joe@Example.org"]);
    assert_eq!((code, out.trim()), (0, "revoked 2 links"), "{err}");
    for link in [first, second] {
        assert_eq!(app.get(&link).await.status(), 410);
    }

    // Errors: bad input, unknown document, no Redis, no arguments.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32);
    let cases: [Case; 5] = [
        (
            &["link", "--email", "nope", "--document", "resume"],
            &env,
            65,
        ),
        (
            &["link", "--email", "a@example.org", "--document", "nothing"],
            &env,
            65,
        ),
        (
            &["link", "--email", "a@example.org", "--document", "resume"],
            &[],
            64,
        ),
        (&["revoke", "not/a/jti"], &env, 65),
        (&["revoke"], &env, 2),
    ];
    for (args, env, want) in cases {
        let (code, out, err) = cli(dir, env, args);
        assert_eq!(code, want, "{args:?}: {out} {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.is_empty(), "{args:?}: a message on stderr");
    }
}
