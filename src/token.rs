//! Signed link tokens: JWTs (HS256, `kid` in the header) carrying `jti`, `doc`, `iat`, `exp` and
//! `iss`, and nothing about the person who asked.
//!
//! Architecture invariant: `token` does no I/O and reads no clock. Callers pass `now` (seconds
//! since the Unix epoch), so expiry is tested without sleeping and one request sees one time.
//!
//! Verification pins the algorithm to HS256, looks the key up by `kid`, requires every claim with
//! its type (a string `exp` is malformed, not absent), checks `iss`, and refuses tokens longer than
//! [`MAX_TOKEN_LEN`] before parsing. A header segment byte for byte the one docgate writes for a
//! listed key is known to pass those header checks, so only other headers are parsed for them.
//! Time checks use [`LEEWAY_SECS`] of leeway, not the crate's 60 s: replicas share
//! NTP-synchronised clocks, so a few seconds covers real skew while keeping a link's lifetime what
//! the mail says.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod keys;

pub use keys::TokenKeys;

use crate::secret::Secret;

/// The `iss` claim of every token.
pub const ISSUER: &str = "docgate";
/// Allowed clock skew, in seconds, for `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 5;
/// Tokens longer than this are refused before any parsing. Real ones are about 250 bytes.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Random bytes in a `jti` (144 bits).
const JTI_BYTES: usize = 18;

/// A link's unique id (the token's `jti` claim): the token store's key, what an operator revokes,
/// what joins the owner's request log.
///
/// Serialized as the id itself. Shown (`Display`, `Debug`) as its first [`Jti::SHORT`]
/// characters, enough to find a link in logs and too few to be one; [`Jti::as_str`] is the whole
/// id, for the store and the request log.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jti(String);

impl Jti {
    /// Characters of the id shown in logs.
    pub const SHORT: usize = 6;

    /// A fresh id: [`JTI_BYTES`] from the OS RNG, base64url without padding.
    pub fn generate() -> Self {
        Self(new_jti())
    }

    /// An id as an operator or a client gave it: `None` unless it has the shape
    /// [`Jti::generate`] makes ([`is_valid_jti`]).
    pub fn parse(id: &str) -> Option<Self> {
        is_valid_jti(id).then(|| Self(id.to_owned()))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first [`Jti::SHORT`] characters: what logs show.
    pub fn short(&self) -> &str {
        self.0.get(..Self::SHORT).unwrap_or(&self.0)
    }
}

/// An id read back from where docgate stored it (or made up by a test); not checked.
impl From<String> for Jti {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for Jti {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// The whole id.
impl From<Jti> for String {
    fn from(jti: Jti) -> Self {
        jti.0
    }
}

impl std::fmt::Display for Jti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short())
    }
}

impl std::fmt::Debug for Jti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jti({:?})", self.short())
    }
}

impl PartialEq<str> for Jti {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Jti {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Jti> for String {
    fn eq(&self, other: &Jti) -> bool {
        *self == other.0
    }
}

/// What a link grants: one document, for a while. Also the token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The link's unique id: the Redis key suffix, what an operator revokes.
    pub jti: Jti,
    /// The catalog id of the document.
    pub doc: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Always [`ISSUER`].
    pub iss: String,
}

impl Claims {
    /// A new link to `doc`, issued at `now` and living `ttl_secs`, with a fresh random `jti`.
    pub fn new(doc: &str, now: u64, ttl_secs: u64) -> Self {
        Self {
            jti: Jti::generate(),
            doc: doc.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            iss: ISSUER.to_owned(),
        }
    }

