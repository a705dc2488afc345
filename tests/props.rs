//! Property tests for the parsers that face the internet: link tokens (`/d/{token}`, a `crit`
//! header refused), the `Range` header, `X-Forwarded-For`, the link-request body (a repeated
//! JSON key or form field refused), the address check (what passes can be mailed), and the
//! `Content-Disposition` built from a filename (printable ASCII, the exact name in `filename*`).
//!
//! Anyone can send these bytes, so beyond "never panics" each property checks what the parser
//! promises: a token verifies only when it is byte-for-byte one we signed; a resolved range lies
//! inside the object and matches an independent model; the client address follows the documented
//! walk of `X-Forwarded-For` and never lands on a trusted proxy while an untrusted hop was seen; a
//! body decodes to exactly the fields it carries, and only from a JSON object or a form.
//!
//! The mailbox an address counts as (`address::mailbox`, the per-address budget's key) is checked
//! too: idempotent, and blind to case and `+tags` (and to dots only where the provider is).
//!
//! The number of cases is bounded so the whole file runs in seconds on every CI push; `fuzz/`
//! holds cargo-fuzz targets over the same functions for longer, coverage-guided runs. No failure
//! persistence file is written: a failure found here is fixed and pinned as a unit test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::address;
use docgate::config::Secret;
use docgate::http::client::client_ip;
use docgate::http::error::Error;
use docgate::http::request_link::{Fields, decode_fields};
use docgate::range::{self, ByteRange, RangeRequest, Spec};
use docgate::token::{Claims, ISSUER, LEEWAY_SECS, MAX_TOKEN_LEN, TokenCodec, TokenError};
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// `cases` cases, and no `proptest-regressions/` files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Turns a setup error (not the property under test) into a test failure.
fn setup<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("test setup failed: {e}")))
}

// ------------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------------

const SECRET: &[u8] = b"property tests: a secret of 32 bytes or more";
const OTHER_SECRET: &[u8] = b"property tests: somebody else's secret key";

static CODEC: LazyLock<TokenCodec> =
    LazyLock::new(|| TokenCodec::single(&Secret::new(SECRET.into())));
static OTHER_CODEC: LazyLock<TokenCodec> =
    LazyLock::new(|| TokenCodec::single(&Secret::new(OTHER_SECRET.into())));

/// Claims as minted, with `now` inside their validity window.
fn claims_and_now() -> impl Strategy<Value = (Claims, u64)> {
    (
        "[A-Za-z0-9_-]{16,64}",
        "[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
        0..4_000_000_000u64,
        0..10_000_000u64,
        any::<Index>(),
    )
        .prop_map(|(jti, doc, iat, ttl, at)| {
            let exp = iat + ttl;
            // Valid from `iat - LEEWAY` (clock skew) until `exp + LEEWAY`, exclusive.
            let window = (exp + LEEWAY_SECS) - iat.saturating_sub(LEEWAY_SECS);
            let now = iat.saturating_sub(LEEWAY_SECS)
                + at.index(usize::try_from(window).unwrap_or(usize::MAX)) as u64;
            let claims = Claims {
                jti: jti.into(),
                doc,
                iat,
                exp,
                iss: ISSUER.to_owned(),
            };
            (claims, now)
        })
}

/// One edit an attacker could make to a token.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace one character.
    Replace(Index, char),
    /// Insert one character.
    Insert(Index, char),
    /// Delete one character.
    Delete(Index),
    /// Cut the token short.
    Truncate(Index),
    /// Swap two dot-separated segments.
    Swap(Index, Index),
    /// Repeat a segment after itself.
    Duplicate(Index),
    /// Append base64 padding to a segment.
    Pad(Index, usize),
    /// Insert a dot.
    Dot(Index),
    /// Re-encode the header with another `alg`; re-sign with our secret for HS384 and HS512
    /// (algorithm confusion), drop the signature for `none`, keep it otherwise.
    Alg(&'static str),
    /// Re-sign header and claims with a key that is not ours.
    ForeignKey,
    /// Replace a segment with the same segment of another genuine token (cut and paste).
    Splice(Index),
}

fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ %"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), token_char()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<Index>(), token_char()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        any::<Index>().prop_map(Mutation::Duplicate),
        (any::<Index>(), 1..4usize).prop_map(|(i, n)| Mutation::Pad(i, n)),
        any::<Index>().prop_map(Mutation::Dot),
        prop::sample::select(vec![
            "HS256", "HS384", "HS512", "none", "None", "NONE", "RS256", "ES256", "PS256", "EdDSA",
            "hs256", "HS256 ", "", "HS",
        ])
        .prop_map(Mutation::Alg),
        Just(Mutation::ForeignKey),
        any::<Index>().prop_map(Mutation::Splice),
    ]
}

/// Signs `header.claims` (both already base64url) with `secret` and `alg`.
fn sign_parts(header: &str, claims: &str, secret: &[u8], alg: Algorithm) -> Option<String> {
    let message = format!("{header}.{claims}");
    let sig =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .ok()?;
    Some(format!("{message}.{sig}"))
}

