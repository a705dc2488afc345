//! Signed PDFs through the stamp engine (`docgate::watermark`), judged by a real signature
//! validator: pyHanko signs test PDFs (an approval signature; certifications through its Python
//! API), and validates the stamped copies with its difference analysis under its default policy.
//! A signed PDF's stamp is a read-only field's widget annotation per page, not page content, and
//! the copy must still validate; a certified PDF is not stamped at all. pyHanko is on PyPI only
//! (`scripts/test` installs it into a venv and puts it on `PATH`); a missing tool fails the test
//! with what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use docgate::watermark::{self, CannotStamp, MAX_DOCUMENT_BYTES, XrefKind};
use lopdf::{Document, Object};
use tempfile::TempDir;

use crate::support::pdf::*;

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

/// The Python of the venv pyHanko's command line is in (its API, for what the command line
/// cannot do).
fn pyhanko_python() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("pyhanko").is_file())
        .map(|dir| dir.join("python"))
        .expect("pyhanko on PATH (scripts/test installs it into a venv)")
}

/// A self-signed signing key and certificate in `dir`: `key.pem`, `cert.pem`.
fn signer(dir: &TempDir) {
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
}

/// `unsigned` signed by pyHanko with an approval signature (a visible field on page 1).
fn sign(dir: &TempDir, unsigned: &Path, name: &str) -> Vec<u8> {
    let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
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
        unsigned.to_str().expect("UTF-8"),
        &path(name),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    std::fs::read(path(name)).expect("pyHanko's output")
}

