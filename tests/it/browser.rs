//! docgate in a real browser (headless Chromium, driven by `chrome.rs`): the journey as a person
//! makes it, with and without JavaScript, the document landing on disk; every page at phone and
//! desktop width, checked (`lang`, `data-page`, one `<h1>`, a console free of CSP violations and
//! script errors) and photographed.
//!
//! Every screenshot is taken and checked on every run. With `DOCGATE_UPDATE_SCREENSHOTS=1` they
//! are also written to `docs/screenshots/<page>-<phone|desktop>.png`, the pictures the README
//! shows:
//!
//! ```sh
//! DOCGATE_UPDATE_SCREENSHOTS=1 cargo test --test it browser
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use docgate::token::Claims;

use crate::support::chrome::{Browser, Page, Viewport, png_size};
use crate::support::redis::RedisServer;
use crate::support::*;

const VISITOR: &str = "visitor@example.org";

/// Checks what every page promises: `<body data-page>` naming it, `lang` on `<html>`, one
/// `<h1>`, and nothing wrong in the console (no CSP violation, no script error). Returns the
/// `<h1>`'s text.
pub(crate) async fn check_page(page: &Page, name: &str) -> String {
    let url = page.url().await;
    assert_eq!(page.name().await, name, "data-page of {url}");
    assert!(!page.lang().await.is_empty(), "{name}: no lang on <html>");
    assert_eq!(
        page.eval("document.querySelectorAll('h1').length").await,
        1,
        "{name}: one <h1>"
    );
    assert_eq!(
        page.eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        true,
        "{name}: wider than the screen"
    );
    let problems = page.console_problems();
    assert!(
        problems.is_empty(),
        "{name}: the console said {problems:#?}"
    );
    page.text("h1").await
}

/// Whether this run writes the screenshots to `docs/screenshots`.
fn updating_screenshots() -> bool {
    std::env::var_os("DOCGATE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1")
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
}

/// Photographs the page: a whole PNG of exactly the viewport's size, written to
/// `docs/screenshots/<name>-<viewport>.png` when updating.
pub(crate) async fn shoot(page: &Page, name: &str, viewport: Viewport) {
    let png = page.screenshot().await;
    assert_eq!(
        png_size(&png),
        viewport.pixels(),
        "{name} at {}",
        viewport.name()
    );
    if updating_screenshots() {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{}.png", viewport.name())), png).unwrap();
    }
}

/// Waits (bounded) until the outbox holds `n` mails; returns the newest.
async fn wait_for_mail(app: &TestApp, n: usize) -> Mail {
    eventually(
        &format!("{n} mails in the outbox"),
        Duration::from_secs(10),
        || async {
            let mails = app.outbox();
            (mails.len() >= n).then(|| Mail::read(newest(&mails)))
        },
    )
    .await
}

/// Where a journey starts.
enum Start {
    /// `GET /`: every document, picked from `select#document`.
    Index,
    /// `GET /request/{document}`: the document fixed.
    Document,
}

/// A person asks for `document` in the browser, reads the mail, opens the link, sees the
/// confirm page, clicks Download; the file lands on disk as `filename` with `bytes`. Then the
/// link is spent.
async fn journey(javascript: bool, start: Start, document: &str, filename: &str, bytes: &[u8]) {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    page.set_javascript(javascript).await;

    let url = match start {
        Start::Index => format!("{}/", app.base),
        Start::Document => format!("{}/request/{document}", app.base),
    };
    assert_eq!(page.goto(&url).await, 200);
    check_page(&page, "request-form").await;
    match start {
        Start::Index => page.select("select#document", document).await,
        Start::Document => assert_eq!(
            page.attr("input[name=document]", "value").await.as_deref(),
            Some(document),
            "the document is fixed in a hidden field"
        ),
    }
    page.type_into("#email", VISITOR).await;

    if javascript {
        let before = page.url().await;
        page.click("#submit").await;
        page.wait_until("document.querySelector('#status').innerText.includes('Check your inbox')")
            .await;
        assert_eq!(
            page.attr("#status", "role").await.as_deref(),
            Some("status")
        );
        assert_eq!(page.url().await, before, "with JavaScript the form stays");
        check_page(&page, "request-form").await;
    } else {
        let status = page.click_and_wait("#submit").await;
        assert!(
            (200..300).contains(&status),
            "the form post answered {status}"
        );
        let h1 = check_page(&page, "request-sent").await;
        assert!(h1.contains("Check your inbox"), "{h1}");
    }

    let mail = wait_for_mail(&app, 1).await;
    assert_eq!(mail.to, VISITOR);
    assert_eq!(app.outbox().len(), 1, "one mail");

    assert_eq!(page.goto(&mail.link).await, 200);
    check_page(&page, "confirm").await;
    let title = app.app.catalog.get(document).unwrap().title.clone();
    let shown = page.text("body").await;
    for what in [title.as_str(), filename, "expires"] {
        assert!(
            shown.contains(what),
            "the confirm page shows {what}: {shown}"
        );
    }
    assert!(page.exists("form#download-form").await);
    assert!(
        browser.downloaded().is_empty(),
        "opening the link downloads nothing"
    );

    page.click("#download").await;
    let got = browser.wait_for_download(filename).await;
    assert_eq!(got.len(), bytes.len());
    assert_eq!(sha256(&got), sha256(bytes), "the bytes of {filename}");
    assert_eq!(browser.downloaded(), [filename], "exactly one file");

    // Opening the link again at once, from the same network, fetches the document once more
    // (what a phone's download manager does after its browser's click); after that the link is
    // spent, and says so.
    let mark = browser.mark();
    page.goto_download(&mail.link).await;
    let (name, again) = browser.wait_for_next_download(mark).await;
    assert_eq!(name, filename);
    assert_eq!(sha256(&again), sha256(bytes), "the second fetch");
    assert_eq!(page.goto(&mail.link).await, 410);
    check_page(&page, "link_used").await;
    let log = app.wait_for_log(4).await;
    let completed = log.iter().filter(|e| e.outcome == "completed").count();
    assert_eq!(completed, 2, "the owner's log has both downloads: {log:?}");
}

