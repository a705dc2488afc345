//! The request form as recipients meet it, over real HTTP: posted without script, embedded by
//! listed origins (CORS, framing), asking for consent, the expired page's button that mails a new
//! link, and its links behind a path prefix.

use docgate::requestlog::Event;
use docgate::token::Claims;

use crate::support::probe::{
    BROWSER_ACCEPT, REQUESTS, click, get_as_browser, html, page_name, sign,
};
use crate::support::scrape;
use crate::support::*;

/// A CORS preflight of a link request from a page on `origin`.
async fn cors_preflight(
    app: &TestApp,
    origin: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(REQUESTS))
        .header("origin", origin)
        .header("access-control-request-method", "POST");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// Jane's link request, as a script sends it.
fn jane() -> serde_json::Value {
    serde_json::json!({"email": "jane@example.org", "document": "resume"})
}

#[tokio::test]
async fn the_request_form_works_without_script_and_is_embeddable_by_listed_origins() {
    let app = TestApp::start().await;

    // Every document on offer, at `/`.
    let (status, headers, body) = get_as_browser(&app, "/").await;
    assert_eq!(status, 200);
    assert_eq!(page_name(&body), "request-form");
    assert!(
        body.contains("<select id=\"document\" name=\"document\""),
        "{body}"
    );
    for id in ["resume", "lebenslauf", "big"] {
        assert!(body.contains(&format!("<option value=\"{id}\"")), "{id}");
    }
    assert!(body.contains("<label for=\"email\">"), "labelled fields");
    assert!(body.contains("autocomplete=\"email\""));
    assert!(
        !body.contains("id=\"consent\""),
        "no privacy URL, no consent box"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");

    // One document at `/request/{id}`; an unknown one is a 404 page.
    let (status, _, body) = get_as_browser(&app, "/request/resume").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<h1>Get “Jane Doe&#39;s resume”</h1>"),
        "{body}"
    );
    assert!(body.contains("type=\"hidden\" id=\"document\" name=\"document\" value=\"resume\""));
    let (status, _, body) = get_as_browser(&app, "/request/nope").await;
    assert_eq!(status, 404);
    assert_eq!(page_name(&body), "unknown_document");

    // Posted without script: a page, and the mail.
    let (status, _, body) = html(
        app.post_form(
            REQUESTS,
            &[("email", "jane@example.org"), ("document", "resume")],
            &[("accept", BROWSER_ACCEPT)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(page_name(&body), "request-sent");
    assert!(
        body.contains("emailed you a download link. It works once and expires in 15 minutes."),
        "{body}"
    );
    assert_eq!(app.outbox().len(), 1);

    // Another site, listed: may frame the form and post with script, reading the answer.
    let site = "https://www.example.com";
    let embedded = TestApp::with(&[("DOCGATE_CORS_ORIGINS", site)]).await;
    let form = format!("{}/request/resume", embedded.base);
    let response = embedded.get(&form).await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains(&format!("frame-ancestors {site}")), "{csp}");
    assert!(!response.headers().contains_key("x-frame-options"));
    let preflight = cors_preflight(
        &embedded,
        site,
        &[("access-control-request-headers", "content-type")],
    )
    .await;
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], site);
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    let posted = embedded
        .post_json(REQUESTS, &jane(), &[("origin", site)])
        .await;
    assert_eq!(posted.status(), 202);
    assert_eq!(posted.headers()["access-control-allow-origin"], site);
    assert_eq!(posted.headers()["vary"], "origin");
    // The framed form without script: its answer page may be framed by the same sites, and so
    // may its error pages.
    for (document, status) in [("resume", 202), ("nope", 404)] {
        let answered = embedded
            .post_form(
                REQUESTS,
                &[("email", "jane@example.org"), ("document", document)],
                &[("accept", BROWSER_ACCEPT)],
            )
            .await;
        assert_eq!(answered.status(), status);
        let csp = answered.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(csp.ends_with(&format!("frame-ancestors {site}")), "{csp}");
    }

    // An origin not listed: no preflight, and its script cannot read the answer.
    let stranger = "https://evil.example";
    let preflight = cors_preflight(&embedded, stranger, &[]).await;
    assert_eq!(preflight.status(), 403);
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let posted = embedded
        .post_json(REQUESTS, &jane(), &[("origin", stranger)])
        .await;
    assert!(!posted.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_form_asks_for_consent_when_a_privacy_notice_is_configured() {
    let app = TestApp::with(&[("DOCGATE_PRIVACY_URL", "https://example.com/privacy")]).await;
    let (_, _, body) = get_as_browser(&app, "/").await;
    assert!(
        body.contains("id=\"consent\" name=\"consent\" type=\"checkbox\""),
        "{body}"
    );
    assert!(
        body.contains("href=\"https://example.com/privacy\""),
        "{body}"
    );
}

#[tokio::test]
async fn the_expired_pages_button_mails_a_new_link_to_the_same_address() {
    let app = TestApp::start().await;
    // A link that was requested by Jane and has since expired.
    let expired = Claims::new("lebenslauf", now() - 2000, 900);
    let mut entry =
        docgate::requestlog::Entry::now(Event::LinkRequested, "192.0.2.1".parse().unwrap(), "sent");
    entry.email = Some("jane@example.org".to_owned());
    entry.document = Some("lebenslauf".to_owned());
    entry.jti = Some(expired.jti.as_str().to_owned());
    app.app.backends.requests.record(&entry).await.unwrap();
    let link = format!("{}/d/{}", app.base, sign(&app, &expired));

    let (status, _, body) = html(click(&app, &link).body("renew=1").send().await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(page_name(&body), "request-sent");
    assert!(
        body.contains("We sent a new link to j•••@example.org. It expires in 15 minutes."),
        "{body}"
    );
    assert!(
        !body.contains("jane@"),
        "the page does not show the address"
    );
    let mails = app.outbox();
    assert_eq!(mails.len(), 1);
    let mail = Mail::read(&mails[0]);
    assert_eq!(mail.to, "jane@example.org");
    assert_ne!(token_of(&mail.link), token_of(&link));
    let response = app.get(&mail.link).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        LEBENSLAUF_DISPOSITION
    );

    // The owner's log has the new request, for the same person.
    let log = app.wait_for_log(3).await;
    let renewed = log
        .iter()
        .filter(|e| e.event == Event::LinkRequested && e.outcome == "sent")
        .filter(|e| e.jti.as_deref() != Some(expired.jti.as_str()))
        .collect::<Vec<_>>();
    assert_eq!(renewed.len(), 1, "{log:?}");
    assert_eq!(renewed[0].email.as_deref(), Some("jane@example.org"));
    assert_eq!(renewed[0].document.as_deref(), Some("lebenslauf"));

    // The same limits as any request: the address's own limit holds (a silent no).
    let strict = TestApp::with(&[("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h")]).await;
    strict.app.backends.requests.record(&entry).await.unwrap();
    let link = format!("{}/d/{}", strict.base, sign(&strict, &expired));
    for _ in 0..3 {
        let response = click(&strict, &link).body("renew=1").send().await.unwrap();
        assert_eq!(response.status(), 202);
    }
    assert_eq!(
        strict.outbox().len(),
        1,
        "one mail, however often the button is pressed"
    );

    // Refused renewals are link requests refused: counted in the request metrics (not stored),
    // never counted as download refusals.
    let tight = TestApp::with(&[("DOCGATE_LIMIT_REQUEST_PER_IP", "1/h")]).await;
    tight.app.backends.requests.record(&entry).await.unwrap();
    let link = format!("{}/d/{}", tight.base, sign(&tight, &expired));
    let first = click(&tight, &link).body("renew=1").send().await.unwrap();
    assert_eq!(first.status(), 202);
    let (status, _, body) = html(click(&tight, &link).body("renew=1").send().await.unwrap()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(page_name(&body), "rate_limited");
    let log = tight.wait_for_log(2).await;
    assert!(log.iter().all(|e| e.outcome != "rate_limited"), "{log:?}");
    let (_, series) = scrape(&tight).await;
    assert_eq!(
        series["docgate_link_requests_total{outcome=\"rate_limited\"}"],
        1.0
    );
    assert_eq!(
        series
            .get("docgate_download_refusals_total{outcome=\"rate_limited\"}")
            .copied()
            .unwrap_or(0.0),
        0.0
    );

    // A link that is not expired is not renewed: the button's POST downloads it.
    let (_, live) = app.mint("resume").await;
    let response = click(&app, &live).body("renew=1").send().await.unwrap();
    assert_whole_resume(response).await;
}

#[tokio::test]
async fn behind_a_path_prefix_the_pages_link_under_it() {
    let app = TestApp::start().await;
    let prefixed = TestApp::with(&[("DOCGATE_PUBLIC_URL", "https://docs.example.com/docs")]).await;
    let (_, _, body) = get_as_browser(&prefixed, "/").await;
    assert!(
        body.contains("action=\"/docs/api/download-requests\""),
        "{body}"
    );
    let (_, link) = prefixed.mint("resume").await;
    prefixed.download(&link).await;
    let (status, _, body) = get_as_browser(&prefixed, &link).await;
    assert_eq!(status, 410);
    assert!(body.contains("href=\"/docs/request/resume\""), "{body}");
    // At the root, no prefix.
    let (_, _, body) = get_as_browser(&app, "/").await;
    assert!(body.contains("action=\"/api/download-requests\""), "{body}");
}
