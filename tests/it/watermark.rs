//! The PDF stamp engine (`docgate::watermark`) on real PDFs, checked with real PDF tools: the
//! tests write small PDFs themselves, let Debian's `qpdf` make other layouts of them (object and
//! cross-reference streams, linearized, encrypted), take others from other producers (Chromium's
//! printing, cairo, poppler), append a recipient's update, and check the result with `qpdf
//! --check` (no errors, no warning the original lacked) and poppler's `pdftotext` (the stamp on
//! every page, upright at the bottom of the page as shown, the original text unchanged). A signed
//! PDF is signed and its signature validated with pyHanko. A missing tool fails the test with the
//! package to install (`scripts/test` installs them all).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use docgate::watermark::{self, CannotStamp, MAX_DOCUMENT_BYTES, XrefKind};
use tempfile::TempDir;

const STAMP: &str = "Downloaded by jane.doe@example.com on 2026-12-05";

// ---------------------------------------------------------------------------------------------
// Writing PDFs

/// One page of a test PDF.
#[derive(Clone, Default)]
struct PageSpec {
    rotate: Option<i64>,
    /// Its own MediaBox; without one it inherits the page tree's (US Letter).
    media_box: Option<[i64; 4]>,
    crop_box: Option<[i64; 4]>,
    /// Its own resources (the font as /F1); without them it inherits the tree's.
    own_resources: bool,
    /// Content the page starts with, left unbalanced in the graphics state (no `q`/`Q`).
    prefix: &'static str,
    contents: Layout,
}

/// How a test page's `/Contents` is written.
#[derive(Clone, Copy, Default)]
enum Layout {
    /// One stream.
    #[default]
    Stream,
    /// An array of two streams, the text split between them.
    Array,
    /// A reference to such an array.
    IndirectArray,
    /// No `/Contents`: a blank page.
    Blank,
}

/// Writes objects, remembering their offsets, and ends with a classic xref table.
struct Writer {
    out: Vec<u8>,
    offsets: Vec<(u32, usize)>,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            out: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec(),
            offsets: Vec::new(),
        }
    }

    fn object(&mut self, number: u32, body: &str) {
        self.offsets.push((number, self.out.len()));
        self.out
            .extend_from_slice(format!("{number} 0 obj\n{body}\nendobj\n").as_bytes());
    }

    fn stream(&mut self, number: u32, data: &str) {
        self.object(
            number,
            &format!("<< /Length {} >>\nstream\n{data}\nendstream", data.len()),
        );
    }

    /// The xref table for every object written, the trailer and `%%EOF`.
    fn finish(mut self, trailer: &str) -> Vec<u8> {
        self.offsets.sort();
        let size = self.offsets.last().map_or(1, |(n, _)| n + 1);
        let start = self.out.len();
        let mut xref = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
        let mut next = 1;
        for (number, offset) in &self.offsets {
            while next < *number {
                xref.push_str("0000000000 65535 f\r\n");
                next += 1;
            }
            xref.push_str(&format!("{offset:010} 00000 n\r\n"));
            next = number + 1;
        }
        self.out.extend_from_slice(xref.as_bytes());
        self.out.extend_from_slice(
            format!("trailer\n<< /Size {size} {trailer} >>\nstartxref\n{start}\n%%EOF\n")
                .as_bytes(),
        );
        self.out
    }
}

/// The text the original draws on page `i` (1-based).
fn page_text(i: usize) -> String {
    format!("Original page {i} text")
}

