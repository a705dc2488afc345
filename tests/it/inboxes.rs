//! docgate cannot be turned against an inbox, over real HTTP: every spelling of one mailbox shares
//! its budget, one domain's inboxes share a budget of their own, other sites' pages cannot make
//! their visitors' browsers ask for links, and an unmailed request answers exactly like a mailed
//! one.

use crate::support::redis::{RedisServer, commandstats};
use crate::support::scrape;
use crate::support::{Mail, TestApp};

const REQUESTS: &str = "/api/download-requests";
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// The recipients of the outbox's mails, sorted.
fn mailed_to(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = app.outbox().iter().map(|p| Mail::read(p).to).collect();
    to.sort();
    to
}

/// The request log's outcomes, in order.
fn outcomes(app: &TestApp) -> Vec<String> {
    app.request_log().into_iter().map(|e| e.outcome).collect()
}

/// Asks for one address in each spelling, each from another client, on a server with these
/// settings: one mail per mailbox, to the address as typed, and one answer for all.
async fn spellings_share_a_budget(app: &TestApp) {
    let spellings = [
        // One mailbox at any domain: case and `+tag` fold.
        "a+1@example.org",
        "A@example.org",
        "a@example.org",
        // One Gmail mailbox: dots and googlemail.com fold too.
        "a.b@gmail.com",
        "ab@gmail.com",
        "A.B+x@googlemail.com",
        // Elsewhere a dot makes another mailbox.
        "c.d@example.org",
        "cd@example.org",
    ];
    app.requests_answered_alike(
        spellings
            .into_iter()
            .enumerate()
            .map(|(i, email)| (format!("198.51.100.{i}"), email.to_owned())),
    )
    .await;
    assert_eq!(
        mailed_to(app),
        [
            "a+1@example.org",
            "a.b@gmail.com",
            "c.d@example.org",
            "cd@example.org"
        ],
        "one mail per mailbox, to the address as typed"
    );
}

const SPELLING_LIMITS: [(&str, &str); 2] = [
    ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
];

#[tokio::test]
async fn every_spelling_of_one_mailbox_shares_its_budget() {
    let app = TestApp::with(&SPELLING_LIMITS).await;
    spellings_share_a_budget(&app).await;
    assert_eq!(
        outcomes(&app),
        [
            "sent",
            "not_sent_address_limit",
            "not_sent_address_limit",
            "sent",
            "not_sent_address_limit",
            "not_sent_address_limit",
            "sent",
            "sent"
        ]
    );
    assert_eq!(app.store().live_links(), 4, "no link minted for the others");
}

#[tokio::test]
async fn every_spelling_of_one_mailbox_shares_its_budget_in_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut settings = SPELLING_LIMITS.to_vec();
    settings.push(("DOCGATE_REDIS_URL", &url));
    let app = TestApp::with(&settings).await;
    spellings_share_a_budget(&app).await;
}

#[tokio::test]
async fn spraying_one_domain_mails_only_its_budget() {
    let app = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_LIMIT_REQUEST_PER_DOMAIN", "3/h"),
    ])
    .await;
    // Another client and another person every time, all at one company; the domain's case
    // changes nothing.
    app.requests_answered_alike((0..10).map(|i| {
        let domain = if i % 2 == 0 {
            "corp.example"
        } else {
            "Corp.Example"
        };
        (format!("203.0.113.{i}"), format!("p{i}@{domain}"))
    }))
    .await;
    assert_eq!(
        mailed_to(&app),
        ["p0@corp.example", "p1@Corp.Example", "p2@corp.example"]
    );
    let log = outcomes(&app);
    assert_eq!(log.iter().filter(|o| *o == "sent").count(), 3);
    assert_eq!(
        log.iter().filter(|o| *o == "not_sent_domain_limit").count(),
        7
    );
    assert_eq!(app.store().live_links(), 3);

    // Other domains have budgets of their own; shared providers have none (each of their
    // mailboxes still has its own).
    for (i, email) in [
        "q@other.example",
        "g1@gmail.com",
        "g2@gmail.com",
        "g3@gmail.com",
        "g4@gmail.com",
    ]
    .into_iter()
    .enumerate()
    {
        let response = app
            .request_link_via(&format!("192.0.2.{i}"), email, "resume")
            .await;
        assert_eq!(response.status(), 202);
    }
    assert_eq!(app.outbox().len(), 8, "{:?}", mailed_to(&app));

    let (_, series) = scrape(&app).await;
    assert_eq!(
        series["docgate_link_requests_total{outcome=\"not_sent_domain_limit\"}"],
        7.0
    );
    assert_eq!(
        series["docgate_rate_limited_total{limit=\"req-domain\"}"],
        7.0
    );
    assert_eq!(series["docgate_link_requests_total{outcome=\"sent\"}"], 8.0);
}