/// Applies `mutation` to `token`; `other` is another genuine token to splice from.
fn mutate(token: &str, mutation: &Mutation, other: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    match mutation {
        Mutation::Replace(i, c) if !chars.is_empty() => {
            let i = i.index(chars.len());
            chars[i] = *c;
        }
        Mutation::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
        Mutation::Delete(i) if !chars.is_empty() => {
            chars.remove(i.index(chars.len()));
        }
        Mutation::Truncate(i) => chars.truncate(i.index(chars.len() + 1)),
        Mutation::Dot(i) => chars.insert(i.index(chars.len() + 1), '.'),
        Mutation::Swap(i, j) => {
            let (i, j) = (i.index(segments.len()), j.index(segments.len()));
            segments.swap(i, j);
            return segments.join(".");
        }
        Mutation::Duplicate(i) => {
            let i = i.index(segments.len());
            segments.insert(i, segments[i].clone());
            return segments.join(".");
        }
        Mutation::Pad(i, n) => {
            let i = i.index(segments.len());
            segments[i].push_str(&"=".repeat(*n));
            return segments.join(".");
        }
        Mutation::Splice(i) => {
            let theirs: Vec<&str> = other.split('.').collect();
            let i = i.index(segments.len().min(theirs.len()));
            theirs[i].clone_into(&mut segments[i]);
            return segments.join(".");
        }
        Mutation::Alg(alg) => return realg(&segments, alg).unwrap_or_else(|| token.to_owned()),
        Mutation::ForeignKey => {
            return match segments.as_slice() {
                [header, claims, _] => sign_parts(header, claims, OTHER_SECRET, Algorithm::HS256)
                    .unwrap_or_else(|| token.to_owned()),
                _ => token.to_owned(),
            };
        }
        Mutation::Replace(..) | Mutation::Delete(_) => {}
    }
    chars.into_iter().collect()
}

/// The token with its header's `alg` replaced; `None` when the header is no longer JSON.
fn realg(segments: &[String], alg: &str) -> Option<String> {
    let [header, claims, sig] = segments else {
        return None;
    };
    let mut json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    *json.get_mut("alg")? = Value::String(alg.to_owned());
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).ok()?);
    match alg {
        "HS384" => sign_parts(&header, claims, SECRET, Algorithm::HS384),
        "HS512" => sign_parts(&header, claims, SECRET, Algorithm::HS512),
        "none" | "None" | "NONE" => Some(format!("{header}.{claims}.")),
        _ => Some(format!("{header}.{claims}.{sig}")),
    }
}

/// Strings shaped like tokens: three base64url segments whose JSON has the right keys, the
/// right `kid`, and values of any type, so verification gets past the header to the signature.
fn token_shaped() -> impl Strategy<Value = String> {
    let kid = CODEC
        .sign(&Claims::new("doc", 0, 1))
        .ok()
        .and_then(|t| jsonwebtoken::decode_header(&t).ok())
        .and_then(|h| h.kid)
        .unwrap_or_default();
    (
        prop::sample::select(vec!["HS256", "HS512", "none", "RS256", "x"]),
        prop_oneof![Just(kid), "[0-9a-f]{16}"],
        json_value(),
        json_value(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(alg, kid, jti, exp, sig)| {
            let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
            let claims =
                json!({ "jti": jti, "doc": "resume", "iat": 0, "exp": exp, "iss": ISSUER });
            let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.{}",
                encode(&header),
                encode(&claims),
                URL_SAFE_NO_PAD.encode(sig)
            )
        })
}

fn is_invalid(result: &Result<Claims, TokenError>) -> bool {
    matches!(result, Err(TokenError::Invalid(_)))
}

proptest! {
    #![proptest_config(config(2000))]

    /// A token we signed verifies, with its claims, anywhere inside its validity window.
    #[test]
    fn genuine_tokens_verify((claims, now) in claims_and_now()) {
        let token = setup(CODEC.sign(&claims))?;
        prop_assert!(token.len() <= MAX_TOKEN_LEN);
        prop_assert_eq!(setup(CODEC.verify(&token, now))?, claims);
    }

    /// A genuine token's fate depends only on the clock, as documented: invalid when issued
    /// more than the leeway in the future, expired from `exp + LEEWAY` on, valid in between.
    #[test]
    fn genuine_tokens_follow_the_clock((claims, _) in claims_and_now(), now in any::<u64>()) {
        let token = setup(CODEC.sign(&claims))?;
        let result = CODEC.verify(&token, now);
        if claims.iat > now.saturating_add(LEEWAY_SECS) {
            prop_assert!(is_invalid(&result), "{result:?}");
        } else if now >= claims.exp + LEEWAY_SECS {
            prop_assert!(matches!(&result, Err(TokenError::Expired(c)) if **c == claims), "{result:?}");
        } else {
            prop_assert!(result.is_ok(), "{result:?}");
        }
    }

    /// Edits of a genuine token are refused as invalid (never "expired": that would mean the
    /// signature held) unless they give back a genuine token byte for byte.
    #[test]
    fn mutated_tokens_never_verify(
        (claims, now) in claims_and_now(),
        (other, _) in claims_and_now(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let genuine = setup(CODEC.sign(&claims))?;
        let other = setup(CODEC.sign(&other))?;
        let forged = mutations.iter().fold(genuine.clone(), |t, m| mutate(&t, m, &other));
        if forged != genuine && forged != other {
            let result = CODEC.verify(&forged, now);
            prop_assert!(is_invalid(&result), "{forged:?} after {mutations:?}: {result:?}");
        }
    }

    /// Tokens signed with another key, even with the right claims, are invalid.
    #[test]
    fn foreign_tokens_never_verify((claims, now) in claims_and_now()) {
        let token = setup(OTHER_CODEC.sign(&claims))?;
        prop_assert!(is_invalid(&CODEC.verify(&token, now)));
    }

    /// Arbitrary strings, and token-shaped ones with any claim types, never panic and never
    /// verify.
    #[test]
    fn arbitrary_strings_never_verify(
        token in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=.-]{0,400}",
            token_shaped(),
            // Near the length limit, on either side.
            (".{1,8}", 260..2100usize).prop_map(|(s, n)| s.repeat(n).chars().take(n).collect()),
        ],
        now in any::<u64>(),
    ) {
        let result = CODEC.verify(&token, now);
        prop_assert!(is_invalid(&result), "{token:?}: {result:?}");
    }

    /// The length limit holds before anything else: a correctly signed token (padded through a
    /// header field) verifies up to `MAX_TOKEN_LEN` bytes and is refused as too long beyond.
    #[test]
    fn long_tokens_are_refused((claims, now) in claims_and_now(), pad in 1100..1700usize) {
        let genuine = setup(CODEC.sign(&claims))?;
        let mut header = setup(jsonwebtoken::decode_header(&genuine))?;
        header.cty = Some("x".repeat(pad));
        let token = setup(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)))?;
        let result = CODEC.verify(&token, now);
        if token.len() > MAX_TOKEN_LEN {
            prop_assert!(matches!(result, Err(TokenError::Invalid("token too long"))), "{result:?}");
        } else {
            prop_assert_eq!(setup(result)?, claims);
        }
    }
}

