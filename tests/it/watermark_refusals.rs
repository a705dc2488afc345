//! What the PDF stamp engine (`docgate::watermark`) refuses to stamp, and damage it survives:
//! encrypted PDFs (made with Debian's `qpdf`), broken, damaged, empty and oversized ones. Each is
//! refused with its reason ([`CannotStamp`]), never a crash; the caller's fallback decides.

use docgate::watermark::{self, CannotStamp, MAX_DOCUMENT_BYTES, XrefKind};

use crate::support::pdf::*;

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