/// A PDF of `pages`, with a classic xref table: the page tree holds the MediaBox and the font
/// resources the pages inherit unless they have their own; each page draws `page_text`.
fn pdf(pages: &[PageSpec]) -> Vec<u8> {
    let mut w = Writer::new();
    let first_page = 10u32;
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", first_page + 2 * i as u32))
        .collect();
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    w.object(
        2,
        &format!(
            "<< /Type /Pages /Kids [{}] /Count {} /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 3 0 R >> >> >>",
            kids.join(" "),
            pages.len()
        ),
    );
    w.object(
        3,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>",
    );
    w.object(
        4,
        "<< /Producer (docgate tests) /Title (A test \\(document\\)) >>",
    );
    for (i, page) in pages.iter().enumerate() {
        let number = first_page + 2 * i as u32;
        // Objects a split content needs, numbered apart from the pages'.
        let second = 5000 + 2 * i as u32;
        let mut dict = match page.contents {
            Layout::Stream => format!("<< /Type /Page /Parent 2 0 R /Contents {} 0 R", number + 1),
            Layout::Array => format!(
                "<< /Type /Page /Parent 2 0 R /Contents [{} 0 R {second} 0 R]",
                number + 1
            ),
            Layout::IndirectArray => {
                w.object(second + 1, &format!("[{} 0 R {second} 0 R]", number + 1));
                format!("<< /Type /Page /Parent 2 0 R /Contents {} 0 R", second + 1)
            }
            Layout::Blank => "<< /Type /Page /Parent 2 0 R".to_owned(),
        };
        if let Some(r) = page.rotate {
            dict.push_str(&format!(" /Rotate {r}"));
        }
        if let Some([a, b, c, d]) = page.media_box {
            dict.push_str(&format!(" /MediaBox [{a} {b} {c} {d}]"));
        }
        if let Some([a, b, c, d]) = page.crop_box {
            dict.push_str(&format!(" /CropBox [{a} {b} {c} {d}]"));
        }
        if page.own_resources {
            // A font named as the stamp's would be, so the stamp must pick another name.
            dict.push_str(" /Resources << /Font << /F1 3 0 R /DocgateStamp 3 0 R >> >>");
        }
        dict.push_str(" >>");
        w.object(number, &dict);
        let [x0, y0, _, y1] = page.crop_box.or(page.media_box).unwrap_or([0, 0, 612, 792]);
        let start = format!(
            "{}BT /F1 12 Tf {} {} Td",
            page.prefix,
            x0 + 72,
            y1 - (y1 - y0) / 3
        );
        let end = format!("({}) Tj ET", page_text(i + 1));
        match page.contents {
            Layout::Stream => w.stream(number + 1, &format!("{start} {end}")),
            Layout::Array | Layout::IndirectArray => {
                w.stream(number + 1, &start);
                w.stream(second, &end);
            }
            Layout::Blank => {}
        }
    }
    w.finish("/Root 1 0 R /Info 4 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]")
}

fn plain_pages(n: usize) -> Vec<PageSpec> {
    vec![PageSpec::default(); n]
}

/// Appends a hand-written incremental update to `original`: page 1's content replaced by a new
/// stream (object 9), with a classic xref section chained by `/Prev`.
fn with_earlier_update(original: &[u8]) -> Vec<u8> {
    let prev = startxref(original);
    let mut out = original.to_vec();
    let data = format!("BT /F1 12 Tf 72 500 Td ({}) Tj ET", page_text(1));
    let stream_at = out.len();
    out.extend_from_slice(
        format!(
            "9 0 obj\n<< /Length {} >>\nstream\n{data}\nendstream\nendobj\n",
            data.len()
        )
        .as_bytes(),
    );
    let page_at = out.len();
    out.extend_from_slice(b"10 0 obj\n<< /Type /Page /Parent 2 0 R /Contents 9 0 R >>\nendobj\n");
    let xref_at = out.len();
    out.extend_from_slice(
        format!(
            "xref\n9 2\n{stream_at:010} 00000 n\r\n{page_at:010} 00000 n\r\n\
             trailer\n<< /Size 14 /Prev {prev} /Root 1 0 R /Info 4 0 R >>\n\
             startxref\n{xref_at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    out
}

/// The offset the last `startxref` of `pdf` names.
fn startxref(pdf: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(pdf);
    let at = text.rfind("startxref").expect("a startxref");
    text[at + "startxref".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a startxref offset")
}

// ---------------------------------------------------------------------------------------------
// Real tools

/// Runs `program` with `args`, failing the test with the Debian package to install when the
/// program is missing.
fn run(program: &str, package: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install the `{package}` package (scripts/test does)"
            )
        })
}