/// A link request as a browser sends it from a page at `origin`, which the browser judges to be
/// `site` (`Sec-Fetch-Site`) to docgate: a plain form post when `form`, else a script's `fetch`.
fn from_page(app: &TestApp, origin: &str, site: &str, form: bool) -> reqwest::RequestBuilder {
    let request = app
        .client
        .post(format!("{}{REQUESTS}", app.base))
        .header("origin", origin)
        .header("sec-fetch-site", site);
    if form {
        request
            .header("accept", BROWSER_ACCEPT)
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .form(&[("email", "jane@example.org"), ("document", "resume")])
    } else {
        request
            .header("accept", "*/*")
            .header("sec-fetch-mode", "cors")
            .header("sec-fetch-dest", "empty")
            .json(&serde_json::json!({"email": "jane@example.org", "document": "resume"}))
    }
}

#[tokio::test]
async fn another_sites_page_cannot_ask_for_links() {
    let listed = "https://jane.example";
    let app = TestApp::with(&[
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "2/h"),
        ("DOCGATE_CORS_ORIGINS", listed),
    ])
    .await;
    let evil = "https://evil.example";

    // A hidden form on another site, submitted as Chrome sends it: a 403 page.
    let refused = from_page(&app, evil, "cross-site", true)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Request not accepted"), "{page}");
    // The same from its script: a 403 its script cannot read.
    let refused = from_page(&app, evil, "cross-site", false)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "cross_site_request");
    // Without `Origin`, `Sec-Fetch-Site` decides; `Origin: null` needs it to vouch.
    for (origin, site) in [
        (None, "cross-site"),
        (None, "same-site"),
        (Some("null"), "cross-site"),
    ] {
        let mut request = app
            .client
            .post(format!("{}{REQUESTS}", app.base))
            .header("sec-fetch-site", site)
            .json(&serde_json::json!({"email": "jane@example.org", "document": "resume"}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 403, "{origin:?} {site}");
    }
    assert!(app.outbox().is_empty(), "nothing mailed");
    assert_eq!(app.store().live_links(), 0, "nothing minted");
    assert!(app.request_log().is_empty(), "nothing recorded");

    // docgate's own form, and a listed site's script: accepted, within the client's budget that
    // the refusals did not spend.
    let own = from_page(&app, &app.base, "same-origin", true)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202);
    let embedded = from_page(&app, listed, "cross-site", false)
        .send()
        .await
        .unwrap();
    assert_eq!(embedded.status(), 202);
    assert_eq!(embedded.headers()["access-control-allow-origin"], listed);
    assert_eq!(app.outbox().len(), 2);
    assert_eq!(outcomes(&app), ["sent", "sent"]);

    let (_, series) = scrape(&app).await;
    assert_eq!(
        series["docgate_link_requests_total{outcome=\"cross_site_request\"}"],
        5.0
    );
}

