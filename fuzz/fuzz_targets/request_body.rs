//! Fuzzes `decode_fields`, which decodes the body of `POST /api/download-requests` from anyone,
//! as JSON and as a form.
//!
//! Input: the body. Checks, for both decodings: no panic; JSON is accepted only as an object
//! whose `email`, `document`, `name` and `company` are strings, `null` or absent and whose
//! `consent` is a boolean, a string, `null` or absent, and no object in it repeats a key, and
//! then gives exactly those; a form is accepted unless a name is repeated, and then gives exactly
//! its values (`consent` agreeing for `true`, `on`, `yes`, `1` in any case). The model of both
//! is `tests/models/request_body.rs`, shared with the property tests.

#![no_main]

use docgate::http::error::Error;
use docgate::http::request_link::{Fields, decode_fields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../tests/models/request_body.rs"]
mod model;

fn is_body_error(result: &Result<Fields, Error>) -> bool {
    matches!(result, Err(Error::Invalid(problems)) if problems.contains_key("body"))
}

/// The fields a JSON body gives, or `None` when it must be refused.
fn json_model(data: &[u8]) -> Option<Fields> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(data) else {
        return None;
    };
    // A repeated key refuses the body (the `json` target checks that detection on its own).
    if docgate::json::from_slice(data).is_err() {
        return None;
    }
    model::json(&object)
}

fuzz_target!(|data: &[u8]| {
    let json = decode_fields(false, data);
    match json_model(data) {
        Some(fields) => assert!(matches!(&json, Ok(f) if *f == fields), "{json:?}"),
        None => assert!(is_body_error(&json), "{json:?}"),
    }

    let form = decode_fields(true, data);
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(data) {
        Ok(pairs) => pairs,
        Err(e) => panic!("form pairs never fail to decode: {e}"),
    };
    match model::form(&pairs) {
        Some(fields) => assert!(matches!(&form, Ok(f) if *f == fields), "{form:?}"),
        None => assert!(is_body_error(&form), "{form:?}"),
    }
});
