//! The PDF stamp engine (`docgate::watermark`) on real PDFs of many layouts, checked with real PDF
//! tools: the tests write small PDFs themselves, let Debian's `qpdf` make other layouts of them
//! (object and cross-reference streams, linearized), take others from other producers (Chromium's
//! printing, cairo, poppler), append a recipient's update, and check the result with `qpdf
//! --check` (no errors, no warning the original lacked) and poppler's `pdftotext` (the stamp on
//! every page, upright at the bottom of the page as shown, the original text unchanged): see
//! [`stamp_and_check`]. Signed PDFs are in `watermark_signed.rs`, what cannot be stamped in
//! `watermark_refusals.rs`. A missing tool fails the test with the package to install
//! (`scripts/test` installs them all).

use std::process::Command;
use std::time::Instant;

use docgate::watermark::{self, MAX_DOCUMENT_BYTES, XrefKind};

use crate::support::pdf::*;

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
