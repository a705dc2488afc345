//! An independent statement of the documented JSON rule "no object names a key twice" (which
//! serde_json's `Value` cannot see: it keeps one of two), shared by the property tests
//! (`tests/props/body.rs`) and the `json` fuzz target. It counts members with a serde visitor of
//! its own, without `docgate::json`.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Counts every member of every object in a JSON text, repeated keys included.
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

/// The members of every object in `value`, where a repeated key counts once.
fn members_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(members_of).sum(),
        Value::Object(object) => object.len() + object.values().map(members_of).sum::<usize>(),
        _ => 0,
    }
}

/// Whether some object in the JSON text `bytes`, which serde_json reads as `value`, names a key
/// twice; an error where the visitor cannot read what serde_json did.
pub fn repeats_a_key(bytes: &[u8], value: &Value) -> Result<bool, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Ok(Members.deserialize(&mut deserializer)? > members_of(value))
}
