//! Forged and damaged tokens: JWT segments decoded, edited and signed again.

use super::*;

/// A base64url JSON segment, parsed.
pub(super) fn decoded(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// `value` with `key` set, or removed when `None`.
pub(super) fn edit(value: &Value, key: &str, new: Option<Value>) -> Value {
    let mut value = value.clone();
    let object = value.as_object_mut().unwrap();
    match new {
        Some(new) => object.insert(key.to_owned(), new),
        None => object.remove(key),
    };
    value
}

/// A token with this header and claims, signed with `alg` and `key`.
pub(super) fn forge(header: &Value, claims: &Value, alg: Algorithm, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key), alg).unwrap();
    format!("{input}.{signature}")
}

/// A token with this header text as is (so it may repeat a key), signed HS256 with `key`.
pub(super) fn forge_raw(header: &str, claims: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(&claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}
