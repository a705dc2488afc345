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

use crate::support::pdf::*;

const STAMP: &str = "Downloaded by jane.doe@example.com on 2026-12-05";

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
