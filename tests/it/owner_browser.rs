//! The owner's page in headless Chromium, one session through every action: sign in, read the
//! funnel and the log, approve and decline pending requests, search by address, revoke a link and
//! all of a person's, export a person's data and erase it (with its confirmation step). Mail goes
//! through a real SMTP server; every page is checked (no console error, no CSP violation, no
//! horizontal scrolling) and photographed at phone and desktop width.

use std::time::Duration;

use crate::admin::TOKEN;
use crate::browser::{check_page, shoot};
use crate::owner_page::{JANE, JOHN, exported, owner_app};
use crate::support::chrome::{Browser, Page, Viewport};
use crate::support::smtp::SmtpSink;
use crate::support::*;

/// Two people who ask for the document that needs the owner's approval.
const ANN: &str = "ann.asks@example.net";
const BOB: &str = "bob.asks@example.net";
/// Where the owner is asked.
const OWNER: &str = "owner@example.net";

/// The fixtures' documents and one more that waits for the owner's approval.
const REVIEWED: &str = "\n[documents.reviewed]\nkey = \"resume/lebenslauf.pdf\"\n\
    filename = \"Reviewed.pdf\"\ntitle = \"A reviewed document\"\napproval = true\n";

/// Opens `url` at phone and desktop width; each time checks it is the page `name` and
/// photographs it as `shot`.
async fn photograph(page: &Page, url: &str, name: &str, shot: &str) {
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        assert_eq!(page.goto(url).await, 200, "{url}");
        check_page(page, name).await;
        shoot(page, shot, viewport).await;
    }
}

/// The mails the sink holds for `to`, oldest first.
fn mails_to(sink: &SmtpSink, to: &str) -> Vec<Mail> {
    let mails = sink.messages().into_iter().map(|p| Mail::parse(&p));
    mails.filter(|m| m.to == to).collect()
}

/// Waits (bounded) for the `n`th mail to `to` and returns it.
async fn mail(sink: &SmtpSink, to: &str, n: usize) -> Mail {
    eventually(
        &format!("{n} mails to {to}"),
        Duration::from_secs(10),
        || async { mails_to(sink, to).into_iter().nth(n - 1) },
    )
    .await
}

/// Asks for `document` as `email` and returns the link of the mail it brings, `email`'s `n`th.
async fn link(app: &TestApp, sink: &SmtpSink, email: &str, document: &str, n: usize) -> String {
    assert_eq!(app.request_link(email, document).await.status(), 202);
    mail(sink, email, n).await.link
}

/// The status of a download of `link` now.
async fn download_status(app: &TestApp, link: &str) -> u16 {
    app.client.get(link).send().await.unwrap().status().as_u16()
}

/// The rendered text of one document's funnel (its title, totals and chart).
async fn funnel(page: &Page, title: &str) -> String {
    page.text(&format!("[data-document={}]", serde_json::json!(title)))
        .await
}

/// Clicks `selector` (a form's button) and checks the page it leads to is `name`, loaded `200`.
async fn click_to(page: &Page, selector: &str, name: &str) {
    assert_eq!(page.click_and_wait(selector).await, 200, "{selector}");
    check_page(page, name).await;
}

/// Clicks the `action` button (`approve`, `decline`) of `email`'s pending request, which leads
/// back to the owner's page.
async fn decide(page: &Page, email: &str, action: &str) {
    let id = page
        .eval(&format!(
            "[...document.querySelectorAll('#pending li')]\
             .find(li => li.innerText.includes({}))\
             .querySelector('input[name=id]').value",
            serde_json::json!(email)
        ))
        .await;
    let id = id.as_str().expect("a pending request's id").to_owned();
    let button = format!("form[action='/{action}']:has(input[name='id'][value='{id}']) button");
    click_to(page, &button, "owner").await;
}

