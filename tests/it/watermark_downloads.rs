//! Watermarked downloads over real HTTP (embedded mode): a PDF with `watermark = true` in the
//! catalog is sent as its original bytes followed by an update naming the recipient, checked with
//! `qpdf --check` and `pdftotext`; `Content-Length`, `HEAD`, per-copy `ETag`s and `Range` resumes
//! of the stamped copy; a PDF that cannot be stamped refused (the link not spent) or served
//! unstamped (the owner's log says so), as `DOCGATE_WATERMARK_FALLBACK` chooses; and a document
//! without a watermark served byte for byte as before.

use docgate::store::LinkState;
use tempfile::TempDir;

use crate::support::pdf::{page_text, pages_text, pdf, plain_pages, qpdf, qpdf_check};
use crate::support::s3::S3Server;
use crate::support::{TestApp, now, token_of};

const PAGES: usize = 40;

/// A test server whose catalog also offers `cv` (a plain PDF of [`PAGES`] pages) and `locked`
/// (the same PDF encrypted by qpdf), both watermarked, with `settings` on top. Returns the
/// server, the directory holding the documents, and the two originals' bytes.
async fn server(settings: &[(&str, &str)]) -> (TestApp, TempDir, Vec<u8>, Vec<u8>) {
    let docs = tempfile::tempdir().unwrap();
    let dir = docs.path();
    // The usual fixtures, plus the watermarked documents.
    crate::support::write_fixtures(dir);
    let original = pdf(&plain_pages(PAGES));
    std::fs::write(dir.join("documents/cv.pdf"), &original).unwrap();
    qpdf(
        &dir.join("documents/cv.pdf"),
        &dir.join("documents/locked.pdf"),
        &["--encrypt", "", "owner", "256", "--"],
    );
    let locked = std::fs::read(dir.join("documents/locked.pdf")).unwrap();
    let mut catalog = std::fs::read_to_string(dir.join("catalog.toml")).unwrap();
    for (id, key) in [("cv", "cv.pdf"), ("locked", "locked.pdf")] {
        catalog.push_str(&format!(
            "\n[documents.{id}]\nkey = \"{key}\"\nfilename = \"{key}\"\ntitle = \"A CV\"\n\
             watermark = true\n"
        ));
    }
    std::fs::write(dir.join("catalog.toml"), catalog).unwrap();
    let catalog_path = dir.join("catalog.toml").display().to_string();
    let documents = dir.join("documents").display().to_string();
    let mut env = vec![
        ("DOCGATE_CATALOG", catalog_path.as_str()),
        ("DOCGATE_DOCUMENTS_DIR", documents.as_str()),
        ("DOCGATE_CONFIRM_PAGE", "off"),
    ];
    env.extend_from_slice(settings);
    (TestApp::with(&env).await, docs, original, locked)
}

/// Today's stamp for `email` with the default text.
fn stamp_for(email: &str) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    format!(
        "Downloaded by {email} on {:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// Checks a stamped copy with the real tools: the original is a prefix, `qpdf --check` finds no
/// problem, and `pdftotext` finds on every page its original text and the recipient's stamp.
fn check_stamped(copy: &[u8], original: &[u8], email: &str) {
    assert!(copy.len() > original.len());
    assert_eq!(
        &copy[..original.len()],
        original,
        "the original bytes first"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.pdf");
    std::fs::write(&path, copy).unwrap();
    qpdf_check(&path);
    let pages = pages_text(&path);
    assert_eq!(pages.len(), PAGES);
    let stamp = stamp_for(email);
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(&page_text(i + 1)), "page {}: {page:?}", i + 1);
        assert!(page.contains(&stamp), "page {}: {page:?}", i + 1);
    }
}

fn jti(app: &TestApp, link: &str) -> docgate::token::Jti {
    app.app.codec.verify(token_of(link), now()).unwrap().jti
}

#[tokio::test]
async fn a_watermarked_download_names_its_recipient_on_every_page() {
    let (app, _docs, original, _) = server(&[]).await;
    let link = app.link("ann@example.com", "cv").await;

    let head = app.head(&link).await;
    assert_eq!(head.status(), 200);
    let announced: usize = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let head_etag = head.headers()["etag"].to_str().unwrap().to_owned();

    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), head_etag);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let copy = response.bytes().await.unwrap();
    assert_eq!(copy.len(), length, "Content-Length is exact");
    assert_eq!(length, announced, "HEAD reports the stamped length");
    check_stamped(&copy, &original, "ann@example.com");

    // Spent by that download, as any link.
    assert_eq!(app.get(&link).await.status(), 410);
    let log = app.wait_for_log(2).await;
    let download = log
        .iter()
        .find(|e| e.outcome == "completed")
        .expect("the download's entry");
    assert_eq!(download.watermark.as_deref(), Some("stamped"));
}