/// pyHanko's validation of the signature in `file`, its difference analysis included (what was
/// added after the signed revision, judged under its default policy): whether it passed, and its
/// report.
fn validate(dir: &TempDir, file: &str) -> (bool, String) {
    let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
    let out = pyhanko(&[
        "sign",
        "validate",
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
}

/// Checks with lopdf that every page of `stamped` ends its `/Annots` with the stamp: a widget of
/// one read-only signature field, printed, read-only and locked, whose appearance draws `line`;
/// and that the pages' content streams are the original's.
fn assert_annotated(original: &[u8], stamped: &[u8], line: &str) {
    let before = Document::load_mem(original).expect("lopdf reads the original");
    let after = Document::load_mem(stamped).expect("lopdf reads the stamped copy");
    let pages = after.get_pages();
    assert_eq!(pages.len(), before.get_pages().len());
    let mut field = None;
    for (number, id) in pages {
        let page = after.get_dictionary(id).expect("a page");
        let was = before.get_dictionary(id).expect("the same page");
        assert_eq!(
            page.get(b"Contents").ok(),
            was.get(b"Contents").ok(),
            "page {number}: its contents are untouched"
        );
        let annots = page
            .get(b"Annots")
            .and_then(Object::as_array)
            .expect("the page's /Annots");
        let widget = annots
            .last()
            .and_then(|a| a.as_reference().ok())
            .and_then(|id| after.get_dictionary(id).ok())
            .expect("the stamp's widget");
        assert_eq!(
            widget.get(b"Subtype").and_then(Object::as_name).ok(),
            Some(&b"Widget"[..])
        );
        assert_eq!(
            widget.get(b"F").and_then(Object::as_i64).ok(),
            Some(4 | 64 | 128 | 512)
        );
        let parent = widget
            .get(b"Parent")
            .and_then(Object::as_reference)
            .expect("its field");
        assert!(
            *field.get_or_insert(parent) == parent,
            "one field for all pages"
        );
        let appearance = widget
            .get(b"AP")
            .and_then(Object::as_dict)
            .and_then(|ap| ap.get(b"N"))
            .and_then(Object::as_reference)
            .and_then(|id| after.get_object(id))
            .and_then(Object::as_stream)
            .expect("its appearance stream");
        let drawn = String::from_utf8_lossy(&appearance.content).into_owned();
        assert!(
            drawn.contains(&format!("({line}) Tj")),
            "page {number}: {drawn}"
        );
    }
    let field = after
        .get_dictionary(field.expect("a field"))
        .expect("the field");
    assert_eq!(
        field.get(b"FT").and_then(Object::as_name).ok(),
        Some(&b"Sig"[..])
    );
    assert_eq!(field.get(b"Ff").and_then(Object::as_i64).ok(), Some(1));
}

#[test]
fn a_signed_pdf_keeps_its_signature_valid_once_stamped() {
    let dir = scratch();
    signer(&dir);
    // Pages of several shapes, to see the annotation honour /Rotate and the CropBox.
    let pages = [
        PageSpec::default(),
        PageSpec {
            rotate: Some(90),
            crop_box: Some([50, 60, 550, 700]),
            ..PageSpec::default()
        },
        PageSpec {
            rotate: Some(180),
            media_box: Some([0, 0, 842, 595]),
            ..PageSpec::default()
        },
        PageSpec {
            rotate: Some(270),
            ..PageSpec::default()
        },
    ];
    let unsigned = write(&dir, "unsigned.pdf", &pdf(&pages));
    let packed = dir.path().join("packed.pdf");
    qpdf(&unsigned, &packed, &["--object-streams=generate"]);
    for (name, source, kind) in [
        ("signed", &unsigned, XrefKind::Table),
        ("signed-objstm", &packed, XrefKind::Stream),
    ] {
        let original = sign(&dir, source, &format!("{name}.pdf"));
        let (valid, report) = validate(&dir, &format!("{name}.pdf"));
        assert!(
            valid && report.contains("The signature covers the entire file."),
            "{report}"
        );
        let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
        assert!(structure.signed());
        // Not an assertion: what the report quotes.
        let update = structure.stamp(STAMP);
        eprintln!(
            "{name}: {} pages: keeps {} bytes; an update of {} bytes, {} of them its own",
            structure.pages(),
            structure.kept_bytes(),
            update.len(),
            update.own_len()
        );

        // qpdf --check, and pdftotext finding the line on every page, upright in the bottom
        // margin as shown, the pages' own text unchanged.
        let stamped = stamp_and_check(&dir, name, &original, kind);
        assert_annotated(&original, &stamped, STAMP);
        let file = format!("{name}-copy.pdf");
        write(&dir, &file, &stamped);

        // The signed revision, its bytes untouched, validates (digest, signature and trust), and
        // so does the whole copy, the stamp judged by pyHanko's difference analysis (its default
        // policy): a change a signature allows, the kind of a form being filled in.
        let (valid, report) = validate(&dir, &file);
        assert!(
            valid
                && report.contains("The signature is cryptographically sound.")
                && report.contains("The signature does not cover the entire file.")
                && report.contains(
                    "All modifications relate to signing and form filling operations, and they \
                     appear to be compatible with the current document modification policy."
                )
                && report.contains("The signature is judged VALID"),
            "{name}: {report}"
        );

        // A stamped copy stamped again (a copy passed on and served by another docgate) is
        // still a signed PDF whose stamps a validator accepts.
        let again = [
            stamped.clone(),
            watermark::read(&stamped, MAX_DOCUMENT_BYTES)
                .expect("stampable")
                .stamp("Downloaded by john@example.com on 2026-12-06")
                .to_vec(),
        ]
        .concat();
        assert_annotated(
            &stamped,
            &again,
            "Downloaded by john@example.com on 2026-12-06",
        );
        let file = format!("{name}-twice.pdf");
        write(&dir, &file, &again);
        qpdf_check(&dir.path().join(&file));
        let (valid, report) = validate(&dir, &file);
        assert!(
            valid && report.contains("The signature is judged VALID"),
            "{name}: {report}"
        );
    }
}

#[test]
fn an_unsigned_pdf_is_stamped_on_its_pages_not_with_annotations() {
    let original = pdf(&plain_pages(2));
    let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
    assert!(!structure.signed());
    let update = structure.stamp(STAMP).to_vec();
    let tail = String::from_utf8_lossy(&update);
    assert!(
        !tail.contains("/Widget") && !tail.contains("/FT /Sig"),
        "{tail}"
    );
    assert!(tail.contains("/Contents["), "{tail}");
}

/// The script certifying a PDF with pyHanko's API: `python - KEY CERT IN OUT P`.
const CERTIFY: &str = "
import sys
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
key, cert, src, out, p = sys.argv[1:]
signer = signers.SimpleSigner.load(key, cert)
meta = signers.PdfSignatureMetadata(
    field_name='Certification', certify=True, docmdp_permissions=MDPPerm(int(p)))
with open(src, 'rb') as f, open(out, 'wb') as o:
    signers.sign_pdf(IncrementalPdfFileWriter(f), meta, signer=signer, output=o)
";

#[test]
fn a_certified_pdf_is_not_stamped() {
    let dir = scratch();
    signer(&dir);
    let path = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
    write(&dir, "unsigned.pdf", &pdf(&plain_pages(2)));
    // No changes at all (P=1), or only filling in and signing the fields it has (P=2): neither
    // allows a new field, nor new page content.
    for p in ["1", "2"] {
        let out = Command::new(pyhanko_python())
            .args(["-c", CERTIFY])
            .args([
                &path("key.pem"),
                &path("cert.pem"),
                &path("unsigned.pdf"),
                &path(&format!("certified-{p}.pdf")),
                p,
            ])
            .output()
            .expect("pyHanko's Python");
        assert!(
            out.status.success(),
            "P={p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let certified = std::fs::read(path(&format!("certified-{p}.pdf"))).expect("certified");
        assert!(String::from_utf8_lossy(&certified).contains("/DocMDP"));
        let refused = watermark::read(&certified, MAX_DOCUMENT_BYTES);
        assert!(
            matches!(refused, Err(CannotStamp::Certified)),
            "P={p}: {refused:?}"
        );
    }
}

/// `original` with an incremental update replacing or adding `objects` (number, body), chained
/// by `/Prev`: one xref subsection per object.
fn updated(original: &[u8], objects: &[(u32, &str)]) -> Vec<u8> {
    let prev = startxref(original);
    let mut out = original.to_vec();
    let mut xref = String::from("xref\n");
    for (number, body) in objects {
        xref.push_str(&format!("{number} 1\n{:010} 00000 n\r\n", out.len()));
        out.extend_from_slice(format!("{number} 0 obj\n{body}\nendobj\n").as_bytes());
    }
    let at = out.len();
    out.extend_from_slice(
        format!(
            "{xref}trailer\n<< /Size 5002 /Prev {prev} /Root 1 0 R /Info 4 0 R >>\n\
             startxref\n{at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    out
}

#[test]
fn a_signed_pdf_with_its_form_in_the_catalog_and_indirect_annotations_is_stamped() {
    // The form written in the catalog itself, a field already named like the stamp's (a copy
    // stamped before), and a page whose /Annots is a reference to an array holding a link.
    let dir = scratch();
    let original = updated(
        &pdf(&plain_pages(2)),
        &[
            (
                1,
                "<< /Type /Catalog /Pages 2 0 R /AcroForm << /SigFlags 3 /Fields [4990 0 R] >> >>",
            ),
            (4990, "<< /FT /Sig /T (DocgateWatermark) >>"),
            (4991, "[4992 0 R]"),
            (
                4992,
                "<< /Type /Annot /Subtype /Link /Rect [72 600 200 620] /Border [0 0 0] \
                 /A << /S /URI /URI (https://example.com/) >> >>",
            ),
            (
                10,
                "<< /Type /Page /Parent 2 0 R /Contents 11 0 R /Annots 4991 0 R >>",
            ),
        ],
    );
    let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).expect("stampable");
    assert!(structure.signed());
    let stamped = stamp_and_check(&dir, "catalog-form", &original, XrefKind::Table);
    assert_annotated(&original, &stamped, STAMP);

    let doc = Document::load_mem(&stamped).expect("lopdf reads the stamped copy");
    let page = doc
        .get_dictionary(doc.get_pages()[&1])
        .expect("the first page");
    let annots = page
        .get(b"Annots")
        .and_then(Object::as_array)
        .expect("its annotations");
    assert_eq!(annots.len(), 2, "the link kept, the stamp after it");
    assert_eq!(annots[0].as_reference().ok(), Some((4992, 0)));
    let form = doc
        .catalog()
        .and_then(|c| c.get(b"AcroForm"))
        .and_then(Object::as_dict)
        .expect("the form, still in the catalog");
    assert_eq!(form.get(b"SigFlags").and_then(Object::as_i64).ok(), Some(3));
    let fields = form
        .get(b"Fields")
        .and_then(Object::as_array)
        .expect("its fields");
    assert_eq!(fields.len(), 2);
    let name = fields[1]
        .as_reference()
        .and_then(|id| doc.get_dictionary(id))
        .and_then(|field| field.get(b"T"))
        .and_then(Object::as_str)
        .expect("the new field's name");
    assert_eq!(name, b"DocgateWatermark1");
}