    /// Seconds left before expiry at `now` (zero once expired).
    pub fn remaining(&self, now: u64) -> u64 {
        self.exp.saturating_sub(now)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours: bad shape, bad signature, unknown key, wrong algorithm or claims.
    #[error("malformed or tampered token: {0}")]
    Invalid(&'static str),
    /// Genuine, but past its `exp`.
    #[error("token expired")]
    Expired(Box<Claims>),
    /// Signing failed (a crypto backend error; not expected with HMAC).
    #[error("token signing failed: {0}")]
    Signing(jsonwebtoken::errors::Error),
}

/// Signs and verifies tokens with a set of keys, by `kid`.
pub struct TokenCodec {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    /// The header segment [`TokenCodec::sign`] writes for each listed `kid`, with that `kid`: a
    /// token whose first segment is one of these, byte for byte, has a header already known to
    /// pass [`check_header`] and to name HS256 and that key, so it is not parsed for them again.
    minted: HashMap<String, String>,
    validation: Validation,
}

impl std::fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCodec")
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

impl TokenCodec {
    /// A codec for these keys: each verifies tokens carrying its `kid`, the signing one signs.
    /// Fails when the signing `kid` names no listed key.
    pub fn new(keys: &TokenKeys) -> Result<Self, TokenError> {
        let signing = keys
            .signing_secret()
            .ok_or(TokenError::Invalid("the signing kid names no listed key"))?;
        Ok(Self {
            encoding: EncodingKey::from_secret(signing.expose()),
            decoding: keys
                .keys
                .iter()
                .map(|(kid, secret)| (kid.clone(), DecodingKey::from_secret(secret.expose())))
                .collect(),
            minted: keys
                .keys
                .iter()
                .filter_map(|(kid, _)| minted(kid))
                .collect(),
            signing_kid: keys.signing.clone(),
            validation: validation(),
        })
    }

    /// A codec with one key, its `kid` derived from the secret.
    pub fn single(secret: &Secret) -> Self {
        let kid = key_id(secret);
        Self {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: HashMap::from([(kid.clone(), DecodingKey::from_secret(secret.expose()))]),
            minted: minted(&kid).into_iter().collect(),
            signing_kid: kid,
            validation: validation(),
        }
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The token for these claims. Deterministic: the same claims and key give the same token.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&header(&self.signing_kid), claims, &self.encoding)
            .map_err(TokenError::Signing)
    }

    /// The link for these claims under `public_url` (`https://docs.example.com/d/<token>`): the
    /// one place a link's URL is formatted, for the mail and for an operator alike.
    pub fn url(&self, public_url: &str, claims: &Claims) -> Result<String, TokenError> {
        let token = self.sign(claims)?;
        Ok(format!("{}/d/{token}", public_url.trim_end_matches('/')))
    }

    /// Verifies a token at time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid("token too long"));
        }
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(TokenError::Invalid("not three segments"));
        }
        let segment = token.split('.').next().unwrap_or_default();
        let key = match self.minted.get(segment) {
            Some(kid) => self.decoding.get(kid),
            None => {
                check_header(token)?;
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| TokenError::Invalid("bad header"))?;
                if header.alg != Algorithm::HS256 {
                    return Err(TokenError::Invalid("algorithm not allowed"));
                }
                let kid = header.kid.ok_or(TokenError::Invalid("no kid"))?;
                self.decoding.get(&kid)
            }
        };
        let key = key.ok_or(TokenError::Invalid("unknown kid"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| TokenError::Invalid(describe(e.kind())))?
            .claims;
        if claims.iat > now.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Invalid("issued in the future"));
        }
        if claims.exp < claims.iat {
            return Err(TokenError::Invalid("expires before issued"));
        }
        if !crate::catalog::is_valid_id(&claims.doc) || !is_valid_jti(claims.jti.as_str()) {
            return Err(TokenError::Invalid("bad claim value"));
        }
        if now >= claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired(Box::new(claims)));
        }
        Ok(claims)
    }
}

/// The header [`TokenCodec::sign`] writes for `kid`.
fn header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    header
}

/// The header segment of every token signed with `kid`, as the library writes it (base64url
/// of its JSON), with that `kid`.
/// `None` if it cannot be written: those tokens are then read the long way.
fn minted(kid: &str) -> Option<(String, String)> {
    let json = serde_json::to_vec(&header(kid)).ok()?;
    Some((URL_SAFE_NO_PAD.encode(json), kid.to_owned()))
}

/// The JOSE header as JSON, before the library reads it: an object with no key named twice
/// (RFC 7515 §4) and no `crit`. A `crit` lists extensions the verifier must understand or refuse
/// the token (§4.1.11); docgate understands none, so any `crit`, whatever its value, is refused.
pub fn check_header(token: &str) -> Result<(), TokenError> {
    let segment = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Invalid("bad header"))?;
    match crate::json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(header)) if header.contains_key("crit") => {
            Err(TokenError::Invalid("critical header extension"))
        }
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Err(crate::json::JsonError::DuplicateKey) => {
            Err(TokenError::Invalid("header parameter named twice"))
        }
        _ => Err(TokenError::Invalid("bad header")),
    }
}

/// What the library checks: HS256 only, our issuer, `exp` and `iss` present. Time is checked in
/// `verify` against the caller's clock, with our leeway.
fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = LEEWAY_SECS;
    validation
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm not allowed",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => "bad claims",
        _ => "bad token",
    }
}