/// The padding in `long_tokens_are_refused` straddles the limit for the smallest and the
/// largest claims, so both branches of that property run.
#[test]
fn long_token_padding_straddles_the_limit() -> Result<(), TestCaseError> {
    for (len, digits) in [(1, 1), (64, u64::MAX / 4)] {
        let claims = Claims {
            jti: "j".repeat(len.max(16)).into(),
            doc: "d".repeat(len),
            iat: digits,
            exp: digits,
            iss: ISSUER.to_owned(),
        };
        let genuine = setup(CODEC.sign(&claims))?;
        let mut header = setup(jsonwebtoken::decode_header(&genuine))?;
        let mut padded = |pad: usize| {
            header.cty = Some("x".repeat(pad));
            setup(jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(SECRET),
            ))
            .map(|t| t.len())
        };
        prop_assert!(padded(1100)? < MAX_TOKEN_LEN - 100);
        prop_assert!(padded(1699)? > MAX_TOKEN_LEN + 100);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Range
// ------------------------------------------------------------------------------------------------

/// The largest number the parser reads (19 digits); longer ones make the header ignored.
const MAX_RANGE_NUMBER: u64 = 9_999_999_999_999_999_999;

/// Numbers biased to the interesting places: small, near object sizes, near the limit.
fn range_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        0..5000u64,
        0..=MAX_RANGE_NUMBER,
        (MAX_RANGE_NUMBER - 20)..=MAX_RANGE_NUMBER,
    ]
}

fn object_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..20u64,
        0..5000u64,
        any::<u64>(),
        (u64::MAX - 20)..=u64::MAX
    ]
}

/// A spec the parser can produce.
fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (range_number(), range_number()).prop_map(|(a, b)| Spec::Bounded(a.min(b), a.max(b))),
        range_number().prop_map(Spec::From),
        range_number().prop_map(Spec::Suffix),
    ]
}

/// Optional whitespace.
fn ows() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

/// `spec` as a client could write it: any case of `bytes`, whitespace where the parser allows
/// it, leading zeros while the number stays within 19 digits.
fn spec_header() -> impl Strategy<Value = (Spec, String)> {
    (
        spec(),
        prop::sample::select(vec!["bytes", "Bytes", "BYTES", "bYtEs"]),
        prop::collection::vec(ows(), 6),
        0..4usize,
    )
        .prop_map(|(spec, unit, ws, zeros)| {
            let n = |v: u64| {
                let digits = v.to_string();
                let zeros = zeros.min(19 - digits.len());
                format!("{}{digits}", "0".repeat(zeros))
            };
            let (first, last) = match spec {
                Spec::Bounded(a, b) => (n(a), n(b)),
                Spec::From(a) => (n(a), String::new()),
                Spec::Suffix(s) => (String::new(), n(s)),
            };
            let header = format!(
                "{}{unit}{}={}{first}{}-{}{last}{}",
                ws[0], ws[1], ws[2], ws[3], ws[4], ws[5]
            );
            (spec, header)
        })
}

/// Header values, from noise to near misses.
fn range_header() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \tbByYtTeEsS=0-9,;+*-]{0,30}",
        "(bytes|Bytes|items|)=[ 0-9-]{0,25}",
        "bytes=[0-9]{0,22}-[0-9]{0,22}",
        spec_header().prop_map(|(_, h)| h),
    ]
}

/// The RFC 9110 §14.1.2 reading of a spec, as a half-open interval of byte positions computed in
/// 128 bits; `None` when it selects no byte of the object.
fn model_range(spec: Spec, size: u64) -> Option<(u128, u128)> {
    let size = u128::from(size);
    let (lo, hi) = match spec {
        Spec::Bounded(first, last) => (u128::from(first), (u128::from(last) + 1).min(size)),
        Spec::From(first) => (u128::from(first), size),
        Spec::Suffix(n) => (size.saturating_sub(u128::from(n)), size),
    };
    (lo < hi).then_some((lo, hi))
}