#[tokio::test]
async fn each_recipient_gets_their_own_copy_and_etag() {
    let (app, _docs, original, _) = server(&[]).await;
    let ann = app.link("ann@example.com", "cv").await;
    let bob = app.link("bob@example.org", "cv").await;
    let a = app.get(&ann).await;
    let b = app.get(&bob).await;
    let (etag_a, etag_b) = (a.headers()["etag"].clone(), b.headers()["etag"].clone());
    assert_ne!(etag_a, etag_b, "one validator per copy");
    let (a, b) = (a.bytes().await.unwrap(), b.bytes().await.unwrap());
    assert_ne!(a, b);
    check_stamped(&a, &original, "ann@example.com");
    check_stamped(&b, &original, "bob@example.org");
    let b_text = String::from_utf8_lossy(&b);
    assert!(!b_text.contains("ann@example.com"));
}

#[tokio::test]
async fn a_range_resume_of_a_stamped_copy_gives_the_same_bytes_as_one_download() {
    let (app, _docs, original, _) = server(&[]).await;
    let whole = app.download(&app.link("ann@example.com", "cv").await).await;
    let total = whole.len();
    let o = original.len();

    let link = app.link("ann@example.com", "cv").await;
    // The first part, cut mid-way through the original: the link stays usable.
    let first = app.get_range(&link, &format!("bytes=0-{}", o / 2)).await;
    assert_eq!(first.status(), 206);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let mut got = first.bytes().await.unwrap().to_vec();
    assert_eq!(
        app.released(&jti(&app, &link)).await,
        LinkState::Ready { started: 1 }
    );

    // A range across the boundary of the original and the update.
    let middle = app
        .get_with(
            &link,
            &[
                ("range", &format!("bytes={}-{}", o / 2 + 1, o + 9)),
                ("if-range", &etag),
            ],
        )
        .await;
    assert_eq!(middle.status(), 206);
    assert_eq!(
        middle.headers()["content-range"].to_str().unwrap(),
        format!("bytes {}-{}/{total}", o / 2 + 1, o + 9)
    );
    got.extend_from_slice(&middle.bytes().await.unwrap());
    app.released(&jti(&app, &link)).await;

    // The rest, resumed as a download manager does: it ends the copy and spends the link.
    let rest = app.resume(&link, o + 10, &etag).await;
    assert_eq!(rest.status(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(got.len(), total);
    assert!(got == whole, "the resumed copy is the one-piece copy");
    assert_eq!(app.released(&jti(&app, &link)).await, LinkState::Used);
}

#[tokio::test]
async fn if_range_with_another_validator_gets_the_whole_stamped_copy() {
    let (app, _docs, original, _) = server(&[]).await;
    let link = app.link("ann@example.com", "cv").await;
    let head = app.head(&link).await;
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    // The original's own ETag (as a plain download of it would have sent) is not this copy's.
    let plain_etag = format!(
        "\"{}\"",
        etag.trim_matches('"').rsplit_once("-w").unwrap().0
    );
    let response = app.resume(&link, 100, &plain_etag).await;
    assert_eq!(response.status(), 200, "no splice of two copies");
    check_stamped(
        &response.bytes().await.unwrap(),
        &original,
        "ann@example.com",
    );
}

#[tokio::test]
async fn an_encrypted_pdf_is_refused_by_default_and_the_link_not_spent() {
    let (app, docs, _, _) = server(&[]).await;
    let link = app.link("ann@example.com", "locked").await;
    let mails = app.outbox().len();
    for _ in 0..2 {
        let response = app.get(&link).await;
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "document_not_stampable");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("has not been used"), "{message}");
        assert!(!message.contains("locked.pdf") && !message.contains("encrypt"));
    }
    assert_eq!(app.head(&link).await.status(), 503);
    assert_eq!(
        app.released(&jti(&app, &link)).await,
        LinkState::Ready { started: 0 },
        "nothing started, nothing spent"
    );
    app.idle().await;
    assert_eq!(app.outbox().len(), mails, "no mail");
    let log = app.request_log();
    assert!(log.iter().any(|e| e.outcome == "document_not_stampable"));
    assert!(!log.iter().any(|e| e.outcome == "completed"));

    // The owner replaces the file with one that can be stamped: the same link now works.
    let fixed = pdf(&plain_pages(PAGES));
    std::fs::write(docs.path().join("documents/locked.pdf"), &fixed).unwrap();
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    check_stamped(&response.bytes().await.unwrap(), &fixed, "ann@example.com");
}