#[tokio::test]
async fn in_a_browser_the_owner_signs_in_reads_decides_revokes_and_erases() {
    let sink = SmtpSink::start();
    let catalog = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(catalog.path(), format!("{CATALOG}{REVIEWED}")).unwrap();
    let (smtp, catalog_path) = (sink.url(), catalog.path().display().to_string());
    let app = owner_app(&[
        ("DOCGATE_SMTP_URL", &smtp),
        ("DOCGATE_CATALOG", &catalog_path),
        ("DOCGATE_OWNER_EMAIL", OWNER),
    ])
    .await;
    let resume = link(&app, &sink, JANE, "resume", 1).await;
    let lebenslauf = link(&app, &sink, JANE, "lebenslauf", 2).await;
    let downloaded = link(&app, &sink, JOHN, "lebenslauf", 1).await;
    assert_lebenslauf(app.client.get(&downloaded).send().await.unwrap()).await;
    app.wait_for_log(4).await;

    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    let home = format!("{}/", app.admin_base);
    photograph(&page, &home, "owner-login", "owner-login").await;

    // Signing in: the funnel of every document and the log, newest first.
    page.type_into("#token", TOKEN).await;
    click_to(&page, "#sign-in", "owner").await;
    assert!(page.exists("#chart-0").await);
    let lebenslauf_funnel = funnel(&page, "Jürgen's Lebenslauf").await;
    for stage in ["Asked: 2", "Mailed: 2", "Opened: 1", "Downloaded: 1"] {
        assert!(lebenslauf_funnel.contains(stage), "{lebenslauf_funnel}");
    }
    let resume_funnel = funnel(&page, "Jane Doe's resume").await;
    for stage in ["Asked: 1", "Mailed: 1", "Opened: 0", "Downloaded: 0"] {
        assert!(resume_funnel.contains(stage), "{resume_funnel}");
    }
    let log = page.text("#log").await;
    let (john_at, jane_at) = (log.find(JOHN).expect(JOHN), log.find(JANE).expect(JANE));
    assert!(john_at < jane_at, "newest first: {log}");
    assert_eq!(log.matches("Link usable").count(), 2, "{log}");
    assert!(log.contains("Downloaded "), "{log}");
    assert!(!page.exists("#pending").await, "nothing waits yet");
    photograph(&page, &home, "owner", "owner").await;

    // Two people ask for the reviewed document: the owner is mailed, the page lists both.
    for email in [ANN, BOB] {
        assert_eq!(app.request_link(email, "reviewed").await.status(), 202);
    }
    let asks = eventually("the owner's two mails", Duration::from_secs(10), || async {
        let asks: Vec<Mail> = mails_to(&sink, OWNER)
            .into_iter()
            .filter(|m| m.subject == "Approve a request for A reviewed document?")
            .collect();
        (asks.len() == 2).then_some(asks)
    })
    .await;
    for email in [ANN, BOB] {
        let ask = asks.iter().find(|a| a.text.contains(email)).expect(email);
        assert!(ask.text.contains("/approvals/"), "{}", ask.text);
    }
    photograph(&page, &home, "owner", "owner-pending").await;
    let pending = page.text("#pending").await;
    for email in [ANN, BOB] {
        assert!(
            pending.contains(&format!("{email} asks for A reviewed document")),
            "{pending}"
        );
    }

    // Approved on the page: Ann gets the usual link mail, and her download works.
    decide(&page, ANN, "approve").await;
    assert!(page.text("#flash").await.contains("Approved"));
    let approved = mail(&sink, ANN, 1).await;
    assert!(approved.link.contains("/d/"), "{}", approved.text);
    let pending = page.text("#pending").await;
    assert!(!pending.contains(ANN) && pending.contains(BOB), "{pending}");
    assert!(page.text("#log").await.contains("Approved: link mailed"));
    photograph(&page, &page.url().await, "owner", "owner-approved").await;
    let download = app.client.get(&approved.link).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("Reviewed.pdf")
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), content(2, 4096));

    // Declined on the page: Bob gets the polite note, no link; nothing waits any more.
    decide(&page, BOB, "decline").await;
    assert!(page.text("#flash").await.contains("Declined"));
    let note = mail(&sink, BOB, 1).await;
    assert_eq!(note.subject, "Your request for A reviewed document");
    assert!(note.link.is_empty(), "no link: {}", note.text);
    assert!(!page.exists("#pending").await);
    // Each decided request is counted once: two asked, one mailed and downloaded.
    assert_eq!(page.goto(&home).await, 200);
    let reviewed = funnel(&page, "A reviewed document").await;
    for stage in ["Asked: 2", "Mailed: 1", "Opened: 1", "Downloaded: 1"] {
        assert!(reviewed.contains(stage), "{reviewed}");
    }

    // Jane's view, searched by her address: one link revoked with its button, then all of hers.
    page.type_into("#email", JANE).await;
    click_to(&page, "#search button", "owner").await;
    assert!(
        page.url()
            .await
            .ends_with("/?email=jane.owner%40example.com&document=")
    );
    let log = page.text("#log").await;
    assert!(log.contains(JANE) && !log.contains(JOHN), "{log}");
    assert_eq!(
        page.eval("document.querySelectorAll('form[action=\"/revoke\"]').length")
            .await,
        2
    );
    click_to(&page, "form[action='/revoke'] button", "owner").await;
    assert!(page.text("#flash").await.contains("revoked"));
    assert_eq!(download_status(&app, &lebenslauf).await, 410, "the newest");
    let other = app.client.head(&resume).send().await.unwrap();
    assert_eq!(other.status(), 200, "the other one stays usable");
    photograph(&page, &page.url().await, "owner", "owner-person").await;
    click_to(&page, "form[action='/revoke-all'] button", "owner").await;
    assert!(page.text("#flash").await.starts_with("1 usable link"));
    assert!(!page.exists("form[action='/revoke']").await);
    assert_eq!(download_status(&app, &resume).await, 410);

    // Her data exported, as the admin API gives it.
    let before = exported(&app, JANE).await;
    assert!(before >= 2, "her two requests at least: {before}");
    let mark = browser.mark();
    page.click("#export").await;
    let (name, json) = browser.wait_for_next_download(mark).await;
    assert_eq!(name, "docgate-person.json");
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["entries"].as_array().unwrap().len(), before, "{json}");

    // Erasing her data: the confirmation step, then gone.
    click_to(&page, "form[action='/erase'] button", "owner-erase").await;
    for viewport in [Viewport::Desktop, Viewport::Phone] {
        page.set_viewport(viewport).await;
        check_page(&page, "owner-erase").await;
        shoot(&page, "owner-erase", viewport).await;
    }
    assert_eq!(exported(&app, JANE).await, before, "nothing erased yet");
    click_to(&page, "form[action='/erase'] button", "owner").await;
    assert_eq!(
        page.text("#flash").await,
        format!("{before} entries erased.")
    );
    for link in [&resume, &lebenslauf] {
        assert_eq!(
            download_status(&app, link).await,
            410,
            "her links stay dead"
        );
    }
    assert_eq!(exported(&app, JANE).await, 0);
    let log = page.text("#log").await;
    assert!(!log.contains(JANE) && log.contains(JOHN), "{log}");

    // Nothing else was mailed: to each person their link or note, to the owner the two
    // requests to decide and a notice of each completed download.
    mail_drained(&app).await;
    for (to, n) in [(JANE, 2), (JOHN, 1), (ANN, 1), (BOB, 1)] {
        assert_eq!(mails_to(&sink, to).len(), n, "mails to {to}");
    }
    let mut subjects: Vec<String> = mails_to(&sink, OWNER)
        .into_iter()
        .map(|m| m.subject)
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "A reviewed document was downloaded",
            "Approve a request for A reviewed document?",
            "Approve a request for A reviewed document?",
            "Jürgen's Lebenslauf was downloaded",
        ]
    );
    assert_eq!(sink.messages().len(), 9);
}
