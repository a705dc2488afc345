//! Probes shared by the error-path suites: sending a request and reading the whole answer, the
//! checks every answer gets (no storage layout leaked, the JSON error shape), and the checks that
//! nothing else happened (no mail, no link minted, the sentinel link untouched).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::store::{LinkState, TokenStore};
use docgate::token::Claims;
use reqwest::header::HeaderMap;

use crate::support::*;

pub const REQUESTS: &str = "/api/download-requests";
/// The object key of `resume`: never to be seen by a client.
pub const RESUME_KEY: &str = "resume/Jane_Doe_Resume.pdf";
/// What a browser sends when a person clicks a link.
pub const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
/// Planted just outside the documents directory, where `../etc/passwd` would lead.
pub const PASSWD_SENTINEL: &str = "root:SENTINEL-must-never-be-served";

/// One response, read whole, already checked for leaks.
#[derive(Debug)]
pub struct Sent {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Sent {
    pub fn json(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// An HTML page for a person: `status`, `text/html`, with a CSP; returns the CSP.
pub fn assert_page(name: &str, sent: &Sent, status: u16) -> String {
    assert_eq!(sent.status, status, "{name}");
    assert!(
        sent.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{name}: {:?}",
        sent.headers
    );
    sent.header("content-security-policy")
        .unwrap_or_else(|| panic!("{name}: no CSP"))
        .to_owned()
}

/// A GET of `target` (a path or a URL) with these headers.
pub fn get_request(
    app: &TestApp,
    target: &str,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = app.client.get(app.url(target));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request
}

/// A POST of `body` to `target` (a path or a URL), typed `content_type`.
pub fn post_request(
    app: &TestApp,
    target: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(target))
        .header("content-type", content_type)
        .body(body)
}

/// Sends `request`, reads the whole response and checks it leaks nothing about storage.
pub async fn send(app: &TestApp, name: &str, request: reqwest::RequestBuilder) -> Sent {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: request failed: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{name}: body unreadable: {e:?}"));
    let sent = Sent {
        status,
        headers,
        body,
    };
    assert_no_leak(app, name, &sent);
    sent
}

/// No body or header names the documents directory, the object key, S3, or planted secrets.
pub fn assert_no_leak(app: &TestApp, name: &str, sent: &Sent) {
    let root = app.dir.path().display().to_string();
    let documents = app.path("documents").display().to_string();
    let mut texts = vec![("body".to_owned(), sent.body.clone())];
    for (key, value) in &sent.headers {
        texts.push((
            format!("header {key}"),
            format!("{key}: {}", String::from_utf8_lossy(value.as_bytes())),
        ));
    }
    for (what, text) in texts {
        let lower = text.to_ascii_lowercase();
        for needle in [
            documents.as_str(),
            root.as_str(),
            RESUME_KEY,
            PASSWD_SENTINEL,
        ] {
            assert!(
                !text.contains(needle),
                "{name}: {what} leaks {needle:?}: {text:?}"
            );
        }
        assert!(!lower.contains("x-amz"), "{name}: {what} mentions x-amz");
    }
}

/// A JSON error body with this status and code, and a human message.
pub fn assert_error(name: &str, sent: &Sent, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(sent.status, status, "{name}: status; body {:?}", sent.body);
    assert_eq!(
        sent.header("content-type"),
        Some("application/json"),
        "{name}: content type"
    );
    let body = sent.json(name);
    assert_eq!(body["error"], code, "{name}: code in {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.len() > 10 && message.ends_with('.'),
        "{name}: a human message, got {body}"
    );
    assert_eq!(
        sent.header("x-content-type-options"),
        Some("nosniff"),
        "{name}"
    );
    assert_eq!(sent.header("cache-control"), Some("no-store"), "{name}");
    body
}

/// The link's state in the store, without touching it.
pub async fn state(app: &TestApp, claims: &Claims) -> LinkState {
    app.store().peek(&claims.jti).await.unwrap()
}

/// No mail was written, exactly `live` links exist, and the sentinel link is still ready to use.
pub async fn assert_untouched(app: &TestApp, name: &str, live: usize, sentinel: &Claims) {
    assert!(app.outbox().is_empty(), "{name}: mail was written");
    assert_eq!(app.store().live_links(), live, "{name}: links in the store");
    assert_eq!(
        state(app, sentinel).await,
        LinkState::Ready { started: 0 },
        "{name}: the sentinel link was touched"
    );
}

/// Downloads `url` fully and checks it is the `resume` document.
pub async fn assert_downloads_resume(app: &TestApp, name: &str, url: &str) {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{name}: full download");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        sha256(&bytes),
        sha256(&content(1, RESUME_LEN)),
        "{name}: the document's bytes"
    );
}

/// A token for `claims`, signed with the test server's key but recorded nowhere.
pub fn sign(app: &TestApp, claims: &Claims) -> String {
    app.app.codec.sign(claims).unwrap()
}

/// Records a link for `claims` in the store, as minting would.
pub async fn record(app: &TestApp, claims: &Claims) {
    app.store()
        .insert(&docgate::store::NewLink {
            jti: &claims.jti,
            doc: &claims.doc,
            ttl: Duration::from_secs(900),
            attempts: app.app.config.download_attempts,
            owner: None,
        })
        .await
        .unwrap();
}

pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(pairs).unwrap().into_bytes()
}

pub fn json(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

pub const JSON: Option<&str> = Some("application/json");
pub const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

/// Base64url JSON, for hand-made tokens.
pub fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

pub const CHROME_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";

/// A browser's navigation to `url`, as Chrome sends it.
pub fn navigate(app: &TestApp, url: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(url))
        .header("accept", BROWSER_ACCEPT)
        .header("user-agent", CHROME_UA)
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "none")
        .header("sec-fetch-dest", "document")
}

/// The confirm page's Download button, as Chrome posts it under `Referrer-Policy: no-referrer`.
pub fn click(app: &TestApp, url: &str) -> reqwest::RequestBuilder {
    app.client
        .post(url)
        .header("accept", BROWSER_ACCEPT)
        .header("user-agent", CHROME_UA)
        .header("origin", "null")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
}

/// `data-page` of an HTML answer.
pub fn page_name(body: &str) -> &str {
    let at = body.find("<body data-page=\"").expect("a page") + 17;
    let end = body[at..].find('"').unwrap();
    &body[at..at + end]
}

pub async fn html(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// GETs `target` (a path or a URL) as a browser navigating to it; the status, headers and page.
pub async fn get_as_browser(
    app: &TestApp,
    target: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    html(navigate(app, target).send().await.unwrap()).await
}

/// A `Retry-After` of whole seconds within `range`.
pub fn assert_retry_after(name: &str, sent: &Sent, range: std::ops::RangeInclusive<u64>) -> u64 {
    let value = sent
        .header("retry-after")
        .unwrap_or_else(|| panic!("{name}: no Retry-After: {:?}", sent.headers));
    let secs: u64 = value
        .parse()
        .unwrap_or_else(|_| panic!("{name}: Retry-After {value:?} is not whole seconds"));
    assert!(
        range.contains(&secs),
        "{name}: Retry-After {secs} not in {range:?}"
    );
    secs
}