/// `qpdf` with `args` on `input`, writing `output`; the test fails unless qpdf succeeds.
fn qpdf(input: &Path, output: &Path, args: &[&str]) {
    let mut all: Vec<&str> = args.to_vec();
    all.push(input.to_str().expect("a UTF-8 path"));
    all.push(output.to_str().expect("a UTF-8 path"));
    let out = run("qpdf", "qpdf", &all);
    assert!(
        out.status.success(),
        "qpdf {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qpdf --check`: the file's structure, every object and every content stream are readable, with
/// no error and no warning (exit status 0).
fn qpdf_check(path: &Path) {
    let warnings = qpdf_warnings(path);
    assert!(warnings.is_empty(), "qpdf --check warns: {warnings:?}");
}

/// `qpdf --check` with no error (exit status 0, or 3 for warnings only): its warnings, without
/// the file's name.
fn qpdf_warnings(path: &Path) -> Vec<String> {
    let name = path.to_str().expect("a UTF-8 path");
    let out = run("qpdf", "qpdf", &["--check", name]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "qpdf --check found errors (status {:?}):\n{stdout}\n{stderr}",
        out.status.code(),
    );
    assert!(
        out.status.code() == Some(3)
            || stdout.contains("No syntax or stream encoding errors found"),
        "{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.starts_with("WARNING"))
        .map(|line| line.replace(name, "FILE"))
        .collect()
}

/// Each page's text as poppler's `pdftotext` extracts it.
fn pages_text(path: &Path) -> Vec<String> {
    let out = run(
        "pdftotext",
        "poppler-utils",
        &[path.to_str().expect("a UTF-8 path"), "-"],
    );
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("pdftotext writes UTF-8");
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    // The output ends with a form feed after the last page.
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

/// A word `pdftotext -bbox` found, in the page's coordinates as shown (origin at the top left,
/// after `/Rotate`).
#[derive(Debug)]
struct Word {
    text: String,
    x_min: f64,
    y_min: f64,
    x_max: f64,
    y_max: f64,
}

/// Each page's `/Rotate` (0, 90, 180 or 270), as poppler's `pdfinfo` reads it.
fn rotations(path: &Path) -> Vec<u32> {
    let out = run(
        "pdfinfo",
        "poppler-utils",
        &[
            "-f",
            "1",
            "-l",
            "100000",
            path.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.starts_with("Page") && line.contains(" rot:"))
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|r| r.trim().parse().ok())
                .expect("a rotation")
        })
        .collect()
}

/// Per page: its width and height as shown, and its words.
fn words(path: &Path) -> Vec<((f64, f64), Vec<Word>)> {
    let out = run(
        "pdftotext",
        "poppler-utils",
        &[
            "-bbox",
            "-cropbox",
            path.to_str().expect("a UTF-8 path"),
            "-",
        ],
    );
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).expect("UTF-8");
    let rotations = rotations(path);
    let attr = |tag: &str, name: &str| -> f64 {
        let key = format!("{name}=\"");
        let at = tag.find(&key).expect("the attribute") + key.len();
        tag[at..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    let mut pages = Vec::new();
    for page in html.split("<page ").skip(1) {
        // pdftotext gives the page's size before /Rotate, and the words' boxes after it.
        let size = (attr(page, "width"), attr(page, "height"));
        let size = match rotations.get(pages.len()) {
            Some(90 | 270) => (size.1, size.0),
            _ => size,
        };
        let mut found = Vec::new();
        for word in page.split("<word ").skip(1) {
            let text = word
                .split('>')
                .nth(1)
                .and_then(|t| t.split('<').next())
                .unwrap_or_default()
                .replace("&amp;", "&");
            found.push(Word {
                text,
                x_min: attr(word, "xMin"),
                y_min: attr(word, "yMin"),
                x_max: attr(word, "xMax"),
                y_max: attr(word, "yMax"),
            });
        }
        pages.push((size, found));
    }
    pages
}

// ---------------------------------------------------------------------------------------------
// Stamping and checking

/// A directory of its own for one test's files.
fn scratch() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write a test PDF");
    path
}

/// Stamps `original` with [`STAMP`], checks the result with the real tools against the
/// original, and returns it.
fn stamp_and_check(dir: &TempDir, name: &str, original: &[u8], kind: XrefKind) -> Vec<u8> {
    let structure = watermark::read(original, MAX_DOCUMENT_BYTES).expect("a stampable PDF");
    assert_eq!(
        structure.xref_kind(),
        kind,
        "{name}: the last xref section's kind"
    );
    assert_eq!(
        structure.startxref(),
        startxref(original),
        "{name}: startxref"
    );
    let update = structure.stamp(STAMP);
    let mut stamped = original.to_vec();
    for chunk in update.chunks() {
        stamped.extend_from_slice(&chunk);
    }
    assert_eq!(
        stamped.len() as u64,
        structure.original_len() + update.len()
    );
    assert!(
        stamped.starts_with(original),
        "{name}: the original is a prefix"
    );

    let before = write(dir, &format!("{name}.pdf"), original);
    let after = write(dir, &format!("{name}-stamped.pdf"), &stamped);
    // The files these tests write are clean; another producer's may have warnings already
    // (pdfunite writes a wrong /Size): the stamped copy adds none.
    let warned = qpdf_warnings(&before);
    let warnings = qpdf_warnings(&after);
    assert!(
        warnings.iter().all(|w| warned.contains(w)),
        "{name}: qpdf --check warns of the stamped copy: {warnings:?} (the original: {warned:?})"
    );
    // The update's own cross-reference section is of the original's last kind.
    let tail = String::from_utf8_lossy(&stamped[original.len()..]).into_owned();
    match kind {
        XrefKind::Table => assert!(tail.contains("\nxref\n") && tail.contains("trailer")),
        XrefKind::Stream => assert!(tail.contains("/Type /XRef") && !tail.contains("trailer")),
    }
    assert!(tail.contains(&format!("/Prev {}", startxref(original))));

    let original_pages = pages_text(&before);
    let stamped_pages = pages_text(&after);
    assert_eq!(stamped_pages.len(), structure.pages(), "{name}: page count");
    assert_eq!(
        original_pages.len(),
        stamped_pages.len(),
        "{name}: page count"
    );
    for (i, (was, now)) in original_pages.iter().zip(&stamped_pages).enumerate() {
        assert!(
            now.contains(STAMP),
            "{name}: page {} lacks the stamp: {now:?}",
            i + 1
        );
        assert_eq!(
            now.replace(STAMP, "")
                .split_whitespace()
                .collect::<Vec<_>>(),
            was.split_whitespace().collect::<Vec<_>>(),
            "{name}: page {}'s own text changed",
            i + 1
        );
    }
    // On every page, as shown: the stamp's words are on one line, left to right, in the bottom
    // 20 pt, inside the page, small (7 pt).
    for (i, ((width, height), words)) in words(&after).iter().enumerate() {
        let stamp: Vec<&Word> = words
            .iter()
            .filter(|w| STAMP.split(' ').any(|part| part == w.text))
            .filter(|w| w.y_min > height - 30.0)
            .collect();
        assert_eq!(
            stamp.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
            STAMP.split(' ').collect::<Vec<_>>(),
            "{name}: page {} shows the stamp at its bottom, in order: {words:?}",
            i + 1
        );
        for w in &stamp {
            assert!(
                w.x_min >= 0.0 && w.x_max <= *width && w.y_max <= *height,
                "{name}: page {}: {w:?} outside {width}×{height}",
                i + 1
            );
            assert!(w.y_max > height - 20.0, "{name}: page {}: {w:?}", i + 1);
            let tall = w.y_max - w.y_min;
            assert!(
                (4.0..=10.0).contains(&tall) && w.x_max - w.x_min > tall,
                "{name}: page {}: {w:?} is not upright 7 pt text",
                i + 1
            );
        }
        for pair in stamp.windows(2) {
            assert!(
                pair[0].x_max < pair[1].x_min,
                "{name}: {pair:?} left to right"
            );
        }
    }
    stamped
}

#[test]
fn a_plain_pdf_gets_the_stamp_on_every_page() {
    let dir = scratch();
    let original = pdf(&plain_pages(3));
    stamp_and_check(&dir, "plain", &original, XrefKind::Table);
    let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
    assert!(!structure.signed());
}

#[test]
fn rotated_cropped_inheriting_and_split_pages_get_the_stamp_upright_at_the_bottom() {
    let dir = scratch();
    let pages = [
        PageSpec {
            rotate: Some(90),
            ..PageSpec::default()
        },
        PageSpec {
            rotate: Some(180),
            media_box: Some([0, 0, 842, 595]),
            own_resources: true,
            ..PageSpec::default()
        },
        PageSpec {
            rotate: Some(-90),
            crop_box: Some([50, 60, 550, 700]),
            ..PageSpec::default()
        },
        PageSpec {
            // Content that leaves the graphics state scaled, shifted and white.
            prefix: "3 0 0 3 -900 -900 cm 1 1 1 rg 1 1 1 RG 7 Tr ",
            ..PageSpec::default()
        },
        PageSpec {
            contents: Layout::Array,
            ..PageSpec::default()
        },
        PageSpec {
            contents: Layout::IndirectArray,
            rotate: Some(90),
            ..PageSpec::default()
        },
        PageSpec {
            contents: Layout::Blank,
            ..PageSpec::default()
        },
    ];
    let original = pdf(&pages);
    let stamped = stamp_and_check(&dir, "rotated", &original, XrefKind::Table);
    // The page that had a font named like the stamp's keeps it, and the stamp takes another.
    let tail = String::from_utf8_lossy(&stamped[original.len()..]).into_owned();
    assert!(tail.contains("/DocgateStamp 3 0 R"), "{tail}");
    assert!(tail.contains("/DocgateStamp1 "), "{tail}");
}

#[test]
fn object_streams_and_xref_streams_get_an_xref_stream_update() {
    let dir = scratch();
    let plain = write(&dir, "source.pdf", &pdf(&plain_pages(4)));
    let packed = dir.path().join("packed.pdf");
    qpdf(&plain, &packed, &["--object-streams=generate"]);
    let original = std::fs::read(&packed).expect("qpdf's output");
    assert!(String::from_utf8_lossy(&original).contains("/ObjStm"));
    stamp_and_check(&dir, "objstm", &original, XrefKind::Stream);
}

#[test]
fn pdfs_of_other_producers_get_the_stamp() {
    let dir = scratch();
    let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
    write(&dir, "source.pdf", &pdf(&plain_pages(2)));
    // Chromium's printing (Skia's PDF backend), as a browser's "Save as PDF" makes it.
    let html = "<html><body><p style=\"break-after: page\">Printed page one</p>\
                <p>Printed page two</p></body></html>";
    write(&dir, "page.html", html.as_bytes());
    std::fs::create_dir(path("home")).expect("a home directory");
    let chromium = crate::support::chrome::chromium_binary();
    let printed = Command::new("timeout")
        .arg("60")
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", path("profile")))
        .arg(format!("--print-to-pdf={}", path("chromium.pdf")))
        .arg(format!("file://{}", path("page.html")))
        .env("HOME", path("home"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {chromium:?} ({e}): install `chromium`"));
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    // Cairo's PDF surface (poppler's pdftocairo redraws every page) and poppler's own writer
    // (pdfunite builds a new page tree over both).
    let cairo = run(
        "pdftocairo",
        "poppler-utils",
        &["-pdf", &path("source.pdf"), &path("cairo.pdf")],
    );
    assert!(
        cairo.status.success(),
        "{}",
        String::from_utf8_lossy(&cairo.stderr)
    );
    let united = run(
        "pdfunite",
        "poppler-utils",
        &[
            &path("chromium.pdf"),
            &path("cairo.pdf"),
            &path("united.pdf"),
        ],
    );
    assert!(
        united.status.success(),
        "{}",
        String::from_utf8_lossy(&united.stderr)
    );
    for (name, producer) in [
        ("chromium", "Skia/PDF"),
        ("cairo", "cairo"),
        ("united", "pdfunite"),
    ] {
        let original = std::fs::read(path(&format!("{name}.pdf"))).expect("the producer's output");
        let info = run("pdfinfo", "poppler-utils", &[&path(&format!("{name}.pdf"))]);
        let info = String::from_utf8_lossy(&info.stdout).into_owned();
        assert!(
            info.contains(producer) || name == "united",
            "{name}: {info}"
        );
        stamp_and_check(&dir, &format!("{name}-copy"), &original, XrefKind::Table);
    }
}

#[test]
fn a_linearized_pdf_gets_the_stamp() {
    let dir = scratch();
    let plain = write(&dir, "source.pdf", &pdf(&plain_pages(3)));
    let linear = dir.path().join("linear.pdf");
    qpdf(&plain, &linear, &["--linearize"]);
    let original = std::fs::read(&linear).expect("qpdf's output");
    assert!(String::from_utf8_lossy(&original).contains("/Linearized"));
    stamp_and_check(&dir, "linearized", &original, XrefKind::Table);
}

#[test]
fn a_pdf_with_an_earlier_update_is_stamped_on_its_latest_revision() {
    let dir = scratch();
    let original = with_earlier_update(&pdf(&plain_pages(2)));
    let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
    assert_eq!(structure.startxref(), startxref(&original));
    stamp_and_check(&dir, "updated", &original, XrefKind::Table);
    // A stamped copy can itself be stamped again: its update chains to ours. (The first line is
    // empty, so the second is the only text the check finds at the bottom.)
    let stamped = {
        let mut out = original.clone();
        out.extend_from_slice(&structure.stamp("").to_vec());
        out
    };
    stamp_and_check(&dir, "twice", &stamped, XrefKind::Table);
}

#[test]
fn an_update_of_an_xref_stream_pdf_with_an_earlier_update() {
    let dir = scratch();
    let source = write(
        &dir,
        "source.pdf",
        &with_earlier_update(&pdf(&plain_pages(2))),
    );
    let packed = dir.path().join("packed.pdf");
    // qpdf rewrites the revisions into one; stamping twice gives a chain of two stream updates.
    qpdf(&source, &packed, &["--object-streams=generate"]);
    let original = std::fs::read(&packed).expect("qpdf's output");
    stamp_and_check(&dir, "stream-once", &original, XrefKind::Stream);
    let mut once = original.clone();
    once.extend_from_slice(
        &watermark::read(&original, MAX_DOCUMENT_BYTES)
            .expect("stampable")
            .stamp("")
            .to_vec(),
    );
    stamp_and_check(&dir, "stream-twice", &once, XrefKind::Stream);
}

#[test]
fn several_hundred_pages_are_stamped_with_a_small_update_per_page() {
    let dir = scratch();
    let pages = 400;
    let plain = pdf(&plain_pages(pages));
    let source = write(&dir, "source.pdf", &plain);
    let packed = dir.path().join("packed.pdf");
    qpdf(&source, &packed, &["--object-streams=generate"]);
    for (name, original, kind) in [
        ("many", plain.clone(), XrefKind::Table),
        (
            "many-objstm",
            std::fs::read(&packed).expect("qpdf's output"),
            XrefKind::Stream,
        ),
    ] {
        let started = Instant::now();
        let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
        let read = started.elapsed();
        let started = Instant::now();
        let update = structure.stamp(STAMP);
        let stamped = started.elapsed();
        assert_eq!(structure.pages(), pages);
        // Not a speed assertion: what the report quotes.
        eprintln!(
            "{name}: {} bytes, {pages} pages: read in {read:?} keeping {} bytes ({} per page); \
             one update in {stamped:?}: {} bytes ({} per page), {} of them its own",
            original.len(),
            structure.kept_bytes(),
            structure.kept_bytes() / pages,
            update.len(),
            update.len() / pages as u64,
            update.own_len(),
        );
        // Bounded by the pages, not the document: a rewritten page dictionary and its xref entry.
        assert!(update.len() < pages as u64 * 400, "{}", update.len());
        stamp_and_check(&dir, name, &original, kind);
    }
}

#[test]
fn a_structure_can_be_cached_and_shared_between_downloads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<watermark::Structure>();
    shared::<watermark::Update>();
}

#[test]
fn each_recipient_gets_their_own_line_and_the_same_length_for_the_same_text_length() {
    let structure = watermark::read(&pdf(&plain_pages(2)), MAX_DOCUMENT_BYTES).expect("stampable");
    let jane = structure.stamp("Downloaded by jane@example.com on 2026-12-05");
    let john = structure.stamp("Downloaded by john@example.com on 2026-12-05");
    assert_ne!(jane.to_vec(), john.to_vec());
    assert_eq!(jane.len(), john.len());
    // Computing an update twice gives the same bytes (a resumed download continues the same copy).
    assert_eq!(
        jane.to_vec(),
        structure
            .stamp("Downloaded by jane@example.com on 2026-12-05")
            .to_vec()
    );
}

#[test]
fn text_outside_winansi_becomes_question_marks_and_delimiters_are_escaped() {
    let dir = scratch();
    let original = pdf(&plain_pages(1));
    let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
    let line = "Zoë (Müller) \\ 日本 €";
    let mut stamped = original.clone();
    stamped.extend_from_slice(&structure.stamp(line).to_vec());
    let path = write(&dir, "latin.pdf", &stamped);
    qpdf_check(&path);
    let text = pages_text(&path).concat();
    assert!(text.contains("Zoë (Müller) \\ ?? €"), "{text:?}");
}

/// pyHanko's command line (PyPI's `pyhanko-cli`; Debian has no package), found on `PATH`.
fn pyhanko(args: &[&str]) -> std::process::Output {
    Command::new("pyhanko")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run pyhanko ({e}): install pyHanko (`pip install pyhanko-cli` in a venv on \
             PATH; scripts/test does)"
            )
        })
}

