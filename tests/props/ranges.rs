//! The `Range` header: never panics, resolves like an independent model, round-trips, and
//! `If-Range` needs a strong match. The model is `tests/models/ranges.rs` (shared with the
//! `range` fuzz target).

use super::*;

/// The largest number the parser reads (19 digits); longer ones make the header ignored.
pub(crate) const MAX_RANGE_NUMBER: u64 = 9_999_999_999_999_999_999;

/// Numbers biased to the interesting places: small, near object sizes, near the limit.
pub(crate) fn range_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        0..5000u64,
        0..=MAX_RANGE_NUMBER,
        (MAX_RANGE_NUMBER - 20)..=MAX_RANGE_NUMBER,
    ]
}

pub(crate) fn object_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        0..5000u64,
        any::<u64>(),
        (u64::MAX - 20)..=u64::MAX
    ]
}

/// A spec the parser can produce.
pub(crate) fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (range_number(), range_number()).prop_map(|(a, b)| Spec::Bounded(a.min(b), a.max(b))),
        range_number().prop_map(Spec::From),
        range_number().prop_map(Spec::Suffix),
    ]
}

/// Optional whitespace.
pub(crate) fn ows() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

/// `spec` as a client could write it: any case of `bytes`, whitespace where the parser allows
/// it, leading zeros while the number stays within 19 digits.
pub(crate) fn spec_header() -> impl Strategy<Value = (Spec, String)> {
    (
        spec(),
        prop::sample::select(vec!["bytes", "Bytes", "BYTES", "bYtEs"]),
        prop::collection::vec(ows(), 6),
        0..4usize,
    )
        .prop_map(|(spec, unit, ws, zeros)| {
            let n = |v: u64| {
                let digits = v.to_string();
                let zeros = zeros.min(19 - digits.len());
                format!("{}{digits}", "0".repeat(zeros))
            };
            let (first, last) = match spec {
                Spec::Bounded(a, b) => (n(a), n(b)),
                Spec::From(a) => (n(a), String::new()),
                Spec::Suffix(s) => (String::new(), n(s)),
            };
            let header = format!(
                "{}{unit}{}={}{first}{}-{}{last}{}",
                ws[0], ws[1], ws[2], ws[3], ws[4], ws[5]
            );
            (spec, header)
        })
}

/// Header values, from noise to near misses.
pub(crate) fn range_header() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \tbByYtTeEsS=0-9,;+*-]{0,30}",
        "(bytes|Bytes|items|)=[ 0-9-]{0,25}",
        "bytes=[0-9]{0,22}-[0-9]{0,22}",
        spec_header().prop_map(|(_, h)| h),
    ]
}

/// What every resolved range promises.
pub(crate) fn check_range(r: ByteRange, size: u64) -> Result<(), TestCaseError> {
    prop_assert!(r.start <= r.end && r.end < size, "{r:?} of {size}");
    prop_assert!(!r.is_empty());
    prop_assert_eq!(
        u128::from(r.len()),
        u128::from(r.end) - u128::from(r.start) + 1
    );
    prop_assert_eq!(
        r.reaches_end(size),
        u128::from(r.end) + 1 == u128::from(size)
    );
    prop_assert_eq!(
        r.content_range(size),
        format!("bytes {}-{}/{}", r.start, r.end, size)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(5000))]

    /// Any header parses or is ignored without panicking; what parses is a well-formed single
    /// byte range that reads back the same, and any range it resolves to is inside the object.
    #[test]
    fn range_headers_never_panic(
        header in range_header(),
        if_range in proptest::option::of("\"[a-z]{0,3}\"|W/\"[a-z]{0,3}\"|.{0,10}"),
        size in object_size(),
    ) {
        if let Some(spec) = range::parse(&header) {
            prop_assert!(!header.contains(','));
            prop_assert!(header.trim_start().get(..5).is_some_and(|u| u.eq_ignore_ascii_case("bytes")));
            let canonical = match spec {
                Spec::Bounded(a, b) => {
                    prop_assert!(a <= b);
                    format!("bytes={a}-{b}")
                }
                Spec::From(a) => format!("bytes={a}-"),
                Spec::Suffix(n) => format!("bytes=-{n}"),
            };
            prop_assert_eq!(range::parse(&canonical), Some(spec));
        }
        if let Some(request) = RangeRequest::from_headers(Some(&header), if_range.as_deref())
            && let Ok(Some(r)) = request.select("\"abc\"", size)
        {
            check_range(r, size)?;
        }
    }

    /// Resolving agrees with the model: satisfiable exactly when the model selects a byte, and
    /// then the same bytes.
    #[test]
    fn ranges_resolve_like_the_model(spec in spec(), size in object_size()) {
        let resolved = range::resolve(spec, size);
        match range_model::range(spec, size) {
            Some((lo, hi)) => {
                let r = setup(resolved)?;
                check_range(r, size)?;
                prop_assert_eq!((u128::from(r.start), u128::from(r.end) + 1), (lo, hi));
            }
            None => prop_assert_eq!(resolved, Err(range::Unsatisfiable { size })),
        }
    }

    /// Well-formed `bytes=a-b`, `bytes=a-` and `bytes=-n` headers, however spaced and cased,
    /// parse to their spec.
    #[test]
    fn well_formed_ranges_round_trip((spec, header) in spec_header(), size in object_size()) {
        prop_assert_eq!(range::parse(&header), Some(spec), "{:?}", header);
        let request = RangeRequest::from_headers(Some(&header), None);
        let selected = request.map(|r| r.select("\"abc\"", size));
        let expected = match range_model::range(spec, size) {
            Some((lo, hi)) => Ok(Some((lo, hi))),
            None => Err(range::Unsatisfiable { size }),
        };
        let selected = selected.map(|s| s.map(|r| r.map(|r| (u128::from(r.start), u128::from(r.end) + 1))));
        prop_assert_eq!(selected, Some(expected));
    }

    /// `If-Range` lets the range through only for the same strong `ETag`.
    #[test]
    fn if_range_needs_a_strong_match(
        spec in spec(),
        size in object_size(),
        etag in "(W/)?\"[ab]{0,2}\"",
        validator in "(W/)?\"[ab]{0,2}\"|.{0,8}",
    ) {
        let request = RangeRequest { spec, if_range: Some(validator.clone()) };
        let selected = request.select(&etag, size);
        if validator == etag && !etag.starts_with("W/") {
            prop_assert_eq!(selected, range::resolve(spec, size).map(Some));
        } else {
            prop_assert_eq!(selected, Ok(None));
        }
    }
}
