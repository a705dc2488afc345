//! What recipients meet, over real HTTP: the confirm page in front of a link, mail scanners that
//! fetch it first, the Download button's `POST`, a phone's second fetch, and a page (or JSON) for
//! every outcome. The request form is in `request_form`.

use docgate::requestlog::{Event, NOTES_PER_LINK};
use docgate::store::LinkState;
use docgate::token::Claims;

use crate::support::probe::{
    BROWSER_ACCEPT, CHROME_UA, assert_error, click, get_as_browser, html, navigate, page_name,
    send, sign, state,
};
use crate::support::redis::RedisServer;
use crate::support::scrape;
use crate::support::*;

#[tokio::test]
async fn a_browser_sees_the_confirm_page_and_only_its_button_downloads() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("resume").await;

    let (status, headers, body) = get_as_browser(&app, &link).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page_name(&body), "confirm");
    assert!(
        body.contains("<h1>Download “Jane Doe&#39;s resume”</h1>"),
        "{body}"
    );
    assert!(body.contains("Jane_Doe_Resume.pdf"));
    assert!(body.contains("<dd>307 kB</dd>"), "the size: {body}");
    let expiry = docgate::texts::measures::clock(claims.exp).0;
    assert!(
        body.contains(&format!("in 15 minutes, at {expiry}"))
            || body.contains(&format!("in 14 minutes, at {expiry}")),
        "the expiry: {body}"
    );
    assert!(body.contains("<form id=\"download-form\" method=\"post\">"));
    assert!(body.contains("<button id=\"download\""));
    assert!(body.contains("<meta name=\"robots\" content=\"noindex, nofollow\">"));
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    // Its own form posts carry its origin; no other site learns even that.
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!body.contains("<script"), "the confirm page runs no script");
    // Nothing spent, nothing started.
    assert_eq!(state(&app, &claims).await, LinkState::Ready { started: 0 });

    // The button: the whole document, as an attachment.
    let response = click(&app, &link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"Jane_Doe_Resume.pdf\"")
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256(&bytes), sha256(&content(1, RESUME_LEN)));
    assert_eq!(state(&app, &claims).await, LinkState::Used);

    // Right after, the same network may fetch it once more (see the phone test); after that,
    // opening the mail's link again shows it was used, and how to get a new one.
    let second = navigate(&app, &link).send().await.unwrap();
    assert_whole_resume(second).await;
    let (status, _, body) = get_as_browser(&app, &link).await;
    assert_eq!(status, 410);
    assert_eq!(page_name(&body), "link_used");
    assert!(body.contains("href=\"/request/resume\""), "{body}");

    // The owner sees the page was opened before the download, by whom and when.
    let log = app.wait_for_log(2).await;
    let opened: Vec<_> = log
        .iter()
        .filter(|e| e.event == Event::LinkOpened)
        .collect();
    assert_eq!(opened.len(), 1, "{log:?}");
    assert_eq!(opened[0].jti.as_deref(), Some(claims.jti.as_str()));
    assert_eq!(opened[0].user_agent.as_deref(), Some(CHROME_UA));
    assert!(opened[0].after_send_secs.is_some_and(|s| s < 60));
    assert!(log.iter().any(|e| e.outcome == "completed"));
}

#[tokio::test]
async fn mail_scanners_that_fetch_and_follow_everything_spend_nothing() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("resume").await;
    let scanners = [
        // Safe Links and most gateways pose as a desktop browser.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0; BingPreview/1.0b)",
        "Mimecast URL Protect",
        "Proofpoint URL Defense",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    ];
    for ua in scanners {
        let response = app
            .client
            .get(&link)
            .header("user-agent", ua)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{ua}");
        let body = response.text().await.unwrap();
        assert_eq!(page_name(&body), "confirm", "{ua}");
        // Nothing on the page to follow (no stylesheet, image, script or link), and the form
        // posts back to the link itself: a scanner that follows everything can only look again.
        for attr in [" href=", " src=", " action="] {
            assert!(!body.contains(attr), "{ua}: {attr} on the confirm page");
        }
        let again = app
            .client
            .get(&link)
            .header("user-agent", ua)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200, "{ua}");
        assert_eq!(page_name(&again.text().await.unwrap()), "confirm");
        let head = app.head(&link).await;
        assert_eq!(head.status(), 200);
    }
    assert_eq!(state(&app, &claims).await, LinkState::Ready { started: 0 });
    // The first fetches are stored for the owner, every one is counted.
    let opened = app
        .wait_for_log(NOTES_PER_LINK)
        .await
        .into_iter()
        .filter(|e| e.event == Event::LinkOpened)
        .count();
    assert!(2 * scanners.len() > NOTES_PER_LINK);
    assert_eq!(
        opened, NOTES_PER_LINK,
        "a link's opens are stored up to its bound"
    );
    let (_, series) = scrape(&app).await;
    assert_eq!(
        series["docgate_link_pages_total"],
        (2 * scanners.len()) as f64,
        "every pre-click fetch is counted"
    );

    // The person's click still downloads the whole document.
    let response = click(&app, &link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256(&bytes), sha256(&content(1, RESUME_LEN)));
    let (_, series) = scrape(&app).await;
    assert_eq!(
        series["docgate_link_pages_total"],
        (2 * scanners.len()) as f64
    );
}