#[tokio::test]
async fn a_link_whose_recipient_is_unknown_gets_the_fallback() {
    // A link without a request in the log (erased, aged out, or made without one) names nobody.
    let (app, _docs, original, _) = server(&[]).await;
    let (claims, link) = app.mint("cv").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "document_not_stampable");
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );

    let (app, _docs, _, _) = server(&[("DOCGATE_WATERMARK_FALLBACK", "serve")]).await;
    let (_, link) = app.mint("cv").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap() == original, "unstamped");
}

#[tokio::test]
async fn an_encrypted_pdf_is_served_unstamped_when_the_owner_chose_so() {
    let (app, _docs, _, locked) = server(&[
        ("DOCGATE_WATERMARK_FALLBACK", "serve"),
        ("DOCGATE_ADMIN_TOKEN", crate::admin::TOKEN),
    ])
    .await;
    let link = app.link("ann@example.com", "locked").await;
    let head = app.head(&link).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        locked.len().to_string()
    );
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.unwrap() == locked,
        "the original bytes"
    );
    let log = app.wait_for_log(2).await;
    let download = log
        .iter()
        .find(|e| e.outcome == "completed")
        .expect("the download's entry");
    assert_eq!(download.watermark.as_deref(), Some("unstamped"));
    // And the owner reads it with the request.
    let (status, page) = crate::admin::json_of(crate::admin::call(
        &app,
        reqwest::Method::GET,
        "/admin/requests",
    ))
    .await;
    assert_eq!(status, 200);
    let row = &page["entries"][0];
    assert_eq!(row["email"], "ann@example.com");
    assert_eq!(row["download"], "completed");
    assert_eq!(row["watermark"], "unstamped");
}

#[tokio::test]
async fn a_document_without_watermark_is_served_as_before() {
    let (app, docs, _, _) = server(&[]).await;
    let file = std::fs::read(docs.path().join("documents/resume/Jane_Doe_Resume.pdf")).unwrap();
    let link = app.link("ann@example.com", "resume").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(!etag.contains("-w"), "the object's own validator: {etag}");
    assert!(response.bytes().await.unwrap() == file, "byte for byte");
    let log = app.wait_for_log(2).await;
    let download = log
        .iter()
        .find(|e| e.outcome == "completed")
        .expect("the download's entry");
    assert_eq!(download.watermark, None);
}

#[tokio::test]
async fn a_replaced_document_is_read_again() {
    let (app, docs, original, _) = server(&[]).await;
    let first = app.download(&app.link("ann@example.com", "cv").await).await;
    assert_eq!(&first[..original.len()], original);

    let replaced = pdf(&plain_pages(PAGES + 2));
    std::fs::write(docs.path().join("documents/cv.pdf"), &replaced).unwrap();
    let copy = app.download(&app.link("ann@example.com", "cv").await).await;
    assert_eq!(&copy[..replaced.len()], replaced, "the new version's bytes");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.pdf");
    std::fs::write(&path, &copy).unwrap();
    qpdf_check(&path);
    let pages = pages_text(&path);
    assert_eq!(pages.len(), PAGES + 2);
    let stamp = stamp_for("ann@example.com");
    assert!(pages.iter().all(|page| page.contains(&stamp)));
}

#[tokio::test]
async fn the_confirm_page_shows_the_size_of_the_stamped_copy() {
    use crate::support::probe::{get_as_browser, page_name};
    use docgate::texts::measures;

    let (app, _docs, original, _) = server(&[("DOCGATE_CONFIRM_PAGE", "on")]).await;
    let link = app.link("ann@example.com", "cv").await;
    let (status, _, page) = get_as_browser(&app, &link).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page_name(&page), "confirm");

    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let length: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let copy = response.bytes().await.unwrap();
    check_stamped(&copy, &original, "ann@example.com");
    // The update is large enough to show: the page names the copy's size, not the original's.
    let (copy_size, original_size) = (
        measures::size(length),
        measures::size(original.len() as u64),
    );
    assert_ne!(copy_size, original_size);
    assert!(
        page.contains(&format!("<dd>{copy_size}</dd>")),
        "{copy_size} (not {original_size}): {page}"
    );
}

