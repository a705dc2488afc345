//! Fuzzes `decode_fields`, which decodes the body of `POST /api/download-requests` from anyone,
//! as JSON and as a form.
//!
//! Input: the body. Checks, for both decodings: no panic; JSON is accepted only as an object
//! whose `email` and `document` are strings, `null` or absent, and then gives exactly those; a
//! form is accepted unless a field is repeated, and then gives exactly its values.

#![no_main]

use docgate::http::error::Error;
use docgate::http::request_link::{Fields, decode_fields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn is_body_error(result: &Result<Fields, Error>) -> bool {
    matches!(result, Err(Error::Invalid(problems)) if problems.contains_key("body"))
}

fuzz_target!(|data: &[u8]| {
    let json = decode_fields(false, data);
    let expected = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(object)) => {
            let field = |name: &str| match object.get(name) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => None,
            };
            field("email").zip(field("document"))
        }
        _ => None,
    };
    match expected {
        Some((email, document)) => {
            assert!(
                matches!(&json, Ok(f) if *f == Fields { email, document }),
                "{json:?}"
            );
        }
        None => assert!(is_body_error(&json), "{json:?}"),
    }

    let form = decode_fields(true, data);
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_bytes(data) {
        Ok(pairs) => pairs,
        Err(e) => panic!("form pairs never fail to decode: {e}"),
    };
    let values = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let (emails, documents) = (values("email"), values("document"));
    if emails.len() > 1 || documents.len() > 1 {
        assert!(is_body_error(&form), "{form:?}");
    } else {
        let fields = Fields {
            email: emails.into_iter().next(),
            document: documents.into_iter().next(),
        };
        assert!(matches!(&form, Ok(f) if *f == fields), "{form:?}");
    }
});