#[tokio::test]
async fn scripts_resumes_and_a_started_download_stream_without_the_page() {
    let app = TestApp::start().await;

    // curl and wget accept anything: they get the bytes.
    let (_, link) = app.mint("resume").await;
    let response = app
        .client
        .get(&link)
        .header("accept", "*/*")
        .header("user-agent", "curl/8.5.0")
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;

    // A browser resuming with Range gets the bytes.
    let (_, link) = app.mint("resume").await;
    let response = navigate(&app, &link)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap().len(), RESUME_LEN - 1000);

    // The button starts a download that is cut off; opening the link again in the browser (or
    // its download manager fetching it) resumes with the bytes, not the page.
    let (claims, link) = app.mint("big").await;
    let partial = PartialGet::send(
        &app,
        "POST",
        &link,
        &[("Sec-Fetch-Site", "same-origin"), ("Content-Length", "0")],
        64 * 1024,
    )
    .await;
    assert_eq!(partial.status, 200);
    drop(partial);
    app.wait_for_head(&link, 200).await;
    assert_eq!(state(&app, &claims).await, LinkState::Ready { started: 1 });
    let response = navigate(&app, &link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256(&response.bytes().await.unwrap()),
        sha256(&content(3, BIG_LEN))
    );
}

#[tokio::test]
async fn a_phones_download_manager_fetches_again_right_after_the_button() {
    // Clients are told apart by X-Forwarded-For from a trusted proxy.
    let app = TestApp::with(&[("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let phone = "198.51.100.7";
    let (claims, link) = app.mint("resume").await;

    let response = click(&app, &link)
        .header("x-forwarded-for", phone)
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;
    assert_eq!(state(&app, &claims).await, LinkState::Used);

    // Another network does not get it.
    let other = app
        .client
        .get(&link)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 410);

    // The download manager's GET from the same network (no browser headers) gets it once.
    let again = app
        .client
        .get(&link)
        .header("x-forwarded-for", phone)
        .header("user-agent", "AndroidDownloadManager/14")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        sha256(&again.bytes().await.unwrap()),
        sha256(&content(1, RESUME_LEN))
    );
    let third = app
        .client
        .get(&link)
        .header("x-forwarded-for", phone)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 410, "only one second fetch");

    // A link completed by a plain GET (a script) is never fetched twice, even from its network.
    let (_, link) = app.mint("resume").await;
    for expected in [200, 410] {
        let response = app
            .client
            .get(&link)
            .header("x-forwarded-for", phone)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
        response.bytes().await.unwrap();
    }

    // With the grace off, the button's download is the only one.
    let strict = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_REDOWNLOAD_GRACE", "0s"),
    ])
    .await;
    let (_, link) = strict.mint("resume").await;
    let response = click(&strict, &link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let again = strict.get(&link).await;
    assert_eq!(again.status(), 410);
}

#[tokio::test]
async fn a_download_posted_from_another_site_is_refused_and_spends_nothing() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("resume").await;
    let cases = [
        ("cross-site", vec![("sec-fetch-site", "cross-site")]),
        ("same-site", vec![("sec-fetch-site", "same-site")]),
        ("foreign origin", vec![("origin", "https://evil.example")]),
        (
            "foreign origin, same-origin claimed",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
        ("null origin, unvouched", vec![("origin", "null")]),
    ];
    for (name, headers) in cases {
        let mut request = app.client.post(&link).header("accept", "application/json");
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let sent = send(&app, name, request).await;
        assert_error(name, &sent, 403, "cross_site_request");
    }
    let (status, _, body) = html(
        app.client
            .post(&link)
            .header("accept", BROWSER_ACCEPT)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("press Download"), "{body}");
    assert_eq!(state(&app, &claims).await, LinkState::Ready { started: 0 });

    // From its own origin, or with no such headers at all, the POST downloads.
    let response = app
        .client
        .post(&link)
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;
}