/// A loopback TCP proxy in front of the S3 server that notes the request line of every request
/// sent through it. docgate's requests to a bucket are `GET`s and `HEAD`s, which have no body, so
/// each request is a head ending with an empty line.
struct RequestLines {
    addr: std::net::SocketAddr,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RequestLines {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let noted = lines.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(Self::relay(client, upstream, noted.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, lines, task }
    }

    async fn relay(
        client: tokio::net::TcpStream,
        upstream: std::net::SocketAddr,
        lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
            return;
        };
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let up = async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut pending: Vec<u8> = Vec::new();
            while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    lines.lock().unwrap().push(line);
                    pending.drain(..end + 4);
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        };
        let down = async move {
            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            let _ = to_client.shutdown().await;
        };
        tokio::join!(up, down);
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The methods of the requests for `key` so far.
    fn methods_for(&self, key: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(&format!("/{key}")))
            .map(|line| line.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for RequestLines {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// docgate in front of `s3` reached at `endpoint` (the server itself, or a proxy in front of it),
/// with the fixtures' objects and catalog plus `cv`: `original`, watermarked; `settings` on top.
/// Returns the server and the directory holding its catalog.
async fn on_s3(
    s3: &S3Server,
    endpoint: &str,
    original: &[u8],
    settings: &[(&str, &str)],
) -> (TestApp, TempDir) {
    s3.put_fixtures().await;
    s3.put("cv.pdf", original).await;
    let dir = tempfile::tempdir().unwrap();
    crate::support::write_fixtures(dir.path());
    let catalog_path = dir.path().join("catalog.toml");
    let mut catalog = std::fs::read_to_string(&catalog_path).unwrap();
    catalog.push_str(
        "\n[documents.cv]\nkey = \"cv.pdf\"\nfilename = \"cv.pdf\"\ntitle = \"A CV\"\n\
         content_type = \"application/pdf\"\nwatermark = true\n",
    );
    std::fs::write(&catalog_path, catalog).unwrap();
    let catalog_path = catalog_path.display().to_string();
    let mut env = crate::support::s3::bucket_settings(endpoint).to_vec();
    env.extend_from_slice(&[
        ("DOCGATE_CATALOG", &catalog_path),
        ("DOCGATE_CONFIRM_PAGE", "off"),
    ]);
    env.extend_from_slice(settings);
    (TestApp::with(&env).await, dir)
}

#[tokio::test]
async fn a_watermarked_download_makes_one_object_request_like_any_other() {
    use crate::support::RESUME_LEN;

    let s3 = S3Server::start().await;
    let original = pdf(&plain_pages(PAGES));
    let proxy = RequestLines::start(s3.addr).await;
    let (app, _dir) = on_s3(&s3, &proxy.endpoint(), &original, &[]).await;
    let gets = |n: usize| vec!["GET".to_owned(); n];
    // The links first: a link request checks that its document is in the bucket (a `HEAD`), and
    // so does startup; those are not the downloads'.
    let resume = app.link("ann@example.com", "resume").await;
    let mut links = Vec::new();
    for email in [
        "ann@example.com",
        "bob@example.org",
        "cy@example.net",
        "dee@example.com",
        "eve@example.org",
    ] {
        links.push((email, app.link(email, "cv").await));
    }
    proxy.lines.lock().unwrap().clear();

    // A document without a watermark: one request, its `GET`.
    let plain = app.download(&resume).await;
    assert_eq!(plain.len(), RESUME_LEN);
    assert_eq!(proxy.methods_for("resume/Jane_Doe_Resume.pdf"), gets(1));

    // The first watermarked download reads the document (the whole object, once), then sends
    // the copy: two `GET`s, no `HEAD`.
    let (email, link) = &links[0];
    let first = app.download(link).await;
    check_stamped(&first, &original, email);
    assert_eq!(proxy.methods_for("cv.pdf"), gets(2));
    // Every later one: its own `GET`, nothing more.
    for (n, (email, link)) in links[1..3].iter().enumerate() {
        let copy = app.download(link).await;
        check_stamped(&copy, &original, email);
        assert_eq!(proxy.methods_for("cv.pdf"), gets(3 + n), "{email}");
    }

    // Replaced in the bucket: the next download's `GET` finds another version, and the download
    // reads it and sends a copy of it, as a first download would have. On S3 that is four
    // `GET`s, once per replacement: the copy's range conditional on the old version (`If-Match`,
    // S3 has no `If-Range`) answered `412`, the whole object the source then falls back to
    // (left unread), the new version's read, the copy. The one after is back to one.
    let replaced = pdf(&plain_pages(PAGES + 1));
    s3.put("cv.pdf", &replaced).await;
    let copy = app.download(&links[3].1).await;
    assert_eq!(&copy[..replaced.len()], replaced, "the new version's bytes");
    assert_eq!(proxy.methods_for("cv.pdf"), gets(8));
    let copy = app.download(&links[4].1).await;
    assert_eq!(&copy[..replaced.len()], replaced);
    assert_eq!(proxy.methods_for("cv.pdf"), gets(9));
}

#[tokio::test]
async fn on_s3_and_redis_the_stamped_copy_streams_from_the_bucket_and_resumes() {
    use crate::support::redis::RedisServer;

    let s3 = S3Server::start().await;
    let original = pdf(&plain_pages(PAGES));
    let redis = RedisServer::start();
    let url = redis.url();
    let (app, _dir) = on_s3(
        &s3,
        &s3.endpoint(),
        &original,
        &[("DOCGATE_REDIS_URL", &url)],
    )
    .await;

    let whole = app.download(&app.link("ann@example.com", "cv").await).await;
    check_stamped(&whole, &original, "ann@example.com");

    let link = app.link("ann@example.com", "cv").await;
    let o = original.len();
    let first = app.get_range(&link, &format!("bytes=0-{}", o - 5)).await;
    assert_eq!(first.status(), 206);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let mut got = first.bytes().await.unwrap().to_vec();
    app.wait_for_head(&link, 200).await;
    let rest = app.resume(&link, o - 4, &etag).await;
    assert_eq!(rest.status(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert!(got == whole, "the resumed copy is the one-piece copy");
    assert_eq!(app.get(&link).await.status(), 410, "spent by its last byte");
}

/// A one-page PDF of about `len` bytes: the page draws `page_text(1)`, and an object nothing
/// refers to pads the file, so a download of it can be cut off mid-way.
fn padded_pdf(len: usize) -> Vec<u8> {
    use crate::support::pdf::Writer;
    let mut w = Writer::new();
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    w.object(
        2,
        "<< /Type /Pages /Kids [10 0 R] /Count 1 /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 3 0 R >> >> >>",
    );
    w.object(
        3,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
    );
    w.object(10, "<< /Type /Page /Parent 2 0 R /Contents 11 0 R >>");
    w.stream(
        11,
        &format!("BT /F1 12 Tf 72 500 Td ({}) Tj ET", page_text(1)),
    );
    w.stream(20, &"%".repeat(len));
    w.finish("/Root 1 0 R")
}

#[tokio::test]
async fn a_cut_off_stamped_download_resumes_into_the_same_copy() {
    use crate::support::PartialGet;

    let (app, docs, _, _) = server(&[]).await;
    let original = padded_pdf(16 * 1024 * 1024);
    std::fs::write(docs.path().join("documents/cv.pdf"), &original).unwrap();
    let whole = app.download(&app.link("ann@example.com", "cv").await).await;
    assert_eq!(&whole[..original.len()], original);

    let link = app.link("ann@example.com", "cv").await;
    let first = PartialGet::start(&app, &link, &[], 2 * 1024 * 1024).await;
    assert_eq!(first.status, 200);
    let (etag, mut got) = app.cut_off(first, &link).await;
    assert!(got.len() < original.len(), "cut inside the original");
    let rest = app.resume(&link, got.len(), &etag).await;
    assert_eq!(rest.status(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(got.len(), whole.len());
    assert!(got == whole, "the resumed copy is the one-piece copy");
    assert_eq!(app.get(&link).await.status(), 410, "spent by its last byte");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.pdf");
    std::fs::write(&path, &got).unwrap();
    qpdf_check(&path);
    let pages = pages_text(&path);
    assert_eq!(pages.len(), 1);
    assert!(
        pages[0].contains(&stamp_for("ann@example.com")),
        "{pages:?}"
    );
    assert!(pages[0].contains(&page_text(1)));
}
