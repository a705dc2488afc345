//! Fuzzes `http::download::content_disposition`, which turns a catalog filename into the header
//! every download carries (`filename` an ASCII fallback, `filename*` the exact name).
//!
//! Input: the filename (UTF-8, lossily). Checks: no panic; for both dispositions the value is
//! printable ASCII and a valid header value; the plain `filename` is a quoted string holding no
//! quote or backslash; `filename*=UTF-8''` percent-decodes to the exact name.

#![no_main]

use docgate::config::Disposition;
use docgate::http::download::{ascii_filename, content_disposition};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    for disposition in [Disposition::Attachment, Disposition::Inline] {
        let value = content_disposition(&name, disposition);
        assert!(
            value.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{value:?}"
        );
        assert!(http::HeaderValue::from_str(&value).is_ok(), "{value:?}");
        let fallback = ascii_filename(&name);
        let plain = format!("; filename=\"{fallback}\"; filename*=UTF-8''");
        assert!(value.contains(&plain), "{value:?}");
        assert!(!fallback.contains(['"', '\\']), "{fallback:?}");
        let star = value
            .rsplit_once("filename*=UTF-8''")
            .map(|(_, s)| s)
            .unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(star).decode_utf8();
        assert_eq!(decoded.as_deref().ok(), Some(name.as_ref()), "{value:?}");
    }
});
