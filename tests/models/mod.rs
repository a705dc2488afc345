//! The independent models (oracles) that the property tests (`tests/props/`) and the fuzz targets
//! (`fuzz/fuzz_targets/`) compare docgate's parsers with: each states a documented rule in its own
//! words, without docgate's code. One file per model, each a plain module: the property tests take
//! them all from here, each fuzz target includes its own with `#[path]`.

pub mod forwarded;
pub mod json;
pub mod ranges;
pub mod request_body;
