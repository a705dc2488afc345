//! Fuzzes `docgate::json::from_slice`, which reads every JSON text a client writes (link request
//! bodies, token headers) and refuses an object that names a key twice.
//!
//! Input: the JSON text. Checks: no panic; where serde_json reads a value and no object repeats
//! a key (counted by a visitor of the model's own, `tests/models/json.rs`, shared with the
//! property tests), the same value; where one does, `DuplicateKey`; where serde_json refuses the
//! text, `Syntax`. The link request decoder then refuses a body with a repeated key as a `body`
//! problem.

#![no_main]

use docgate::http::error::Error;
use docgate::http::request_link::decode_fields;
use docgate::json::{JsonError, from_slice};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../tests/models/json.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    let ours = from_slice(data);
    match serde_json::from_slice::<Value>(data) {
        Ok(value) => {
            let repeats = match model::repeats_a_key(data, &value) {
                Ok(repeats) => repeats,
                Err(e) => panic!("serde_json read it once: {e}"),
            };
            if repeats {
                assert_eq!(ours, Err(JsonError::DuplicateKey));
                let body = decode_fields(false, data);
                assert!(
                    matches!(&body, Err(Error::Invalid(p)) if p.contains_key("body")),
                    "{body:?}"
                );
            } else {
                assert_eq!(ours, Ok(value));
            }
        }
        Err(_) => assert_eq!(ours, Err(JsonError::Syntax)),
    }
});
