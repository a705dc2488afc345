//! The headers of a download's response (`200`, `206`, and `HEAD`'s): the document's type and
//! exact length, `Content-Disposition` with its name for every client (RFC 6266, RFC 8187 and an
//! ASCII fallback), the validator, `Accept-Ranges` and `Content-Range`, and the headers that keep
//! the owner's bytes from acting on docgate's origin (a sandboxing CSP, `nosniff`, `no-store`).

use http::{HeaderValue, Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Body;
use crate::catalog::Document;
use crate::config::Disposition;
use crate::objects::ObjectMeta;
use crate::range::ByteRange;

/// RFC 8187 `attr-char`: everything else in `filename*` is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `Content-Security-Policy` of every download (`200`, `206`, `HEAD`): the sandbox gives an
/// HTML or SVG document opened inline an opaque origin and no script, forms, popups or plugins;
/// `default-src 'none'` stops it loading anything either (no tracking pixel, no style from
/// elsewhere). Chromium's PDF viewer still opens a PDF served `inline` under it (tested).
pub const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox";

/// Status and headers for a document (or a range of it).
pub(super) fn headers(
    response: &mut Response<Body>,
    document: &Document,
    meta: &ObjectMeta,
    range: Option<ByteRange>,
    disposition: Disposition,
) {
    let len = range.map_or(meta.size, |r| r.len());
    let headers = response.headers_mut();
    let value = |s: &str| HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static(""));
    headers.insert(
        header::CONTENT_TYPE,
        value(document.content_type_for(meta.content_type.as_deref())),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&content_disposition(&document.filename, disposition)),
    );
    headers.insert(header::ETAG, value(&meta.etag));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The bytes are the owner's, not docgate's: an HTML or SVG document opened inline runs in a
    // unique opaque origin with no script and loads nothing, so it cannot act on docgate's
    // origin (its forms, its cookies, other links). `nosniff` keeps the declared type.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOWNLOAD_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(range) = range {
        headers.insert(
            header::CONTENT_RANGE,
            value(&range.content_range(meta.size)),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
}

/// `attachment` (or `inline`) with the name twice (RFC 6266): exact in `filename*` (RFC 8187,
/// UTF-8, percent-encoded), which browsers prefer; and in `filename` as the ASCII fallback of
/// appendix D, for clients that read only that one (`curl -OJ`): see [`ascii_filename`]. The
/// whole value is printable ASCII, whatever the name.
pub fn content_disposition(filename: &str, disposition: Disposition) -> String {
    let fallback = ascii_filename(filename);
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    let kind = match disposition {
        Disposition::Attachment => "attachment",
        Disposition::Inline => "inline",
    };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A filename's ASCII stand-in, safe inside a quoted string: letters transliterated by
/// `deunicode` (`Zoë Müller` → `Zoe Muller`, `ß` → `ss`, other scripts to their usual Latin
/// spelling), and anything else that is not printable ASCII, and `"` and `\`, replaced by `_`.
/// A header carrying raw UTF-8 bytes is read as ISO-8859-1 by many clients (`Zoë` arrives as
/// `ZoÃ«`) and refused by some proxies.
pub fn ascii_filename(filename: &str) -> String {
    deunicode::deunicode_with_tofu(filename, "_")
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            ' '..='~' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_encoded_for_every_client() {
        assert_eq!(
            content_disposition("Jane_Doe_Resume.pdf", Disposition::Attachment),
            "attachment; filename=\"Jane_Doe_Resume.pdf\"; filename*=UTF-8''Jane_Doe_Resume.pdf"
        );
        assert_eq!(
            content_disposition("Lebenslauf Jürgen \"JM\".pdf", Disposition::Attachment),
            "attachment; filename=\"Lebenslauf Jurgen _JM_.pdf\"; \
             filename*=UTF-8''Lebenslauf%20J%C3%BCrgen%20%22JM%22.pdf"
        );
        assert_eq!(
            content_disposition("Zoë Müller - Lebenslauf.pdf", Disposition::Attachment),
            "attachment; filename=\"Zoe Muller - Lebenslauf.pdf\"; \
             filename*=UTF-8''Zo%C3%AB%20M%C3%BCller%20-%20Lebenslauf.pdf"
        );
        assert_eq!(
            content_disposition("a b.pdf", Disposition::Inline),
            "inline; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
        );
    }

    #[test]
    fn the_plain_filename_is_an_ascii_transliteration() {
        for (name, ascii) in [
            ("Zoë Müller - Lebenslauf.pdf", "Zoe Muller - Lebenslauf.pdf"),
            ("Straße.pdf", "Strasse.pdf"),
            ("Ångström Æsir Øre.pdf", "Angstrom AEsir Ore.pdf"),
            ("Čapek Łódź.pdf", "Capek Lodz.pdf"),
            ("a\\b\"c.pdf", "a_b_c.pdf"),
            ("tab\there.pdf", "tab_here.pdf"),
            ("plain-ASCII_name (1).pdf", "plain-ASCII_name (1).pdf"),
        ] {
            assert_eq!(ascii_filename(name), ascii, "{name}");
        }
        for name in [
            "履歴書.pdf",
            "Résumé 😀.pdf",
            "\u{202E}fdp.exe",
            "\u{10FFFF}",
        ] {
            let ascii = ascii_filename(name);
            assert!(
                ascii.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{name}: {ascii:?}"
            );
            assert!(!ascii.contains(['"', '\\']), "{name}: {ascii:?}");
            let header = content_disposition(name, Disposition::Inline);
            assert!(HeaderValue::try_from(header.as_str()).is_ok(), "{header}");
            assert!(
                header.bytes().all(|b| (b' '..=b'~').contains(&b)),
                "{header}"
            );
        }
    }
}