/// A fresh random id: [`JTI_BYTES`] from the OS RNG, base64url without padding. A link's id is a
/// [`Jti`] ([`Jti::generate`]); leases and webhook events use these too.
pub fn new_jti() -> String {
    let mut bytes = [0u8; JTI_BYTES];
    // Without the OS RNG no unguessable link can be made; there is no safe fallback.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A `jti` is base64url, as minted by [`new_jti`] (16 to 64 characters accepted).
pub fn is_valid_jti(jti: &str) -> bool {
    (16..=64).contains(&jti.len())
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `kid` of a secret configured without one: the first 64 bits of its SHA-256, hex. Replicas
/// sharing the secret agree on it without configuration.
pub fn key_id(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn codec(secret: &[u8]) -> TokenCodec {
        TokenCodec::single(&Secret::new(secret.to_vec()))
    }

    fn segments(token: &str) -> Vec<serde_json::Value> {
        token
            .split('.')
            .take(2)
            .map(|s| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap())
            .collect()
    }

    fn forge(header: &str, claims: &str, sign_with: &[u8]) -> String {
        use jsonwebtoken::crypto::sign;
        let h = URL_SAFE_NO_PAD.encode(header);
        let c = URL_SAFE_NO_PAD.encode(claims);
        let input = format!("{h}.{c}");
        let sig = sign(
            input.as_bytes(),
            &EncodingKey::from_secret(sign_with),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_verifies_and_carries_no_personal_data() {
        let codec = codec(SECRET);
        let claims = Claims::new("resume", NOW, 900);
        assert!(
            claims.jti.as_str().len() >= 22,
            "at least 128 bits of randomness"
        );
        let token = codec.sign(&claims).unwrap();
        assert_eq!(codec.verify(&token, NOW + 10).unwrap(), claims);
        let parts = segments(&token);
        assert_eq!(parts[0]["alg"], "HS256");
        assert_eq!(parts[0]["kid"].as_str().unwrap().len(), 16);
        let keys: Vec<_> = parts[1].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["doc", "exp", "iat", "iss", "jti"]);
        assert_eq!(
            codec.sign(&claims).unwrap(),
            token,
            "signing is deterministic"
        );
    }

    #[test]
    fn a_header_written_otherwise_is_read_and_checked_the_long_way() {
        let codec = codec(SECRET);
        let claims = Claims::new("resume", NOW, 900);
        let token = codec.sign(&claims).unwrap();
        let (header, _) = token.split_once('.').unwrap();
        assert!(
            codec.minted.contains_key(header),
            "a token docgate signs is recognised by its header segment"
        );
        let kid = codec.signing_kid().to_owned();
        let body = serde_json::to_string(&claims).unwrap();
        // The same header, its members in another order: not the segment docgate writes, and
        // still a valid header.
        let reordered = forge(
            &format!(r#"{{"kid":"{kid}","typ":"JWT","alg":"HS256"}}"#),
            &body,
            SECRET,
        );
        assert!(
            !codec
                .minted
                .contains_key(reordered.split('.').next().unwrap())
        );
        assert_eq!(codec.verify(&reordered, NOW).unwrap(), claims);
        // What only the long way finds: a member named twice, an unknown `kid`, another algorithm.
        for (header, why) in [
            (
                format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}","kid":"{kid}"}}"#),
                "header parameter named twice",
            ),
            (
                r#"{"alg":"HS256","typ":"JWT","kid":"another"}"#.to_owned(),
                "unknown kid",
            ),
            (
                format!(r#"{{"alg":"HS384","typ":"JWT","kid":"{kid}"}}"#),
                "algorithm not allowed",
            ),
        ] {
            let forged = forge(&header, &body, SECRET);
            assert!(
                matches!(codec.verify(&forged, NOW), Err(TokenError::Invalid(w)) if w == why),
                "{header}"
            );
        }
        // A known header does not vouch for the rest: a token with docgate's header segment and
        // another key's signature is refused.
        let foreign = forge(
            &String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap(),
            &body,
            b"another-secret-0123456789abcdef0123",
        );
        assert!(foreign.starts_with(header));
        assert!(codec.verify(&foreign, NOW).is_err());
    }

    #[test]
    fn a_rotated_key_verifies_while_it_is_listed() {
        let old = b"old-key-0123456789abcdef0123456789".to_vec();
        let new = b"new-key-0123456789abcdef0123456789".to_vec();
        let keys = |list: &[(&str, &[u8])], signing: &str| TokenKeys {
            keys: list
                .iter()
                .map(|(kid, secret)| ((*kid).to_owned(), Secret::new(secret.to_vec())))
                .collect(),
            signing: signing.to_owned(),
            generated: false,
        };
        let before = TokenCodec::new(&keys(&[("old", &old)], "old")).unwrap();
        let old_token = before.sign(&Claims::new("resume", NOW, 900)).unwrap();

        // Step 1: both listed, the new one signs.
        let during = TokenCodec::new(&keys(&[("new", &new), ("old", &old)], "new")).unwrap();
        assert!(during.verify(&old_token, NOW).is_ok());
        let new_token = during.sign(&Claims::new("resume", NOW, 900)).unwrap();
        assert_eq!(segments(&new_token)[0]["kid"], "new");
        assert!(
            before.verify(&new_token, NOW).is_err(),
            "a replica not yet updated refuses the new kid"
        );

        // Step 2: the old key removed.
        let after = TokenCodec::new(&keys(&[("new", &new)], "new")).unwrap();
        assert!(TokenCodec::new(&keys(&[("new", &new)], "old")).is_err());
        assert!(after.verify(&new_token, NOW).is_ok());
        assert!(matches!(
            after.verify(&old_token, NOW),
            Err(TokenError::Invalid("unknown kid"))
        ));

        // A token naming one listed kid but signed with the other key is refused.
        let (head, _) = new_token.split_once('.').unwrap();
        let (_, rest) = old_token.split_once('.').unwrap();
        assert!(during.verify(&format!("{head}.{rest}"), NOW).is_err());
    }

    #[test]
    fn a_jti_shows_its_short_prefix_and_serializes_whole() {
        let jti = Jti::generate();
        assert!(is_valid_jti(jti.as_str()));
        assert_eq!(jti.to_string(), &jti.as_str()[..Jti::SHORT]);
        assert_eq!(jti.short(), &jti.as_str()[..Jti::SHORT]);
        assert!(!format!("{jti:?}").contains(jti.as_str()));
        let json = serde_json::to_string(&jti).unwrap();
        assert_eq!(json, format!("\"{}\"", jti.as_str()));
        assert_eq!(serde_json::from_str::<Jti>(&json).unwrap(), jti);
        assert_eq!(
            Jti::from("abc").to_string(),
            "abc",
            "shorter than the prefix: whole"
        );
        assert_eq!(Jti::parse(jti.as_str()), Some(jti));
        assert_eq!(Jti::parse("x"), None);
        assert_eq!(Jti::parse("not a jti, it has spaces"), None);
    }

    #[test]
    fn jtis_are_unique_and_url_safe() {
        let a = new_jti();
        let b = new_jti();
        assert_ne!(a, b);
        assert!(is_valid_jti(&a));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn expiry_uses_the_documented_leeway() {
        let codec = codec(SECRET);
        let claims = Claims::new("resume", NOW, 900);
        let token = codec.sign(&claims).unwrap();
        assert!(codec.verify(&token, NOW + 900 + LEEWAY_SECS - 1).is_ok());
        match codec.verify(&token, NOW + 900 + LEEWAY_SECS) {
            Err(TokenError::Expired(c)) => assert_eq!(c.doc, "resume"),
            other => panic!("expected expiry, got {other:?}"),
        }
    }

    #[test]
    fn tampering_and_foreign_keys_are_invalid() {
        let codec = codec(SECRET);
        let token = codec.sign(&Claims::new("resume", NOW, 900)).unwrap();
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut bad_sig = sig.to_owned();
        bad_sig.replace_range(..2, if sig.starts_with("AA") { "BB" } else { "AA" });
        let other = self::codec(b"another secret that is long enough!!");
        let cases = [
            format!("{head}.{bad_sig}"),
            other.sign(&Claims::new("resume", NOW, 900)).unwrap(),
            format!("{token}.x"),
            "a.b".to_owned(),
            String::new(),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for token in cases {
            assert!(
                matches!(codec.verify(&token, NOW), Err(TokenError::Invalid(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn a_crit_header_is_refused_whatever_its_value() {
        let codec = codec(SECRET);
        let kid = key_id(&Secret::new(SECRET.to_vec()));
        let claims = format!(
            r#"{{"jti":"abcdefghijklmnopqrstuvwx","doc":"resume","iat":{NOW},"exp":{},"iss":"docgate"}}"#,
            NOW + 900
        );
        for crit in [
            r#"["exp"]"#,
            r#"["b64"]"#,
            r#"["x-unknown"]"#,
            "[]",
            "null",
            r#""kid""#,
            "{}",
            "false",
        ] {
            let header = format!(r#"{{"alg":"HS256","kid":"{kid}","crit":{crit},"b64":true}}"#);
            let token = forge(&header, &claims, SECRET);
            assert!(
                matches!(
                    codec.verify(&token, NOW),
                    Err(TokenError::Invalid("critical header extension"))
                ),
                "{header}"
            );
            // Refused before the signature matters: signed with another key, the same answer.
            let token = forge(&header, &claims, b"another secret that is long enough!!");
            assert!(
                matches!(
                    codec.verify(&token, NOW),
                    Err(TokenError::Invalid("critical header extension"))
                ),
                "{header}"
            );
        }
        // Our own tokens carry none.
        let token = codec.sign(&Claims::new("resume", NOW, 900)).unwrap();
        assert!(check_header(&token).is_ok());
        assert!(segments(&token)[0].get("crit").is_none());
    }

    #[test]
    fn a_header_that_is_not_one_json_object_is_refused() {
        for header in ["[]", "\"HS256\"", "{", r#"{"alg":"HS256"}x"#] {
            let token = format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(header));
            assert!(check_header(&token).is_err(), "{header}");
        }
        assert!(check_header("!!!.e30.sig").is_err());
        assert!(check_header("e30=.e30.sig").is_err());
    }

    #[test]
    fn forged_headers_and_claims_are_invalid() {
        let codec = codec(SECRET);
        let kid = key_id(&Secret::new(SECRET.to_vec()));
        let good_header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        let claims = |extra: &str| {
            format!(
                r#"{{"jti":"abcdefghijklmnopqrstuvwx","doc":"resume","iat":{NOW},"exp":{},"iss":"docgate"{extra}}}"#,
                NOW + 900
            )
        };
        // Sanity: the forger makes valid tokens when nothing is wrong.
        assert!(
            codec
                .verify(&forge(&good_header, &claims(""), SECRET), NOW)
                .is_ok()
        );

        let missing_jti = format!(
            r#"{{"doc":"resume","iat":{NOW},"exp":{},"iss":"docgate"}}"#,
            NOW + 900
        );
        let string_exp = format!(
            r#"{{"jti":"abcdefghijklmnopqrstuvwx","doc":"resume","iat":{NOW},"exp":"{}","iss":"docgate"}}"#,
            NOW + 900
        );
        let future_iat = format!(
            r#"{{"jti":"abcdefghijklmnopqrstuvwx","doc":"resume","iat":{},"exp":{},"iss":"docgate"}}"#,
            NOW + 60,
            NOW + 900
        );
        let wrong_iss = claims("").replace("\"docgate\"", "\"someone\"");
        let cases = [
            (r#"{"alg":"none","kid":"x"}"#.to_owned(), claims("")),
            (format!(r#"{{"alg":"HS512","kid":"{kid}"}}"#), claims("")),
            (r#"{"alg":"HS256","kid":"unknown"}"#.to_owned(), claims("")),
            (r#"{"alg":"HS256"}"#.to_owned(), claims("")),
            (good_header.clone(), missing_jti),
            (good_header.clone(), string_exp),
            (good_header.clone(), future_iat),
            (good_header.clone(), wrong_iss),
            (good_header.clone(), claims(r#","email":"a@b.c""#)),
            (
                format!(r#"{{"alg":"HS256","kid":"{kid}","kid":"{kid}"}}"#),
                claims(""),
            ),
        ];
        for (header, claims) in cases {
            let token = forge(&header, &claims, SECRET);
            assert!(
                matches!(codec.verify(&token, NOW), Err(TokenError::Invalid(_))),
                "{header} {claims}"
            );
        }
    }

    #[test]
    fn a_links_url_carries_its_token_under_the_public_url() {
        let codec = codec(&[7; 32]);
        let claims = Claims::new("resume", NOW, 900);
        for base in [
            "https://docs.example.com/get",
            "https://docs.example.com/get/",
        ] {
            let url = codec.url(base, &claims).unwrap();
            let token = url
                .strip_prefix("https://docs.example.com/get/d/")
                .unwrap_or_else(|| panic!("{url}"));
            assert_eq!(token, codec.sign(&claims).unwrap());
            assert_eq!(codec.verify(token, NOW).unwrap(), claims);
        }
    }
}