#[tokio::test]
async fn the_journey_with_javascript() {
    journey(
        true,
        Start::Document,
        "resume",
        "Jane_Doe_Resume.pdf",
        &content(1, RESUME_LEN),
    )
    .await;
}

#[tokio::test]
async fn the_journey_without_javascript() {
    journey(
        false,
        Start::Document,
        "lebenslauf",
        "Lebenslauf Jürgen Müller.pdf",
        &content(2, 4096),
    )
    .await;
}

#[tokio::test]
async fn the_journey_from_the_index_with_javascript() {
    journey(
        true,
        Start::Index,
        "lebenslauf",
        "Lebenslauf Jürgen Müller.pdf",
        &content(2, 4096),
    )
    .await;
}

#[tokio::test]
async fn the_journey_from_the_index_without_javascript() {
    journey(
        false,
        Start::Index,
        "resume",
        "Jane_Doe_Resume.pdf",
        &content(1, RESUME_LEN),
    )
    .await;
}

#[tokio::test]
async fn an_expired_link_asks_again_in_one_click() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    page.set_javascript(false).await;
    let expired = Claims::new("lebenslauf", now() - 3600, 900);
    let expired = format!("{}/d/{}", app.base, app.app.codec.sign(&expired).unwrap());
    assert_eq!(page.goto(&expired).await, 410);
    check_page(&page, "link_expired").await;

    // The click leads to the form for the same document, which asks for the address.
    assert_eq!(page.click_and_wait("#renew").await, 200);
    check_page(&page, "request-form").await;
    assert_eq!(
        page.attr("input[name=document]", "value").await.as_deref(),
        Some("lebenslauf")
    );
    page.type_into("#email", VISITOR).await;
    page.click_and_wait("#submit").await;
    check_page(&page, "request-sent").await;
    let mail = wait_for_mail(&app, 1).await;
    assert_eq!(mail.to, VISITOR);
    assert_eq!(page.goto(&mail.link).await, 200);
    check_page(&page, "confirm").await;
    assert!(page.text("h1").await.contains("Jürgen's Lebenslauf"));
}

#[tokio::test]
async fn the_request_form_shows_field_errors_in_place() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        assert_eq!(page.goto(&format!("{}/", app.base)).await, 200);
        check_page(&page, "request-form").await;
        assert_eq!(
            page.attr("#request-form", "method").await.as_deref(),
            Some("post")
        );
        assert_eq!(
            page.attr("#request-form", "action").await.as_deref(),
            Some("/api/download-requests")
        );
        assert!(
            !page.exists("#consent").await,
            "no consent box without a privacy page"
        );
        shoot(&page, "request-form", viewport).await;

        let url = page.url().await;
        page.type_into("#email", "not an address").await;
        page.click("#submit").await;
        page.wait_until(
            "document.querySelector('#email-error').innerText.trim().length > 0 \
             && document.querySelector('#email').getAttribute('aria-invalid') === 'true'",
        )
        .await;
        assert_eq!(page.url().await, url, "the page did not navigate");
        check_page(&page, "request-form").await;
        shoot(&page, "request-form-errors", viewport).await;
    }
    assert!(app.outbox().is_empty(), "no mail for a bad address");
}