/// What every resolved range promises.
fn check_range(r: ByteRange, size: u64) -> Result<(), TestCaseError> {
    prop_assert!(r.start <= r.end && r.end < size, "{r:?} of {size}");
    prop_assert!(!r.is_empty());
    prop_assert_eq!(
        u128::from(r.len()),
        u128::from(r.end) - u128::from(r.start) + 1
    );
    prop_assert_eq!(
        r.reaches_end(size),
        u128::from(r.end) + 1 == u128::from(size)
    );
    prop_assert_eq!(
        r.content_range(size),
        format!("bytes {}-{}/{}", r.start, r.end, size)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(5000))]

    /// Any header parses or is ignored without panicking; what parses is a well-formed single
    /// byte range that reads back the same, and any range it resolves to is inside the object.
    #[test]
    fn range_headers_never_panic(
        header in range_header(),
        if_range in proptest::option::of("\"[a-z]{0,3}\"|W/\"[a-z]{0,3}\"|.{0,10}"),
        size in object_size(),
    ) {
        if let Some(spec) = range::parse(&header) {
            prop_assert!(!header.contains(','));
            prop_assert!(header.trim_start().get(..5).is_some_and(|u| u.eq_ignore_ascii_case("bytes")));
            let canonical = match spec {
                Spec::Bounded(a, b) => {
                    prop_assert!(a <= b);
                    format!("bytes={a}-{b}")
                }
                Spec::From(a) => format!("bytes={a}-"),
                Spec::Suffix(n) => format!("bytes=-{n}"),
            };
            prop_assert_eq!(range::parse(&canonical), Some(spec));
        }
        if let Some(request) = RangeRequest::from_headers(Some(&header), if_range.as_deref())
            && let Ok(Some(r)) = request.select("\"abc\"", size)
        {
            check_range(r, size)?;
        }
    }

    /// Resolving agrees with the model: satisfiable exactly when the model selects a byte, and
    /// then the same bytes.
    #[test]
    fn ranges_resolve_like_the_model(spec in spec(), size in object_size()) {
        let resolved = range::resolve(spec, size);
        match model_range(spec, size) {
            Some((lo, hi)) => {
                let r = setup(resolved)?;
                check_range(r, size)?;
                prop_assert_eq!((u128::from(r.start), u128::from(r.end) + 1), (lo, hi));
            }
            None => prop_assert_eq!(resolved, Err(range::Unsatisfiable { size })),
        }
    }

    /// Well-formed `bytes=a-b`, `bytes=a-` and `bytes=-n` headers, however spaced and cased,
    /// parse to their spec.
    #[test]
    fn well_formed_ranges_round_trip((spec, header) in spec_header(), size in object_size()) {
        prop_assert_eq!(range::parse(&header), Some(spec), "{:?}", header);
        let request = RangeRequest::from_headers(Some(&header), None);
        let selected = request.map(|r| r.select("\"abc\"", size));
        let expected = match model_range(spec, size) {
            Some((lo, hi)) => Ok(Some((lo, hi))),
            None => Err(range::Unsatisfiable { size }),
        };
        let selected = selected.map(|s| s.map(|r| r.map(|r| (u128::from(r.start), u128::from(r.end) + 1))));
        prop_assert_eq!(selected, Some(expected));
    }

    /// `If-Range` lets the range through only for the same strong `ETag`.
    #[test]
    fn if_range_needs_a_strong_match(
        spec in spec(),
        size in object_size(),
        etag in "(W/)?\"[ab]{0,2}\"",
        validator in "(W/)?\"[ab]{0,2}\"|.{0,8}",
    ) {
        let request = RangeRequest { spec, if_range: Some(validator.clone()) };
        let selected = request.select(&etag, size);
        if validator == etag && !etag.starts_with("W/") {
            prop_assert_eq!(selected, range::resolve(spec, size).map(Some));
        } else {
            prop_assert_eq!(selected, Ok(None));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Mailboxes (the per-address budget's key)
// ------------------------------------------------------------------------------------------------

/// A local part without `+`: dot-separated atoms of letters, digits, `-` and `_`.
fn local_part() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9_-]{1,6}", 1..4).prop_map(|atoms| atoms.join("."))
}

/// A domain, among them the dot-blind providers in mixed case and an international one.
fn mail_domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}\\.(org|com|example)",
        Just("gmail.com".to_owned()),
        Just("GoogleMail.COM".to_owned()),
        Just("Gmail.com".to_owned()),
        Just("bücher.example".to_owned()),
    ]
}

/// The mailbox of an address as typed; `None` when docgate refuses the address.
fn mailbox_of(raw: &str) -> Option<String> {
    address::validate(raw).ok().map(|a| address::mailbox(&a))
}

proptest! {
    #![proptest_config(config(2000))]

    /// A mailbox is itself an address, and its own mailbox.
    #[test]
    fn mailbox_is_idempotent(
        local in local_part(),
        tag in "(\\+[a-zA-Z0-9._-]{0,6})?",
        domain in mail_domain(),
    ) {
        let raw = format!("{local}{tag}@{domain}");
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&mailbox), Some(mailbox.clone()), "{}", raw);
    }

    /// Case does not change the mailbox, in the local part or the domain.
    #[test]
    fn mailbox_ignores_case(
        local in local_part(),
        domain in mail_domain(),
        flips in prop::collection::vec(any::<bool>(), 40),
    ) {
        let raw = format!("{local}@{domain}");
        let recased: String = raw
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &up)| {
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&recased), Some(mailbox), "{} / {}", raw, recased);
    }

    /// A `+tag` does not change the mailbox, at any domain.
    #[test]
    fn mailbox_ignores_tags(
        local in local_part(),
        tag in "[a-zA-Z0-9_-]{0,6}(\\.[a-zA-Z0-9_+-]{1,4})?",
        domain in mail_domain(),
    ) {
        let bare = format!("{local}@{domain}");
        let tagged = format!("{local}+{tag}@{domain}");
        let Some(mailbox) = mailbox_of(&bare) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&tagged), Some(mailbox), "{}", tagged);
    }

    /// Dots fold only at the dot-blind providers: elsewhere the local part keeps them.
    #[test]
    fn mailbox_keeps_dots_except_at_dot_blind_providers(
        local in local_part(),
        domain in mail_domain(),
    ) {
        let raw = format!("{local}@{domain}");
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        let (kept, _) = mailbox.rsplit_once('@').unwrap_or_default();
        let lower = local.to_lowercase();
        let dot_blind = address::DOT_BLIND_PROVIDERS
            .iter()
            .any(|(d, _)| d.eq_ignore_ascii_case(&domain));
        if dot_blind {
            prop_assert_eq!(kept, lower.replace('.', ""));
            prop_assert!(mailbox.ends_with("@gmail.com"));
        } else {
            prop_assert_eq!(kept, lower);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// X-Forwarded-For
// ------------------------------------------------------------------------------------------------

/// Addresses, often inside the trusted pools below so that walks go somewhere.
fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c))),
        any::<u8>().prop_map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d % 4))),
        any::<u16>().prop_map(|x| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x % 4))),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
    ]
}