#[tokio::test]
async fn scripts_and_typed_requests_are_accepted_as_before() {
    let app = TestApp::start().await;
    for site in [None, Some("none"), Some("same-origin")] {
        let mut request = app
            .client
            .post(format!("{}{REQUESTS}", app.base))
            .json(&serde_json::json!({"email": "jane@example.org", "document": "resume"}));
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        assert_eq!(request.send().await.unwrap().status(), 202, "{site:?}");
    }
    let vouched_null = from_page(&app, "null", "same-origin", true)
        .send()
        .await
        .unwrap();
    assert_eq!(vouched_null.status(), 202);
    assert_eq!(app.outbox().len(), 4);
}

/// Status, headers but `Date`, and body of a response.
async fn answer(response: reqwest::Response) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn mailed_and_unmailed_answers_are_identical_byte_for_byte() {
    let app = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
        ("DOCGATE_LIMIT_REQUEST_PER_DOMAIN", "2/h"),
    ])
    .await;
    for form in [false, true] {
        let post = |n: u8, email: &str| {
            let request = app
                .client
                .post(format!("{}{REQUESTS}", app.base))
                .header("x-forwarded-for", format!("198.51.100.{n}"));
            if form {
                request
                    .header("accept", BROWSER_ACCEPT)
                    .form(&[("email", email), ("document", "resume")])
            } else {
                request.json(&serde_json::json!({"email": email, "document": "resume"}))
            }
        };
        let (first, domain) = if form {
            ("x@one.example", "two.example")
        } else {
            ("y@three.example", "four.example")
        };
        let mailed = answer(post(1, first).send().await.unwrap()).await;
        let over_mailbox = answer(post(2, first).send().await.unwrap()).await;
        let mut domain_answers = Vec::new();
        for i in 0..3 {
            let email = format!("p{i}@{domain}");
            domain_answers.push(answer(post(3 + i, &email).send().await.unwrap()).await);
        }
        assert_eq!(mailed.0, 202);
        assert_eq!(mailed, over_mailbox, "form: {form}");
        for other in &domain_answers {
            assert_eq!(&mailed, other, "form: {form}");
        }
    }
    assert_eq!(app.outbox().len(), 6, "{:?}", mailed_to(&app));
    assert_eq!(
        outcomes(&app),
        [
            "sent",
            "not_sent_address_limit",
            "sent",
            "sent",
            "not_sent_domain_limit",
            "sent",
            "not_sent_address_limit",
            "sent",
            "sent",
            "not_sent_domain_limit"
        ]
    );
}

/// Calls of one Redis command so far (`INFO commandstats`).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    commandstats(&mut redis.client())
        .get(command)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_fresh_replica_makes_a_mails_round_trips_for_an_address_spent_elsewhere() {
    // Two replicas sharing budgets: the first spends the address's; the second has mailed
    // nothing, so it has no mailed duration to copy and makes the mail's round trips instead
    // (the token store's among them: a `PING` stands in for handing the mail over).
    let redis = RedisServer::start();
    let url = redis.url();
    let settings = [
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
    ];
    let warm = TestApp::with(&settings).await;
    let fresh = TestApp::with(&settings).await;
    assert_eq!(
        warm.request_link_via("198.51.100.1", "jane@example.org", "resume")
            .await
            .status(),
        202
    );
    assert_eq!(mailed_to(&warm), ["jane@example.org"]);

    // On the replica that mailed, an unmailed request copies a mailed duration: no round trip.
    let before = calls(&redis, "ping");
    assert_eq!(
        warm.request_link_via("198.51.100.2", "jane@example.org", "resume")
            .await
            .status(),
        202
    );
    assert_eq!(calls(&redis, "ping"), before);
    // On the fresh one, the round trips of a mail, and still no mail.
    assert_eq!(
        fresh
            .request_link_via("198.51.100.3", "jane@example.org", "resume")
            .await
            .status(),
        202
    );
    assert_eq!(calls(&redis, "ping"), before + 1);
    assert!(fresh.outbox().is_empty());
    assert_eq!(mailed_to(&warm), ["jane@example.org"]);
}
