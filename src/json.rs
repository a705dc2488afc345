//! JSON as docgate reads it from outside (link request bodies, token headers): an object that
//! names a key twice is refused, at every depth.
//!
//! `serde_json::Value` keeps the last of two equal keys without a word, so `{"email": A,
//! "email": B}` would mail B while a filter in front of docgate may have checked A. RFC 8259
//! leaves duplicates to the reader and RFC 7515 §4 asks a JOSE reader to refuse them; docgate
//! refuses them everywhere it reads JSON a client wrote. The parser is serde_json's, driven by a
//! seed that builds the same `Value` and notes a repeated key; its depth limit still applies.

use std::cell::Cell;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (bad syntax, bad UTF-8, nested too deep, trailing data).
    #[error("not valid JSON")]
    Syntax,
    /// An object names the same key twice.
    #[error("an object names a key twice")]
    DuplicateKey,
}

/// Parses one JSON text, refusing any object that repeats a key.
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    let duplicate = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict(&duplicate)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    // A repeated key is reported only for a text that is JSON throughout: the parse goes on
    // past it, so broken text after a repeated key is a syntax error, as serde_json says.
    match parsed {
        Ok(_) if duplicate.get() => Err(JsonError::DuplicateKey),
        Ok(value) => Ok(value),
        Err(_) => Err(JsonError::Syntax),
    }
}

/// Builds a [`Value`], setting the flag at a repeated key (the value read is then dropped).
#[derive(Clone, Copy)]
struct Strict<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if object.contains_key(&key) {
                self.0.set(true);
            } else {
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_values_as_serde_json_when_no_key_repeats() {
        for text in [
            r#"{"email": "a@example.org", "document": "resume", "consent": true}"#,
            r#"{"a": [1, -2, 3.5, null, {"b": {"c": "d"}}], "e": {}}"#,
            r#"[{"a": 1}, {"a": 2}]"#,
            r#""\u00e9""#,
            "18446744073709551615",
        ] {
            let ours = from_slice(text.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for text in [
            r#"{"email": "a@example.org", "email": "b@example.org"}"#,
            r#"{"email": "a@example.org", "document": "x", "email": "a@example.org"}"#,
            r#"{"a": {"b": 1, "b": 2}}"#,
            r#"[1, {"x": [{"y": null, "y": null}]}]"#,
            r#"{"\u0065mail": 1, "email": 2}"#,
        ] {
            assert_eq!(
                from_slice(text.as_bytes()),
                Err(JsonError::DuplicateKey),
                "{text}"
            );
        }
        // Keys differing in case are different keys.
        assert!(from_slice(br#"{"email": 1, "Email": 2}"#).is_ok());
    }

    #[test]
    fn bad_json_is_a_syntax_error() {
        for text in [
            &b"{"[..],
            b"{} {}",
            b"{\"a\": 1}x",
            b"\xEF\xBB\xBF{}",
            b"{\"a\": \"\xFF\"}",
            b"",
        ] {
            assert_eq!(from_slice(text), Err(JsonError::Syntax), "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(from_slice(deep.as_bytes()), Err(JsonError::Syntax));
        // Found by the `json` fuzz target: a repeated key, then broken text. Not JSON at all.
        assert_eq!(
            from_slice(
                b"{\"email\": \"a@example.org\", \"email\": \"b@example.org\", \"document\"\xC6 \"resume\"}"
            ),
            Err(JsonError::Syntax)
        );
        assert_eq!(from_slice(br#"{"a": 1, "a": 2} x"#), Err(JsonError::Syntax));
    }
}