/// Trusted networks: typical proxy ranges, the mapped-IPv4 range, and arbitrary networks.
fn trusted_nets() -> impl Strategy<Value = Vec<IpNet>> {
    let pool: Vec<IpNet> = [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "192.0.2.0/30",
        "2001:db8::/126",
        "127.0.0.1/32",
        "::1/128",
        "::ffff:0:0/96",
        "0.0.0.0/0",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let arbitrary = (address(), any::<u8>()).prop_filter_map("prefix fits", |(ip, len)| {
        let max = if ip.is_ipv4() { 33 } else { 129 };
        IpNet::new(ip, len % max).ok()
    });
    prop::collection::vec(
        prop_oneof![3 => prop::sample::select(pool), 1 => arbitrary],
        0..4,
    )
}

/// How a proxy (or a liar) might write an address: bare, with a port, bracketed, IPv4-mapped.
fn hop_text(ip: IpAddr) -> impl Strategy<Value = String> {
    let forms = match ip {
        IpAddr::V4(v4) => {
            let mapped = v4.to_ipv6_mapped();
            vec![
                format!("{v4}"),
                format!("{v4}:443"),
                format!("{mapped}"),
                format!("[{mapped}]:80"),
            ]
        }
        IpAddr::V6(v6) => vec![format!("{v6}"), format!("[{v6}]:8080")],
    };
    (prop::sample::select(forms), ows(), ows()).prop_map(|(f, a, b)| format!("{a}{f}{b}"))
}

/// One `X-Forwarded-For` entry: usually an address, sometimes garbage.
fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => address().prop_flat_map(hop_text),
        1 => prop::sample::select(vec![
            "", " ", "unknown", "1.2.3", "[::1]", "fe80::1%eth0", "10.0.0.1:99999", "_hidden",
            "::ffff:10.0.0.1:80",
        ])
        .prop_map(str::to_owned),
        1 => "[ -+\\--~]{0,12}",
    ]
}

/// One header line of hops, joined by commas (sometimes with spaces).
fn xff_line() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(hop(), 1..5), prop::bool::ANY)
        .prop_map(|(hops, space)| hops.join(if space { ", " } else { "," }).into_bytes())
}

/// Header lines as sent: mostly hops, sometimes raw bytes (obs-text, controls).
fn xff_lines(raw: bool) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let line = if raw {
        prop_oneof![
            6 => xff_line(),
            1 => prop::collection::vec(any::<u8>(), 0..20),
            1 => (xff_line(), any::<Index>(), 0x80..=0xffu8).prop_map(|(mut l, i, b)| {
                l.insert(i.index(l.len() + 1), b);
                l
            }),
        ]
        .boxed()
    } else {
        xff_line().boxed()
    };
    prop::collection::vec(line, 0..4)
}

fn peer() -> impl Strategy<Value = SocketAddr> {
    (address(), prop::bool::ANY, any::<u16>()).prop_map(|(ip, mapped, port)| match ip {
        IpAddr::V4(v4) if mapped => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port),
        ip => SocketAddr::new(ip, port),
    })
}

/// The lines that make valid header values, as a header map, in order.
fn header_map(lines: &[Vec<u8>]) -> (HeaderMap, Vec<HeaderValue>) {
    let values: Vec<HeaderValue> = lines
        .iter()
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let mut map = HeaderMap::new();
    for v in &values {
        map.append("x-forwarded-for", v.clone());
    }
    (map, values)
}

/// One hop as the model reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    Garbage,
}

/// IPv4-mapped IPv6 as IPv4, by its segments.
fn model_canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.segments() {
            [0, 0, 0, 0, 0, 0xffff, hi, lo] => {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            _ => ip,
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The documented entry syntax: an address, optionally with a port (IPv6 then in brackets), or
/// a bracketed IPv6 address without one.
fn model_hop(text: &str) -> Hop {
    let text = text.trim();
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let ip = unbracketed
        .unwrap_or(text)
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()));
    ip.map_or(Hop::Garbage, |ip| Hop::Addr(model_canonical(ip)))
}

