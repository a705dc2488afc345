//! Fuzzes the JOSE header check of `TokenCodec::verify` (`token::check_header`): the header of
//! a token whose claims are genuine and whose signature is right for the header as sent.
//!
//! Input: the header's JSON text. Checks: no panic; a header that is not one JSON object, that
//! repeats a key or that has a `crit` member (any value) is refused as invalid, and so is the
//! whole token, before anything else; a token that verifies has a header that is an object with
//! `alg` `HS256`, our `kid`, no `crit` and no repeated key.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::config::Secret;
use docgate::token::{Claims, ISSUER, TokenCodec, TokenError, check_header};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET: &[u8] = b"fuzzing secret, 32 bytes or more!";
const NOW: u64 = 1_800_000_100;

static CODEC: LazyLock<TokenCodec> =
    LazyLock::new(|| TokenCodec::single(&Secret::new(SECRET.to_vec())));

static CLAIMS: LazyLock<String> = LazyLock::new(|| {
    let claims = Claims {
        jti: "AAECAwQFBgcICQoLDA0ODxAR".into(),
        doc: "resume".to_owned(),
        iat: 1_800_000_000,
        exp: 1_800_000_900,
        iss: ISSUER.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default())
});

fuzz_target!(|header: &[u8]| {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), *CLAIMS);
    let Ok(signature) = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    ) else {
        return;
    };
    let token = format!("{input}.{signature}");
    let checked = check_header(&token);
    let verified = CODEC.verify(&token, NOW);
    let object = match serde_json::from_slice::<Value>(header) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    let crit = object.as_ref().is_some_and(|o| o.contains_key("crit"));
    if object.is_none() || crit || docgate::json::from_slice(header).is_err() {
        assert!(checked.is_err(), "{checked:?}");
        assert!(
            matches!(verified, Err(TokenError::Invalid(_))),
            "{verified:?}"
        );
    }
    if verified.is_ok() {
        let object = object.unwrap_or_default();
        assert!(checked.is_ok());
        assert!(!crit);
        assert_eq!(object.get("alg"), Some(&Value::from("HS256")));
        assert_eq!(object.get("kid"), Some(&Value::from(CODEC.signing_kid())));
    }
});
