//! docgate in a real browser (headless Chromium, `chrome.rs`): the journey as a person makes it,
//! with and without JavaScript, downloads landing on disk, and screenshots of every page.

use crate::chrome::{Browser, Viewport, png_size};
use crate::support::*;

#[tokio::test]
async fn a_link_opened_in_the_browser_downloads_the_document_to_disk() {
    let app = TestApp::start().await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    let link = app.link("visitor@example.org", "lebenslauf").await;
    page.goto_download(&link).await;
    let bytes = browser
        .wait_for_download("Lebenslauf Jürgen Müller.pdf")
        .await;
    assert_eq!(sha256(&bytes), sha256(&content(2, 4096)));

    let status = page.goto(&link).await;
    assert_eq!(status, 410);
    assert_eq!(page.lang().await, "en");
    assert_eq!(page.text("h1").await, "Link already used");
    assert!(
        page.console_problems().is_empty(),
        "{:?}",
        page.console_problems()
    );
    for viewport in Viewport::ALL {
        page.set_viewport(viewport).await;
        let png = page.screenshot().await;
        assert_eq!(png_size(&png), viewport.pixels());
    }
}
