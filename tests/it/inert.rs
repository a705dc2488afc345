//! Served bytes cannot act on docgate's origin: an HTML or SVG document served `inline` arrives
//! with `Content-Security-Policy: default-src 'none'; sandbox` and `nosniff` (every download
//! does: `200`, `206` and `HEAD`); in a real browser its script does not run and its origin is
//! opaque, while a PDF served inline still opens in Chromium's viewer.

use std::collections::HashMap;
use std::path::Path;

use crate::support::chrome::Browser;
use crate::support::*;

/// A page whose script, if it ran, would change the title and reach docgate's API.
const PAGE: &str = r#"<!doctype html><html><head><title>inert</title></head><body>
<p id="text">a served document</p>
<script>document.title = "script ran"; fetch("/api/download-requests", {method: "POST"});</script>
</body></html>"#;

const IMAGE: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
<script>document.title = "script ran"</script><rect width="10" height="10"/></svg>"#;

/// A server offering `page` (HTML) and `image` (SVG) inline, with no confirm page.
async fn serving_active_documents(dir: &Path) -> TestApp {
    write_fixtures(dir);
    std::fs::write(dir.join("documents/page.html"), PAGE).unwrap();
    std::fs::write(dir.join("documents/image.svg"), IMAGE).unwrap();
    let catalog = format!(
        "{CATALOG}\n{}",
        r#"
[documents.page]
key = "page.html"
filename = "page.html"
title = "A page"
content_type = "text/html"

[documents.image]
key = "image.svg"
filename = "image.svg"
title = "An image"
"#
    );
    std::fs::write(dir.join("catalog.toml"), catalog).unwrap();
    let catalog = dir.join("catalog.toml").display().to_string();
    let documents = dir.join("documents").display().to_string();
    TestApp::with(&[
        ("DOCGATE_CATALOG", &catalog),
        ("DOCGATE_DOCUMENTS_DIR", &documents),
        ("DOCGATE_DISPOSITION", "inline"),
        ("DOCGATE_CONFIRM_PAGE", "off"),
    ])
    .await
}

fn headers_of(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn html_and_svg_served_inline_carry_the_sandbox_policy_on_every_download_response() {
    let dir = tempfile::tempdir().unwrap();
    let app = serving_active_documents(dir.path()).await;
    for (document, content_type, body) in [
        ("page", "text/html", PAGE),
        ("image", "image/svg+xml", IMAGE),
    ] {
        let (_, link) = app.mint(document).await;
        let head = app.head(&link).await;
        let partial = app
            .client
            .get(&link)
            .header("Range", "bytes=0-9")
            .send()
            .await
            .unwrap();
        assert_eq!(partial.status(), 206, "{document}");
        let partial_headers = headers_of(&partial);
        assert_eq!(partial.bytes().await.unwrap(), body.as_bytes()[..10]);
        let whole = app.get(&link).await;
        assert_eq!(whole.status(), 200, "{document}");
        let whole_headers = headers_of(&whole);
        assert_eq!(whole.text().await.unwrap(), body);
        for (what, status, headers) in [
            ("HEAD", head.status().as_u16(), headers_of(&head)),
            ("206", 206, partial_headers),
            ("200", 200, whole_headers),
        ] {
            let at = format!("{document} {what} ({status})");
            assert!(matches!(status, 200 | 206), "{at}");
            assert_eq!(
                headers["content-security-policy"], "default-src 'none'; sandbox",
                "{at}"
            );
            assert_eq!(headers["x-content-type-options"], "nosniff", "{at}");
            assert!(headers["content-type"].starts_with(content_type), "{at}");
            assert!(
                headers["content-disposition"].starts_with("inline;"),
                "{at}"
            );
        }
    }
    // The policy is the download's: docgate's own pages keep theirs.
    let form = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    let policy = headers_of(&form)["content-security-policy"].clone();
    assert!(!policy.contains("sandbox"), "{policy}");
}

#[tokio::test]
async fn a_script_inside_a_served_html_document_does_not_run_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let app = serving_active_documents(dir.path()).await;
    let (_, link) = app.mint("page").await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    assert_eq!(page.goto(&link).await, 200);
    // The document is shown (DevTools reads it), its script did not run, and its origin is
    // opaque: nothing in it can act as docgate's origin.
    assert_eq!(page.text("#text").await, "a served document");
    assert_eq!(page.eval("document.title").await, "inert");
    assert_eq!(page.eval("window.origin").await, "null");
    // Every link request reaching docgate is counted, refused or not (a script's bodiless POST
    // would be 415): none arrived. The page is loaded, so a script would have sent it by now;
    // a few looks bound the check.
    for _ in 0..5 {
        let (_, series) = crate::support::scrape(&app).await;
        let asked: f64 = series
            .iter()
            .filter(|(name, _)| name.starts_with("docgate_link_requests_total"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(asked, 0.0, "the page's script reached the API");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A one-page PDF whose page says `HELLO PDF`.
fn pdf() -> Vec<u8> {
    let stream = "BT /F1 48 Tf 72 600 Td (HELLO PDF) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out += &format!("{} 0 obj\n{object}\nendobj\n", i + 1);
    }
    let xref = out.len();
    out += &format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        out += &format!("{offset:010} 00000 n \n");
    }
    out += &format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.into_bytes()
}

#[tokio::test]
async fn a_pdf_served_inline_under_the_policy_opens_in_chromiums_viewer() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    std::fs::write(dir.path().join("documents/resume/lebenslauf.pdf"), pdf()).unwrap();
    let catalog = dir.path().join("catalog.toml").display().to_string();
    let documents = dir.path().join("documents").display().to_string();
    let app = TestApp::with(&[
        ("DOCGATE_CATALOG", &catalog),
        ("DOCGATE_DOCUMENTS_DIR", &documents),
        ("DOCGATE_DISPOSITION", "inline"),
        ("DOCGATE_CONFIRM_PAGE", "off"),
    ])
    .await;
    let (_, link) = app.mint("lebenslauf").await;
    let browser = Browser::launch().await;
    let page = browser.new_page().await;
    assert_eq!(page.goto(&link).await, 200);
    // The viewer is an extension frame inside the page, which loads the document itself; a
    // policy that blocked it would leave neither. (Screenshots of the page with no policy,
    // `sandbox` and `default-src 'none'; sandbox` were compared by hand: identical.)
    let mut found = serde_json::Value::Null;
    for _ in 0..100 {
        let targets = page.call("Target.getTargets", serde_json::json!({})).await;
        let frames: Vec<&serde_json::Value> = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["type"] == "iframe")
            .collect();
        let viewer = frames.iter().any(|t| {
            t["url"].as_str().is_some_and(|u| {
                u.starts_with("chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai/")
            })
        });
        if viewer && frames.iter().any(|t| t["url"] == link.as_str()) {
            found = targets;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !found.is_null(),
        "Chromium's PDF viewer did not open the document"
    );
}