#[tokio::test]
async fn with_the_confirm_page_off_a_browser_gets_the_bytes_inline_when_asked() {
    let app = TestApp::with(&[
        ("DOCGATE_CONFIRM_PAGE", "off"),
        ("DOCGATE_DISPOSITION", "inline"),
    ])
    .await;
    let (_, link) = app.mint("lebenslauf").await;
    let response = navigate(&app, &link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"Lebenslauf Jurgen Muller.pdf\"; \
         filename*=UTF-8''Lebenslauf%20J%C3%BCrgen%20M%C3%BCller.pdf"
    );
    response.bytes().await.unwrap();
}

/// Each outcome a person can meet, as a page for a browser and as JSON for a script.
#[tokio::test]
async fn every_outcome_has_a_page_and_a_json_answer() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "30/h")]).await;

    let expired = Claims::new("resume", now() - 2000, 900);
    let expired_link = format!("{}/d/{}", app.base, sign(&app, &expired));
    let (used, used_link) = app.mint("resume").await;
    app.download(&used_link).await;
    let (revoked, revoked_link) = app.mint("resume").await;
    assert!(app.app.backends.store.revoke(&revoked.jti).await.unwrap());
    let invalid_link = format!("{}/d/not.a.token", app.base);
    assert_eq!(state(&app, &used).await, LinkState::Used);

    let cases = [
        (&expired_link, 410, "link_expired", "This link has expired"),
        (
            &used_link,
            410,
            "link_used",
            "This link has already been used",
        ),
        (
            &revoked_link,
            410,
            "link_revoked",
            "This link has been withdrawn",
        ),
        (&invalid_link, 400, "invalid_link", "This link is not valid"),
    ];
    for (link, status, code, title) in cases {
        let (got, headers, body) = get_as_browser(&app, link).await;
        assert_eq!(got, status, "{code}: {body}");
        assert_eq!(page_name(&body), code);
        assert!(
            body.contains(&format!("<h1>{title}</h1>")),
            "{code}: {body}"
        );
        assert!(body.contains("<html lang=\"en\">"));
        assert!(body.contains("prefers-color-scheme:dark"), "dark mode");
        assert!(body.contains("width=device-width"), "small screens");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe"), "{csp}");

        let sent = send(
            &app,
            code,
            app.client.get(link).header("accept", "application/json"),
        )
        .await;
        assert_error(code, &sent, status, code);
    }

    // The expired page offers a new link for the same document in one click.
    let (_, _, body) = get_as_browser(&app, &expired_link).await;
    assert!(
        body.contains("<form id=\"renew-form\" method=\"post\">"),
        "{body}"
    );
    assert!(body.contains("name=\"renew\" value=\"1\""));
    let (status, _, body) = html(
        click(&app, &expired_link)
            .body("renew=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_name(&body), "request-form");
    assert!(
        body.contains("name=\"document\" value=\"resume\""),
        "{body}"
    );
    assert!(
        body.contains("Enter your address to get a new link"),
        "{body}"
    );
    assert!(app.outbox().is_empty(), "no address known: nothing sent");

    // Too many requests: when to come back.
    let limited = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "1/h")]).await;
    let (_, link) = limited.mint("resume").await;
    limited.download(&link).await;
    let (status, headers, body) = get_as_browser(&limited, &link).await;
    assert_eq!(status, 429);
    assert_eq!(page_name(&body), "rate_limited");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    let at = docgate::texts::measures::clock(now() + wait).0;
    assert!(
        body.contains("Try again in 59 minutes")
            || body.contains("Try again in 1 hour")
            || body.contains(&at),
        "{body}"
    );
    assert!(body.contains(" UTC"), "{body}");
    let sent = send(
        &limited,
        "429 json",
        limited
            .client
            .get(&link)
            .header("accept", "application/json"),
    )
    .await;
    assert_error("429 json", &sent, 429, "rate_limited");
}

#[tokio::test]
async fn with_the_token_store_down_a_person_reads_that_nothing_was_spent() {
    let mut redis = RedisServer::start();
    let app = TestApp::with(&[("DOCGATE_REDIS_URL", &redis.url())]).await;
    let (_, link) = app.mint("resume").await;
    redis.stop();
    let (status, headers, body) = get_as_browser(&app, &link).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(page_name(&body), "service_unavailable");
    assert!(body.contains("a link you have still works"), "{body}");
    assert_eq!(headers["retry-after"], "30");
    let sent = send(
        &app,
        "503 json",
        app.client.get(&link).header("accept", "application/json"),
    )
    .await;
    assert_error("503 json", &sent, 503, "service_unavailable");
}
