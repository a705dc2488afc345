//! Link tokens: genuine ones verify (and follow the clock); mutated, foreign, arbitrary and
//! over-long ones never do.

use super::*;

pub(crate) const SECRET: &[u8] = b"property tests: a secret of 32 bytes or more";
pub(crate) const OTHER_SECRET: &[u8] = b"property tests: somebody else's secret key";

pub(crate) static CODEC: LazyLock<TokenCodec> =
    LazyLock::new(|| TokenCodec::single(&Secret::new(SECRET.into())));
pub(crate) static OTHER_CODEC: LazyLock<TokenCodec> =
    LazyLock::new(|| TokenCodec::single(&Secret::new(OTHER_SECRET.into())));

/// Claims as minted, with `now` inside their validity window.
pub(crate) fn claims_and_now() -> impl Strategy<Value = (Claims, u64)> {
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
pub(crate) enum Mutation {
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

pub(crate) fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ %"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
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
pub(crate) fn sign_parts(
    header: &str,
    claims: &str,
    secret: &[u8],
    alg: Algorithm,
) -> Option<String> {
    let message = format!("{header}.{claims}");
    let sig =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .ok()?;
    Some(format!("{message}.{sig}"))
}

/// Applies `mutation` to `token`; `other` is another genuine token to splice from.
pub(crate) fn mutate(token: &str, mutation: &Mutation, other: &str) -> String {
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
pub(crate) fn realg(segments: &[String], alg: &str) -> Option<String> {
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
pub(crate) fn token_shaped() -> impl Strategy<Value = String> {
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

pub(crate) fn is_invalid(result: &Result<Claims, TokenError>) -> bool {
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
