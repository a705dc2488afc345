//! `Range` and `If-Range` (RFC 9110 §14): parsing the header and choosing the bytes to send.
//!
//! One range is served as `206`. Several ranges, another unit, or a syntax error are ignored and
//! the whole representation is sent, as RFC 9110 allows; a single range that starts beyond the end
//! is unsatisfiable (`416`). `If-Range` is honoured only with a strong `ETag` that matches: a date
//! or a weak tag never splices two versions of a document, it gets the whole body.

/// A resolved byte range, both ends inclusive, within an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range holds.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Ranges are never empty; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when the range includes the object's last byte.
    pub fn reaches_end(&self, size: u64) -> bool {
        self.end + 1 == size
    }

    /// The `Content-Range` value for this range of an object of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

/// One `bytes=` range as asked for, before the object's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `bytes=a-b`
    Bounded(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// A client's range request: the range and its `If-Range` validator, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    pub spec: Spec,
    pub if_range: Option<String>,
}

/// The range cannot be satisfied for an object of this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable for {size} bytes")]
pub struct Unsatisfiable {
    pub size: u64,
}

impl RangeRequest {
    /// Reads `Range` and `If-Range` header values. `None` when there is no single byte range to
    /// honour: no header, another unit, several ranges, or bad syntax.
    pub fn from_headers(range: Option<&str>, if_range: Option<&str>) -> Option<Self> {
        Some(Self {
            spec: parse(range?)?,
            if_range: if_range.map(|v| v.trim().to_owned()),
        })
    }

    /// The bytes to send of an object of `size` bytes whose strong `ETag` is `etag`: `Ok(None)`
    /// for the whole object.
    pub fn select(&self, etag: &str, size: u64) -> Result<Option<ByteRange>, Unsatisfiable> {
        if let Some(validator) = &self.if_range
            && !strong_match(validator, etag)
        {
            return Ok(None);
        }
        resolve(self.spec, size).map(Some)
    }
}

/// Parses one `bytes=` range; `None` for anything else.
pub fn parse(header: &str) -> Option<Spec> {
    let (unit, ranges) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let ranges = ranges.trim();
    if ranges.contains(',') {
        return None;
    }
    let (first, last) = ranges.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.is_empty(), last.is_empty()) {
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(Spec::Bounded(a, b))
        }
        (false, true) => Some(Spec::From(number(first)?)),
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (true, true) => None,
    }
}

/// Resolves a range against an object's size (RFC 9110 §14.1.2).
pub fn resolve(spec: Spec, size: u64) -> Result<ByteRange, Unsatisfiable> {
    let unsatisfiable = Unsatisfiable { size };
    match spec {
        Spec::Bounded(start, end) if start < size => Ok(ByteRange {
            start,
            end: end.min(size - 1),
        }),
        Spec::From(start) if start < size => Ok(ByteRange {
            start,
            end: size - 1,
        }),
        Spec::Suffix(n) if n > 0 && size > 0 => Ok(ByteRange {
            start: size - n.min(size),
            end: size - 1,
        }),
        _ => Err(unsatisfiable),
    }
}

/// Strong comparison (RFC 9110 §8.8.3.2): both tags strong and identical.
fn strong_match(validator: &str, etag: &str) -> bool {
    !validator.starts_with("W/") && !etag.starts_with("W/") && validator == etag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_parse() {
        assert_eq!(parse("bytes=0-499"), Some(Spec::Bounded(0, 499)));
        assert_eq!(parse("bytes=500-"), Some(Spec::From(500)));
        assert_eq!(parse("bytes=-500"), Some(Spec::Suffix(500)));
        assert_eq!(parse(" Bytes = 1 - 2 "), Some(Spec::Bounded(1, 2)));
    }

    #[test]
    fn other_ranges_are_ignored() {
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=-",
            "bytes=",
            "items=0-1",
            "bytes=a-b",
            "bytes=-1-2",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
            "0-1",
        ] {
            assert_eq!(parse(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        let r = |start, end| Ok(ByteRange { start, end });
        assert_eq!(resolve(Spec::Bounded(0, 99), 1000), r(0, 99));
        assert_eq!(resolve(Spec::Bounded(900, 5000), 1000), r(900, 999));
        assert_eq!(resolve(Spec::From(10), 1000), r(10, 999));
        assert_eq!(resolve(Spec::Suffix(100), 1000), r(900, 999));
        assert_eq!(resolve(Spec::Suffix(5000), 1000), r(0, 999));
        let none = Err(Unsatisfiable { size: 1000 });
        assert_eq!(resolve(Spec::From(1000), 1000), none);
        assert_eq!(resolve(Spec::Bounded(1000, 1001), 1000), none);
        assert_eq!(resolve(Spec::Suffix(0), 1000), none);
        assert_eq!(resolve(Spec::Suffix(1), 0), Err(Unsatisfiable { size: 0 }));
        let range = ByteRange {
            start: 900,
            end: 999,
        };
        assert!(range.reaches_end(1000));
        assert_eq!(range.len(), 100);
        assert_eq!(range.content_range(1000), "bytes 900-999/1000");
    }

    #[test]
    fn if_range_needs_the_same_strong_etag() {
        let etag = "\"abc\"";
        let req = |if_range: Option<&str>| {
            RangeRequest::from_headers(Some("bytes=10-"), if_range).unwrap()
        };
        let part = Ok(Some(ByteRange { start: 10, end: 99 }));
        assert_eq!(req(None).select(etag, 100), part);
        assert_eq!(req(Some("\"abc\"")).select(etag, 100), part);
        assert_eq!(req(Some("\"old\"")).select(etag, 100), Ok(None));
        assert_eq!(req(Some("W/\"abc\"")).select(etag, 100), Ok(None));
        assert_eq!(
            req(Some("Wed, 21 Oct 2015 07:28:00 GMT")).select(etag, 100),
            Ok(None)
        );
        assert!(RangeRequest::from_headers(None, Some(etag)).is_none());
    }
}
