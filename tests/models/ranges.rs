//! An independent statement of the documented `Range` rule (RFC 9110 §14.1.2), shared by the
//! property tests (`tests/props/ranges.rs`) and the `range` fuzz target.

use docgate::range::Spec;

/// The bytes `spec` selects from an object of `size` bytes, as a half-open interval of byte
/// positions computed in 128 bits; `None` when it selects no byte of the object.
pub fn range(spec: Spec, size: u64) -> Option<(u128, u128)> {
    let size = u128::from(size);
    let (lo, hi) = match spec {
        Spec::Bounded(first, last) => (u128::from(first), (u128::from(last) + 1).min(size)),
        Spec::From(first) => (u128::from(first), size),
        Spec::Suffix(n) => (size.saturating_sub(u128::from(n)), size),
    };
    (lo < hi).then_some((lo, hi))
}