/// All hops, left to right. An entry that is not text cannot be read, so it is garbage; the
/// other entries of its line stay readable.
fn model_hops(values: &[HeaderValue]) -> Vec<Hop> {
    values
        .iter()
        .flat_map(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .map(|entry| std::str::from_utf8(entry).map_or(Hop::Garbage, model_hop))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The documented rule, stated positionally: from an untrusted peer, the peer. Otherwise find
/// the rightmost hop that is garbage or untrusted: an untrusted address is the client; garbage
/// means the client is the (trusted) hop just right of it, or the peer if there is none. With
/// no such hop the whole chain is trusted and the client is its leftmost entry.
fn model_client(peer: SocketAddr, hops: &[Hop], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = model_canonical(peer.ip());
    if !is_trusted(&peer) {
        return peer;
    }
    let addr = |hop: Option<&Hop>| match hop {
        Some(Hop::Addr(ip)) => *ip,
        _ => peer,
    };
    match hops
        .iter()
        .rposition(|h| !matches!(h, Hop::Addr(ip) if is_trusted(ip)))
    {
        Some(k) if hops[k] == Hop::Garbage => addr(hops.get(k + 1)),
        Some(k) => addr(hops.get(k)),
        None => addr(hops.first()),
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Whatever the lines and the trusted list, the answer is the peer or an address that a
    /// readable entry of the header literally holds; from an untrusted peer it is the peer.
    #[test]
    fn client_ip_comes_from_the_peer_or_the_header(
        peer in peer(),
        lines in xff_lines(true),
        trusted in trusted_nets(),
    ) {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        let peer_ip = model_canonical(peer.ip());
        let in_header = model_hops(&values).contains(&Hop::Addr(ip));
        prop_assert!(ip == peer_ip || in_header, "{ip} from {peer} and {values:?}");
        if !trusted.iter().any(|n| n.contains(&peer_ip)) {
            prop_assert_eq!(ip, peer_ip);
        }
        if let IpAddr::V6(v6) = ip {
            prop_assert!(v6.to_ipv4_mapped().is_none(), "mapped address reported: {ip}");
        }
    }

    /// On text headers, the answer is the documented rule's, and it is a trusted address only
    /// when every hop right of the first garbage entry (from the right) was trusted too.
    #[test]
    fn client_ip_follows_the_documented_walk(
        peer in peer(),
        lines in xff_lines(false),
        trusted in trusted_nets(),
    ) {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        let hops = model_hops(&values);
        prop_assert_eq!(ip, model_client(peer, &hops, &trusted), "{:?}", values);
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        if is_trusted(&ip) {
            let right_of_garbage = hops.iter().rev().take_while(|h| **h != Hop::Garbage);
            for hop in right_of_garbage {
                prop_assert!(matches!(hop, Hop::Addr(a) if is_trusted(a)), "{ip} though {hop:?} is not trusted");
            }
        }
    }
}

/// Over raw lines: an entry that is not text (obs-text) is garbage and stops the walk; it never
/// hides the lines to its left, which the client wrote, nor the entries a proxy appended to its
/// right. (Found by this property: such a line used to be skipped whole.)
#[test]
fn client_ip_stops_at_unreadable_lines() {
    let config = config(2000);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (peer(), xff_lines(true), trusted_nets());
    let result = runner.run(&strategy, |(peer, lines, trusted)| {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        prop_assert_eq!(
            ip,
            model_client(peer, &model_hops(&values), &trusted),
            "{:?}",
            values
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ------------------------------------------------------------------------------------------------
// Link-request body
// ------------------------------------------------------------------------------------------------

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "(email|document|@|a){0,3}".prop_map(Value::String),
        "(true|on|yes|1|no| )".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("email|document|name|company|consent|.{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields a link request reads; any other key is ignored.
const FIELDS: [&str; 5] = ["email", "document", "name", "company", "consent"];

/// Keys other than the fields.
fn extra_key() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("not a field", |k| !FIELDS.contains(&k.as_str()))
}

/// What a `consent` string means: agreement for `true`, `on`, `yes`, `1` in any case.
fn agrees(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    matches!(value.as_str(), "true" | "on" | "yes" | "1")
}

/// The fields a JSON object gives, or `None` when it must be refused: text fields are strings
/// or `null`, `consent` a boolean, a string or `null`.
fn json_model(object: &serde_json::Map<String, Value>) -> Option<Fields> {
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

/// The fields a form gives, or `None` when a field repeats (refused).
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

/// A field as a client could send it: absent, `null`, or a string.
#[derive(Debug, Clone)]
enum Field {
    Absent,
    Null,
    Text(String),
}

impl Field {
    fn expected(&self) -> Option<String> {
        match self {
            Field::Text(s) => Some(s.clone()),
            Field::Absent | Field::Null => None,
        }
    }
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::Absent),
        1 => Just(Field::Null),
        6 => any::<String>().prop_map(Field::Text),
        2 => "[a-z0-9.+-]{1,10}@[a-z0-9.-]{1,10}".prop_map(Field::Text),
    ]
}

/// The error every refused body gets: a `body` problem.
fn is_body_error(result: &Result<Fields, Error>) -> bool {
    matches!(result, Err(Error::Invalid(problems)) if problems.contains_key("body"))
}

/// Bytes that are sometimes JSON objects or forms, often nearly.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "[{}\\[\\]\":, a-z0-9@.\\\\=&%+]{0,60}".prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), any::<Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = v.to_string().into_bytes();
            bytes.insert(i.index(bytes.len() + 1), b);
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// Arbitrary bytes never panic. A JSON body is accepted only when it is an object whose
    /// `email`, `document`, `name` and `company` are strings (or `null`, or absent) and whose
    /// `consent` is a boolean or a string, and then the fields are those values; a form body is
    /// accepted only with at most one of each field, and then they are its values.
    #[test]
    fn bodies_decode_to_what_they_carry(bytes in body_bytes()) {
        let json = decode_fields(false, &bytes);
        let expected = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) if !repeats_a_key(&bytes) => json_model(&object),
            _ => None,
        };
        match expected {
            Some(fields) => prop_assert_eq!(setup(json)?, fields),
            None => prop_assert!(is_body_error(&json), "{json:?}"),
        }

        let form = decode_fields(true, &bytes);
        let pairs: Vec<(String, String)> = setup(serde_urlencoded::from_bytes(&bytes))?;
        match form_model(&pairs) {
            Some(fields) => prop_assert_eq!(setup(form)?, fields),
            None => prop_assert!(is_body_error(&form), "{form:?}"),
        }
    }

    /// A JSON object built from arbitrary strings, with extra members of any type, in any
    /// order and layout, gives back its fields.
    #[test]
    fn json_objects_round_trip(
        email in field(),
        document in field(),
        extras in prop::collection::vec((extra_key(), json_value()), 0..4),
        pretty in prop::bool::ANY,
    ) {
        let mut object = serde_json::Map::new();
        for (key, value) in extras {
            object.insert(key, value);
        }
        for (name, field) in [("email", &email), ("document", &document)] {
            let value = match field {
                Field::Absent => continue,
                Field::Null => Value::Null,
                Field::Text(s) => Value::String(s.clone()),
            };
            object.insert(name.to_owned(), value);
        }
        let object = Value::Object(object);
        let bytes = setup(if pretty { serde_json::to_vec_pretty(&object) } else { serde_json::to_vec(&object) })?;
        let expected = Fields { email: email.expected(), document: document.expected(), ..Fields::default() };
        prop_assert_eq!(setup(decode_fields(false, &bytes))?, expected);
    }

    /// A form built from arbitrary strings, with extra pairs, in any order, gives back its
    /// fields.
    #[test]
    fn forms_round_trip(
        email in any::<Option<String>>(),
        document in any::<Option<String>>(),
        extras in prop::collection::vec((extra_key(), any::<String>()), 0..4),
        order in any::<Index>(),
    ) {
        let mut pairs: Vec<(String, String)> = extras
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        for (name, value) in [("email", &email), ("document", &document)] {
            if let Some(value) = value {
                let at = order.index(pairs.len() + 1);
                pairs.insert(at, (name.to_owned(), value.clone()));
            }
        }
        let body = setup(serde_urlencoded::to_string(&pairs))?;
        prop_assert_eq!(setup(decode_fields(true, body.as_bytes()))?, Fields { email, document, ..Fields::default() });
    }

    /// Arrays (even of two strings, which serde would read as the struct's fields in order),
    /// numbers, strings, booleans and `null` are refused, as are objects whose fields are not
    /// strings.
    #[test]
    fn non_objects_are_refused(
        value in prop_oneof![
            json_value().prop_filter("not an object", |v| !v.is_object()),
            (any::<String>(), any::<String>()).prop_map(|(e, d)| json!([e, d])),
            json_value()
                .prop_filter("neither string nor null", |v| !v.is_string() && !v.is_null())
                .prop_map(|v| json!({ "email": v, "document": "resume" })),
        ],
    ) {
        let bytes = value.to_string().into_bytes();
        let result = decode_fields(false, &bytes);
        prop_assert!(is_body_error(&result), "{value} gave {result:?}");
    }
}

/// Counts every member of every object in a JSON text, repeated keys included (serde_json's
/// `Value` keeps one of two): a model of "some object repeats a key" independent of
/// `docgate::json`.
struct Members;

impl<'de> serde::de::DeserializeSeed<'de> for Members {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Members {
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
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(inner) = seq.next_element_seed(Members)? {
            n += inner;
        }
        Ok(n)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
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

/// True when `bytes` is JSON in which some object names a key twice.
fn repeats_a_key(bytes: &[u8]) -> bool {
    use serde::de::DeserializeSeed;
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Members
        .deserialize(&mut deserializer)
        .is_ok_and(|all| all > members_of(&value))
}

/// A JSON text with one key of one object repeated (at any depth).
fn with_a_repeated_key() -> impl Strategy<Value = Vec<u8>> {
    (
        json_value(),
        any::<String>(),
        json_value(),
        json_value(),
        any::<Index>(),
    )
        .prop_map(|(inner, key, first, second, depth)| {
            let key = Value::String(key).to_string();
            let object = format!("{{{key}: {first}, \"x\": {inner}, {key}: {second}}}");
            match depth.index(3) {
                0 => object,
                1 => format!("[1, {object}]"),
                _ => format!("{{\"email\": \"a@example.org\", \"nested\": {object}}}"),
            }
            .into_bytes()
        })
}

proptest! {
    #![proptest_config(config(1000))]

    /// `docgate::json` reads what serde_json reads, value for value, unless an object repeats a
    /// key: then it refuses, and so does the link request body.
    #[test]
    fn strict_json_is_serde_json_without_repeated_keys(bytes in body_bytes()) {
        let ours = docgate::json::from_slice(&bytes);
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) if repeats_a_key(&bytes) => {
                prop_assert_eq!(ours, Err(docgate::json::JsonError::DuplicateKey), "{}", value);
            }
            Ok(value) => prop_assert_eq!(ours, Ok(value)),
            Err(_) => prop_assert_eq!(ours, Err(docgate::json::JsonError::Syntax)),
        }
    }

    #[test]
    fn a_repeated_key_anywhere_is_refused(bytes in with_a_repeated_key()) {
        prop_assert!(repeats_a_key(&bytes));
        prop_assert_eq!(docgate::json::from_slice(&bytes), Err(docgate::json::JsonError::DuplicateKey));
        let result = decode_fields(false, &bytes);
        prop_assert!(is_body_error(&result), "{result:?}");
    }

    /// A genuinely signed token whose header carries `crit`, whatever its value and whatever else
    /// the header holds, is refused as invalid.
    #[test]
    fn a_crit_header_never_verifies((claims, now) in claims_and_now(), crit in json_value(), typ in any::<bool>()) {
        let mut header = json!({ "alg": "HS256", "kid": CODEC.signing_kid(), "crit": crit });
        if typ {
            header["typ"] = "JWT".into();
        }
        let token = setup(sign_parts(
            &URL_SAFE_NO_PAD.encode(header.to_string()),
            &URL_SAFE_NO_PAD.encode(setup(serde_json::to_string(&claims))?),
            SECRET,
            Algorithm::HS256,
        ).ok_or("signing failed"))?;
        let result = CODEC.verify(&token, now);
        prop_assert!(is_invalid(&result), "{result:?}");
    }

    /// The `Content-Disposition` of any filename is printable ASCII; its plain `filename` is a
    /// quoted string with no quote or backslash inside; `filename*` decodes to the exact name.
    #[test]
    fn content_disposition_is_ascii_and_carries_the_exact_name(name in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 äöüßÄÖÜéèçñøåłž€\"\\_.-]{0,40}",
    ]) {
        for disposition in [docgate::config::Disposition::Attachment, docgate::config::Disposition::Inline] {
            let value = docgate::http::download::content_disposition(&name, disposition);
            prop_assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value:?}");
            prop_assert!(HeaderValue::from_str(&value).is_ok());
            let (_, rest) = value.split_once("; filename=\"").ok_or_else(|| TestCaseError::fail("no filename"))?;
            let (plain, star) = rest.split_once("\"; filename*=UTF-8''").ok_or_else(|| TestCaseError::fail("no filename*"))?;
            prop_assert!(!plain.contains(['"', '\\']), "{plain:?}");
            let decoded = setup(percent_encoding::percent_decode_str(star).decode_utf8())?;
            prop_assert_eq!(decoded.as_ref(), name.as_str());
        }
    }

    /// Every address accepted can be mailed: lettre builds a message to it whose envelope holds
    /// exactly that address, its local part is unquoted, and it validates to itself again.
    #[test]
    fn accepted_addresses_can_be_mailed(raw in prop_oneof![
        any::<String>(),
        "\"?[a-zA-Z0-9 .+_'\"\\\\ü-]{1,12}\"?@[a-z0-9ü-]{1,8}\\.(com|org|example)",
    ]) {
        if let Ok(address) = docgate::address::validate(&raw) {
            prop_assert!(!address.user().contains(['"', '\\', ' ']), "{address}");
            let mailbox = lettre::message::Mailbox::new(None, address.clone());
            let message = setup(lettre::Message::builder()
                .from(mailbox.clone())
                .to(mailbox)
                .subject("x")
                .body(String::new()))?;
            prop_assert_eq!(message.envelope().to(), std::slice::from_ref(&address));
            prop_assert_eq!(docgate::address::validate(address.as_ref()), Ok(address.clone()));
        }
    }
}

/// The models above must not be vacuous: each property's interesting branch is reachable.
#[test]
fn models_agree_with_known_answers() {
    let trusted: Vec<IpNet> = ["10.0.0.0/8"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let peer = SocketAddr::from(([10, 0, 0, 2], 5000));
    let hops = |s: &str| s.split(',').map(model_hop).collect::<Vec<_>>();
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let client = |s: &str| Some(model_client(peer, &hops(s), &trusted));
    assert_eq!(
        client("6.6.6.6, 198.51.100.7, 10.0.0.5"),
        ip("198.51.100.7")
    );
    assert_eq!(client("garbage, 10.0.0.7"), ip("10.0.0.7"));
    assert_eq!(client("10.0.0.9, 10.0.0.7"), ip("10.0.0.9"));
    assert_eq!(client("10.0.0.9, junk"), ip("10.0.0.2"));
    assert_eq!(client("[::ffff:1.2.3.4]:80"), ip("1.2.3.4"));
    assert_eq!(model_range(Spec::Suffix(5), 3), Some((0, 3)));
    assert_eq!(model_range(Spec::Bounded(2, 9), 3), Some((2, 3)));
    assert_eq!(model_range(Spec::From(3), 3), None);
    assert_eq!(model_range(Spec::Suffix(0), 3), None);
}

/// The body models are not vacuous: they accept, refuse and read `consent` as the decoder does
/// on known bodies.
#[test]
fn body_models_agree_with_known_answers() {
    let object = |v: Value| v.as_object().cloned().unwrap();
    let jane =
        json!({"email": "j@example.org", "document": "resume", "name": "Jane", "consent": "On"});
    let expected = Fields {
        email: Some("j@example.org".to_owned()),
        document: Some("resume".to_owned()),
        name: Some("Jane".to_owned()),
        company: None,
        consent: Some(true),
    };
    assert_eq!(json_model(&object(jane.clone())), Some(expected));
    assert_eq!(
        decode_fields(false, jane.to_string().as_bytes()).ok(),
        json_model(&object(jane))
    );
    for refused in [
        json!({"consent": 1}),
        json!({"company": []}),
        json!({"name": false}),
    ] {
        assert_eq!(json_model(&object(refused.clone())), None, "{refused}");
        assert!(is_body_error(&decode_fields(
            false,
            refused.to_string().as_bytes()
        )));
    }
    let pairs = |body: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap();
    let form = "consent=no&company=Acme";
    assert_eq!(
        form_model(&pairs(form)).map(|f| (f.consent, f.company)),
        Some((Some(false), Some("Acme".to_owned())))
    );
    assert_eq!(
        decode_fields(true, form.as_bytes()).ok(),
        form_model(&pairs(form))
    );
    assert_eq!(form_model(&pairs("name=a&name=b")), None);
    assert!(is_body_error(&decode_fields(true, b"name=a&name=b")));
}
