//! PDFs the tests write themselves, the real tools that check them (Debian's `qpdf`, poppler's
//! `pdftotext`), and the check of a stamped copy against its original with them
//! ([`stamp_and_check`]): shared by the stamp engine's tests (`watermark*.rs`) and the
//! watermarked downloads' (`watermark_downloads.rs`). A missing tool fails the test with the
//! package to install (`scripts/test` installs them all).

use std::path::{Path, PathBuf};
use std::process::Command;

use docgate::watermark::{self, MAX_DOCUMENT_BYTES, XrefKind};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Writing PDFs

/// One page of a test PDF.
#[derive(Clone, Default)]
pub struct PageSpec {
    pub rotate: Option<i64>,
    /// Its own MediaBox; without one it inherits the page tree's (US Letter).
    pub media_box: Option<[i64; 4]>,
    pub crop_box: Option<[i64; 4]>,
    /// Its own resources (the font as /F1); without them it inherits the tree's.
    pub own_resources: bool,
    /// Content the page starts with, left unbalanced in the graphics state (no `q`/`Q`).
    pub prefix: &'static str,
    pub contents: Layout,
}

/// How a test page's `/Contents` is written.
#[derive(Clone, Copy, Default)]
pub enum Layout {
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
pub struct Writer {
    pub out: Vec<u8>,
    pub offsets: Vec<(u32, usize)>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            out: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec(),
            offsets: Vec::new(),
        }
    }

    pub fn object(&mut self, number: u32, body: &str) {
        self.offsets.push((number, self.out.len()));
        self.out
            .extend_from_slice(format!("{number} 0 obj\n{body}\nendobj\n").as_bytes());
    }

    pub fn stream(&mut self, number: u32, data: &str) {
        self.object(
            number,
            &format!("<< /Length {} >>\nstream\n{data}\nendstream", data.len()),
        );
    }

    /// The xref table for every object written, the trailer and `%%EOF`.
    pub fn finish(mut self, trailer: &str) -> Vec<u8> {
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
pub fn page_text(i: usize) -> String {
    format!("Original page {i} text")
}

/// A PDF of `pages`, with a classic xref table: the page tree holds the MediaBox and the font
/// resources the pages inherit unless they have their own; each page draws `page_text`.
pub fn pdf(pages: &[PageSpec]) -> Vec<u8> {
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

pub fn plain_pages(n: usize) -> Vec<PageSpec> {
    vec![PageSpec::default(); n]
}

/// Appends a hand-written incremental update to `original`: page 1's content replaced by a new
/// stream (object 9), with a classic xref section chained by `/Prev`.
pub fn with_earlier_update(original: &[u8]) -> Vec<u8> {
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
pub fn startxref(pdf: &[u8]) -> u64 {
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
pub fn run(program: &str, package: &str, args: &[&str]) -> std::process::Output {
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
pub fn qpdf(input: &Path, output: &Path, args: &[&str]) {
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
pub fn qpdf_check(path: &Path) {
    let warnings = qpdf_warnings(path);
    assert!(warnings.is_empty(), "qpdf --check warns: {warnings:?}");
}

/// `qpdf --check` with no error (exit status 0, or 3 for warnings only): its warnings, without
/// the file's name.
pub fn qpdf_warnings(path: &Path) -> Vec<String> {
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
pub fn pages_text(path: &Path) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------------
// Stamping and checking

/// The line the engine's tests stamp.
pub const STAMP: &str = "Downloaded by jane.doe@example.com on 2026-12-05";

/// A word `pdftotext -bbox` found, in the page's coordinates as shown (origin at the top left,
/// after `/Rotate`).
#[derive(Debug)]
pub struct Word {
    pub text: String,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}

/// Each page's `/Rotate` (0, 90, 180 or 270), as poppler's `pdfinfo` reads it.
pub fn rotations(path: &Path) -> Vec<u32> {
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
pub fn words(path: &Path) -> Vec<((f64, f64), Vec<Word>)> {
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

/// A directory of its own for one test's files.
pub fn scratch() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

pub fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write a test PDF");
    path
}

/// Stamps `original` with [`STAMP`], checks the result with the real tools against the
/// original, and returns it.
pub fn stamp_and_check(dir: &TempDir, name: &str, original: &[u8], kind: XrefKind) -> Vec<u8> {
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