#[tokio::test]
async fn screenshots_of_asking_and_the_mail() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    page.set_javascript(false).await;
    for (n, viewport) in Viewport::ALL.into_iter().enumerate() {
        page.set_viewport(viewport).await;
        page.goto(&format!("{}/request/resume", app.base)).await;
        page.type_into("#email", VISITOR).await;
        page.click_and_wait("#submit").await;
        check_page(&page, "request-sent").await;
        shoot(&page, "request-sent", viewport).await;

        // The mail's HTML part, as a mail client shows it.
        let mail = wait_for_mail(&app, n + 1).await;
        page.show_html(&mail.html).await;
        let problems = page.console_problems();
        assert!(problems.is_empty(), "the mail: {problems:#?}");
        assert!(page.text("body").await.contains("Jane Doe's resume"));
        shoot(&page, "mail", viewport).await;
    }
}

#[tokio::test]
async fn screenshots_of_the_confirm_page_light_and_dark() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    let (_, link) = app.mint("resume").await;
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        assert_eq!(page.goto(&link).await, 200);
        check_page(&page, "confirm").await;
        shoot(&page, "confirm", viewport).await;
    }

    // Dark mode: the page follows prefers-color-scheme.
    let light = background(&page).await;
    page.set_viewport(Viewport::Phone).await;
    page.set_dark(true).await;
    page.goto(&link).await;
    check_page(&page, "confirm").await;
    let dark = background(&page).await;
    assert!(
        luminance(dark) < 0.25 && luminance(light) > 0.75,
        "light {light:?}, dark {dark:?}"
    );
    shoot(&page, "confirm-dark", Viewport::Phone).await;
    assert!(browser.downloaded().is_empty(), "looking downloads nothing");
    let head = app.head(&link).await;
    assert_eq!(head.status(), 200, "the link is still usable");
}

/// The body's computed background colour, as RGB.
async fn background(page: &Page) -> (u8, u8, u8) {
    let css = page
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    let css = css.as_str().unwrap();
    let numbers: Vec<u8> = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|n| n.trim().parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    (0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)) / 255.0
}

#[tokio::test]
async fn screenshots_of_the_outcome_pages() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;

        let expired = Claims::new("resume", now() - 3600, 900);
        let expired = format!("{}/d/{}", app.base, app.app.codec.sign(&expired).unwrap());
        assert_eq!(page.goto(&expired).await, 410);
        check_page(&page, "link_expired").await;
        assert!(page.exists("form#renew-form").await, "one click asks again");
        shoot(&page, "link-expired", viewport).await;

        let (_, used) = app.mint("resume").await;
        assert_eq!(app.download(&used).await.len(), RESUME_LEN);
        app.wait_for_head(&used, 410).await;
        assert_eq!(page.goto(&used).await, 410);
        check_page(&page, "link_used").await;
        shoot(&page, "link-used", viewport).await;

        let (claims, revoked) = app.mint("resume").await;
        assert!(
            docgate::admin::revoke(&app.app, claims.jti.as_str())
                .await
                .unwrap()
        );
        assert_eq!(page.goto(&revoked).await, 410);
        check_page(&page, "link_revoked").await;
        shoot(&page, "link-revoked", viewport).await;

        assert_eq!(page.goto(&format!("{}/d/not-a-link", app.base)).await, 400);
        check_page(&page, "invalid_link").await;
        shoot(&page, "invalid-link", viewport).await;
    }
}

#[tokio::test]
async fn screenshots_of_too_many_requests() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "2/h")]).await;
    let guess = format!("{}/d/not-a-link", app.base);
    let mut limited = false;
    for _ in 0..10 {
        if app.get(&guess).await.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the per-IP download limit never answered 429");
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        assert_eq!(page.goto(&guess).await, 429);
        check_page(&page, "rate_limited").await;
        shoot(&page, "rate-limited", viewport).await;
    }
}

#[tokio::test]
async fn screenshots_of_service_unavailable() {
    let mut redis = RedisServer::start();
    let app = TestApp::with(&[("DOCGATE_REDIS_URL", &redis.url())]).await;
    let (_, link) = app.mint("resume").await;
    redis.stop();
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        assert_eq!(page.goto(&link).await, 503);
        check_page(&page, "service_unavailable").await;
        shoot(&page, "service-unavailable", viewport).await;
    }
}

/// The console check is only worth something if it sees a violation: an image from another
/// origin, which the pages' policy forbids, must show up.
#[tokio::test]
async fn the_console_check_catches_a_csp_violation() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    page.goto(&format!("{}/d/not-a-link", app.base)).await;
    assert!(page.console_problems().is_empty());
    page.eval(
        "document.body.insertAdjacentHTML('beforeend', '<img src=\"http://127.0.0.1:9/x.png\">')",
    )
    .await;
    let problems = eventually("a console problem", Duration::from_secs(5), || async {
        let problems = page.console_problems();
        (!problems.is_empty()).then_some(problems)
    })
    .await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Content Security Policy")),
        "{problems:?}"
    );
}
