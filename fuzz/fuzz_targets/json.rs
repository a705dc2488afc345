//! Fuzzes `docgate::json::from_slice`, which reads every JSON text a client writes (link request
//! bodies, token headers) and refuses an object that names a key twice.
//!
//! Input: the JSON text. Checks: no panic; where serde_json reads a value and no object repeats
//! a key (counted by a visitor of its own), the same value; where one does, `DuplicateKey`;
//! where serde_json refuses the text, `Syntax`. The link request decoder then refuses a body
//! with a repeated key as a `body` problem.

#![no_main]

use docgate::http::error::Error;
use docgate::http::request_link::decode_fields;
use docgate::json::{JsonError, from_slice};
use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Counts every member of every object, repeated keys included.
struct Members;

impl<'de> DeserializeSeed<'de> for Members {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Members {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(inner) = seq.next_element_seed(Members)? {
            n += inner;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            n += 1 + map.next_value_seed(Members)?;
        }
        Ok(n)
    }
}

fn members_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(members_of).sum(),
        Value::Object(object) => object.len() + object.values().map(members_of).sum::<usize>(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = from_slice(data);
    match serde_json::from_slice::<Value>(data) {
        Ok(value) => {
            let mut deserializer = serde_json::Deserializer::from_slice(data);
            let all = match Members.deserialize(&mut deserializer) {
                Ok(all) => all,
                Err(e) => panic!("serde_json read it once: {e}"),
            };
            if all > members_of(&value) {
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
