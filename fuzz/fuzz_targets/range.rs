//! Fuzzes `Range` / `If-Range` handling (`docgate::range`), which reads two request headers of
//! every download and decides which bytes of a private object go out.
//!
//! Input: the `Range` value, optionally followed by `\n` and an `If-Range` value (text, lossily
//! decoded). Checks, against objects of several sizes: no panic; what parses is one well-formed
//! byte range that reads back the same from its canonical form; a selected range lies inside the
//! object, is non-empty, has the matching `Content-Range`, and equals the RFC 9110 reading of the
//! spec computed independently in 128 bits (the model in `tests/models/ranges.rs`, shared with the
//! property tests).

#![no_main]

use docgate::range::{self, RangeRequest, Spec};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/models/ranges.rs"]
mod model;

const ETAG: &str = "\"abc\"";
const SIZES: [u64; 9] = [0, 1, 2, 99, 100, 1000, 1 << 40, u64::MAX - 1, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (header, if_range) = match text.split_once('\n') {
        Some((header, if_range)) => (header, Some(if_range)),
        None => (&*text, None),
    };

    let spec = range::parse(header);
    if let Some(spec) = spec {
        assert!(!header.contains(','), "several ranges accepted: {header:?}");
        let canonical = match spec {
            Spec::Bounded(a, b) => {
                assert!(a <= b, "{header:?} gave {spec:?}");
                format!("bytes={a}-{b}")
            }
            Spec::From(a) => format!("bytes={a}-"),
            Spec::Suffix(n) => format!("bytes=-{n}"),
        };
        assert_eq!(range::parse(&canonical), Some(spec), "{header:?}");
    }

    let request = RangeRequest::from_headers(Some(header), if_range);
    assert_eq!(request.as_ref().map(|r| r.spec), spec);
    let Some(request) = request else { return };
    let honoured = request.if_range.as_deref().is_none_or(|v| v == ETAG);
    for size in SIZES {
        let selected = request.select(ETAG, size);
        if !honoured {
            assert_eq!(selected, Ok(None), "{text:?}");
            continue;
        }
        match (selected, model::range(request.spec, size)) {
            (Ok(Some(r)), Some((lo, hi))) => {
                assert!(r.start <= r.end && r.end < size, "{r:?} of {size}");
                assert!(!r.is_empty());
                assert_eq!((u128::from(r.start), u128::from(r.end) + 1), (lo, hi));
                assert_eq!(u128::from(r.len()), hi - lo);
                assert_eq!(
                    r.content_range(size),
                    format!("bytes {}-{}/{size}", r.start, r.end)
                );
            }
            (Err(e), None) => assert_eq!(e.size, size),
            (selected, expected) => {
                panic!("{text:?} against {size} bytes: {selected:?}, expected {expected:?}")
            }
        }
    }
});
