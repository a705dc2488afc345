//! Fuzzes `decode_fields`, which decodes the body of `POST /api/download-requests` from anyone,
//! as JSON and as a form.
//!
//! Input: the body. Checks, for both decodings: no panic; JSON is accepted only as an object
//! whose `email`, `document`, `name` and `company` are strings, `null` or absent and whose
//! `consent` is a boolean, a string, `null` or absent, and no object in it repeats a key, and
//! then gives exactly those; a form is accepted unless a name is repeated, and then gives exactly
//! its values (`consent` agreeing for `true`, `on`, `yes`, `1` in any case).

#![no_main]

use docgate::http::error::Error;
use docgate::http::request_link::{Fields, decode_fields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn is_body_error(result: &Result<Fields, Error>) -> bool {
    matches!(result, Err(Error::Invalid(problems)) if problems.contains_key("body"))
}

/// What a `consent` string means.
fn agrees(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    matches!(value.as_str(), "true" | "on" | "yes" | "1")
}

fn json_model(data: &[u8]) -> Option<Fields> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(data) else {
        return None;
    };
    // A repeated key refuses the body (the `json` target checks that detection on its own).
    if docgate::json::from_slice(data).is_err() {
        return None;
    }
    let text = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    let consent = match object.get("consent") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(agrees(s)),
        Some(_) => return None,
    };
    Some(Fields {
        email: text("email")?,
        document: text("document")?,
        name: text("name")?,
        company: text("company")?,
        consent,
    })
}

fn form_model(pairs: &[(String, String)]) -> Option<Fields> {
    // Any name given twice refuses the form, whether docgate reads that field or not.
    let mut names = std::collections::HashSet::new();
    if !pairs.iter().all(|(name, _)| names.insert(name.as_str())) {
        return None;
    }
    let value = |name: &str| {
        let mut values = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let first = values.next();
        values.next().is_none().then_some(first)
    };
    Some(Fields {
        email: value("email")?,
        document: value("document")?,
        name: value("name")?,
        company: value("company")?,
        consent: value("consent")?.map(|v| agrees(&v)),
    })
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
    match form_model(&pairs) {
        Some(fields) => assert!(matches!(&form, Ok(f) if *f == fields), "{form:?}"),
        None => assert!(is_body_error(&form), "{form:?}"),
    }
});