#[test]
fn a_signed_pdf_keeps_its_signature_valid_once_stamped() {
    let dir = scratch();
    let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
    let key = run(
        "openssl",
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=docgate test signer",
            "-keyout",
            &path("key.pem"),
            "-out",
            &path("cert.pem"),
        ],
    );
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    write(&dir, "unsigned.pdf", &pdf(&plain_pages(2)));
    let signed = pyhanko(&[
        "sign",
        "addsig",
        "--field",
        "1/72,72,272,122/Signature",
        "pemder",
        "--key",
        &path("key.pem"),
        "--cert",
        &path("cert.pem"),
        "--no-pass",
        &path("unsigned.pdf"),
        &path("signed.pdf"),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let original = std::fs::read(path("signed.pdf")).expect("pyHanko's output");
    let validate = |file: &str, diff: &str| {
        let out = pyhanko(&[
            "sign",
            "validate",
            diff,
            "--pretty-print",
            "--no-revocation-check",
            "--trust",
            &path("cert.pem"),
            "--trust-replace",
            &path(file),
        ]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (valid, report) = validate("signed.pdf", "--pretty-print");
    assert!(
        valid && report.contains("The signature covers the entire file."),
        "{report}"
    );

    assert!(
        watermark::read(&original, MAX_DOCUMENT_BYTES)
            .expect("stampable")
            .signed()
    );
    let stamped = stamp_and_check(&dir, "signed", &original, XrefKind::Table);
    write(&dir, "stamped.pdf", &stamped);
    // The signed revision, its bytes untouched, still validates: digest, signature and trust.
    let (valid, report) = validate("stamped.pdf", "--no-diff-analysis");
    assert!(valid, "{report}");
    assert!(
        report.contains("The signature is cryptographically sound."),
        "{report}"
    );
    assert!(report.contains("The signature is judged VALID"), "{report}");
    // pyHanko's analysis of what came after sees the stamp: the signature covers the revision
    // before it, not the whole file. (It then judges new page content outside an approval
    // signature's modification policy, as a validator that compares revisions will.)
    let (_, report) = validate("stamped.pdf", "--pretty-print");
    assert!(
        report.contains("The signature is cryptographically sound.")
            && report.contains("The signature does not cover the entire file."),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn encrypted_pdfs_are_refused() {
    let dir = scratch();
    let plain = write(&dir, "source.pdf", &pdf(&plain_pages(1)));
    for (name, user) in [("with-password", "secret"), ("empty-user-password", "")] {
        let encrypted = dir.path().join(format!("{name}.pdf"));
        qpdf(
            &plain,
            &encrypted,
            &["--encrypt", user, "owner", "256", "--"],
        );
        let bytes = std::fs::read(&encrypted).expect("qpdf's output");
        let refused = watermark::read(&bytes, MAX_DOCUMENT_BYTES);
        assert!(
            matches!(refused, Err(CannotStamp::Encrypted)),
            "{name}: {refused:?}"
        );
    }
}

#[test]
fn broken_pdfs_are_refused() {
    let good = pdf(&plain_pages(2));
    // Not a PDF at all.
    assert!(matches!(
        watermark::read(b"this is not a PDF", MAX_DOCUMENT_BYTES),
        Err(CannotStamp::Unreadable(_))
    ));
    // Cut short: no xref, no trailer.
    let cut = &good[..good.len() / 2];
    let refused = watermark::read(cut, MAX_DOCUMENT_BYTES);
    assert!(
        matches!(
            refused,
            Err(CannotStamp::Unreadable(_) | CannotStamp::Broken(_))
        ),
        "{refused:?}"
    );
    // Bytes inserted before the objects: every offset is wrong, the data must be rebuilt.
    let mut shifted = good.clone();
    shifted.splice(15..15, b"% a comment line\n".iter().copied());
    let refused = watermark::read(&shifted, MAX_DOCUMENT_BYTES);
    assert!(
        matches!(
            refused,
            Err(CannotStamp::Broken(_) | CannotStamp::Unreadable(_))
        ),
        "{refused:?}"
    );
    // A startxref a few bytes off: lopdf finds the table nearby, but an update's /Prev would
    // repeat the wrong offset to every other reader.
    let offset = startxref(&good);
    let tail = format!("startxref\n{offset}\n%%EOF\n");
    assert!(good.ends_with(tail.as_bytes()));
    let mut nudged = good[..good.len() - tail.len()].to_vec();
    nudged.extend_from_slice(format!("startxref\n{}\n%%EOF\n", offset - 3).as_bytes());
    let refused = watermark::read(&nudged, MAX_DOCUMENT_BYTES);
    assert!(
        matches!(refused, Err(CannotStamp::Broken(_))),
        "{refused:?}"
    );
    // A page with a quarter-and-a-bit rotation.
    let odd = pdf(&[PageSpec {
        rotate: Some(45),
        ..PageSpec::default()
    }]);
    assert!(matches!(
        watermark::read(&odd, MAX_DOCUMENT_BYTES),
        Err(CannotStamp::Broken(_))
    ));
}

#[test]
fn a_pdf_not_ending_with_a_line_break_gets_one_before_the_update() {
    let dir = scratch();
    let mut original = pdf(&plain_pages(1));
    assert_eq!(original.pop(), Some(b'\n'));
    let stamped = stamp_and_check(&dir, "no-eol", &original, XrefKind::Table);
    assert_eq!(stamped[original.len()], b'\n');
}

#[test]
fn damaged_pdfs_never_crash_the_reader() {
    // Cut short at many places, and with bytes overwritten here and there: each is read or
    // refused, and what is read can be stamped.
    let good = pdf(&plain_pages(3));
    let mut damaged: Vec<Vec<u8>> = (1..40)
        .map(|i| good[..good.len() * i / 40].to_vec())
        .collect();
    for i in 0..200 {
        let mut copy = good.clone();
        let at = (i * 7919) % copy.len();
        copy[at] = [b'(', b'<', b'0', b' ', 0xff, b']', b'/'][i % 7];
        damaged.push(copy);
    }
    let mut read = 0;
    for bytes in &damaged {
        if let Ok(structure) = watermark::read(bytes, MAX_DOCUMENT_BYTES) {
            assert!(structure.stamp(STAMP).len() > structure.pages() as u64 * 20);
            read += 1;
        }
    }
    // Most single-byte changes land in content or spacing the reader tolerates.
    assert!(
        read > 0 && read < damaged.len(),
        "{read} of {}",
        damaged.len()
    );
}

#[test]
fn a_pdf_without_pages_is_refused() {
    let refused = watermark::read(&pdf(&[]), MAX_DOCUMENT_BYTES);
    assert!(matches!(refused, Err(CannotStamp::NoPages)), "{refused:?}");
}

#[test]
fn a_pdf_over_the_limit_is_refused_before_it_is_parsed() {
    let original = pdf(&plain_pages(1));
    let limit = original.len() as u64 - 1;
    let refused = watermark::read(&original, limit);
    assert!(
        matches!(refused, Err(CannotStamp::TooLarge { size, limit: l }) if size == original.len() as u64 && l == limit),
        "{refused:?}"
    );
    assert!(watermark::read(&original, original.len() as u64).is_ok());
}
