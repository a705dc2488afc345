//! Mail scanners open every link in a mail before the recipient does (Microsoft Safe Links,
//! Proofpoint URL Defense, Mimecast URL Protect and the like): they GET the page as a browser
//! would, fetch what it references, come back a few times, and never submit a form. None of
//! that may spend the link. Plain HTTP: a scanner is not a browser that clicks.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::support::*;

/// What a browser (and a scanner passing for one) sends as `Accept` for a page.
const HTML_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// User agents in the style of the scanners that open mailed links.
const SCANNERS: &[(&str, &str)] = &[
    (
        "Safe Links style: a current desktop Chrome",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/120.0.0.0 Safari/537.36",
    ),
    (
        "Microsoft style: Outlook fetching a link preview",
        "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
    ),
    (
        "Proofpoint style: an old desktop Firefox",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    ),
    (
        "Mimecast style: an old Internet Explorer",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    ),
];

/// A scanner's HTTP client: its user agent, redirects followed but only on loopback (the tests
/// never reach further).
fn scanner(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() < 5 && is_loopback(attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn is_loopback(url: &reqwest::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// The values of every `href` and `src` attribute in `html`, entities for `&` decoded.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = html.to_ascii_lowercase();
    for attribute in ["href", "src"] {
        let mut at = 0;
        while let Some(i) = lower[at..].find(attribute) {
            let start = at + i;
            at = start + attribute.len();
            // A whole attribute name: preceded by whitespace, followed by `=`.
            let before = html[..start].chars().next_back();
            if !before.is_some_and(char::is_whitespace) {
                continue;
            }
            let rest = html[at..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let rest = rest.trim_start();
            let value = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or_default(),
                _ => rest
                    .split(|c: char| c.is_whitespace() || c == '>')
                    .next()
                    .unwrap_or_default(),
            };
            found.push(value.replace("&amp;", "&"));
        }
    }
    found
}

#[test]
fn references_finds_hrefs_and_srcs_however_quoted() {
    let html = r#"<link rel="stylesheet" href="/static/a.css"><img src='/i.png' alt=x>
        <a href=/b?x=1&amp;y=2>b</a><a data-href="/no">no</a><p>href is a word</p>"#;
    assert_eq!(references(html), ["/static/a.css", "/b?x=1&y=2", "/i.png"]);
}

#[tokio::test]
async fn scanners_opening_the_link_leave_it_usable_and_are_logged() {
    let app = TestApp::start().await;
    for (i, (who, user_agent)) in SCANNERS.iter().enumerate() {
        let link = app.link(&format!("reader{i}@example.org"), "resume").await;
        let jti: String = app
            .app
            .codec
            .verify(token_of(&link), now())
            .unwrap()
            .jti
            .into();
        let client = scanner(user_agent);

        // The scanner opens the link as a page...
        let response = client
            .get(&link)
            .header(ACCEPT, HTML_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{who}");
        assert!(
            response.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{who}: a page, not the document"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("download-form"), "{who}: the confirm page");

        // ...finds nothing else to fetch (no stylesheet, image, script or link: a scanner that
        // follows every reference has nowhere to go but the page itself)...
        assert_eq!(references(&page), Vec::<String>::new(), "{who}");

        // ...and comes back a few more times, GET and HEAD, without submitting the form.
        for _ in 0..3 {
            let again = client
                .get(&link)
                .header(ACCEPT, HTML_ACCEPT)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 200, "{who}: a later look");
            again.bytes().await.unwrap();
            let head = client
                .head(&link)
                .header(ACCEPT, HTML_ACCEPT)
                .send()
                .await
                .unwrap();
            assert_eq!(head.status(), 200, "{who}: HEAD");
        }

        // Then the person clicks Download (the form's POST): the whole document.
        let download = app
            .client
            .post(&link)
            .header(ACCEPT, HTML_ACCEPT)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200, "{who}: the click downloads");
        let bytes = download.bytes().await.unwrap();
        assert_eq!(sha256(&bytes), sha256(&content(1, RESUME_LEN)), "{who}");

        // The owner's log shows the scanner's looks before the click, with its user agent (only
        // the scanner has opened this link).
        let opened = wait_for_opened(&app, &jti, 4).await;
        assert_eq!(opened.len(), 4, "{who}: the first look and three more");
        for entry in &opened {
            assert_eq!(entry["user_agent"], *user_agent, "{who}: {entry}");
            assert!(
                entry["after_send_secs"].as_f64().is_some_and(|s| s >= 0.0),
                "{who}: seconds since the mail was sent: {entry}"
            );
        }
    }
}

/// The owner's `link_opened` entries of one link, raw; waited for (bounded), at least `n`.
async fn wait_for_opened(app: &TestApp, jti: &str, n: usize) -> Vec<serde_json::Value> {
    eventually(
        &format!("{n} link_opened entries for {jti} in the owner's log"),
        Duration::from_secs(5),
        || async {
            let opened: Vec<serde_json::Value> =
                std::fs::read_to_string(app.path("requests.jsonl"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter(|e| e["event"] == "link_opened" && e["jti"] == jti)
                    .collect();
            (opened.len() >= n).then_some(opened)
        },
    )
    .await
}
