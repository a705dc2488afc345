//! Fuzzes `TokenCodec::verify`, which reads the token in every `/d/{token}` URL: anyone can send
//! one, and a token that verifies is a download.
//!
//! Input: `!` then edits (4 bytes each: operation, position high, position low, byte) applied to
//! a genuine token, which is how a forger starts; anything else is the token itself, as text.
//! Checks: no panic; the genuine token verifies with its claims; every other string is refused as
//! invalid (never "expired", which would mean its signature held); over `MAX_TOKEN_LEN` bytes it
//! is refused as too long.

#![no_main]

use std::sync::LazyLock;

use docgate::config::Secret;
use docgate::token::{Claims, ISSUER, MAX_TOKEN_LEN, TokenCodec, TokenError};
use libfuzzer_sys::fuzz_target;

/// Inside the genuine token's validity.
const NOW: u64 = 1_800_000_100;

static CODEC: LazyLock<TokenCodec> = LazyLock::new(|| {
    TokenCodec::single(&Secret::new(b"fuzzing secret, 32 bytes or more!".to_vec()))
});

static CLAIMS: LazyLock<Claims> = LazyLock::new(|| Claims {
    jti: "AAECAwQFBgcICQoLDA0ODxAR".into(),
    doc: "resume".to_owned(),
    iat: 1_800_000_000,
    exp: 1_800_000_900,
    iss: ISSUER.to_owned(),
});

/// The one token of this run that may verify.
static GENUINE: LazyLock<String> = LazyLock::new(|| match CODEC.sign(&CLAIMS) {
    Ok(token) => token,
    Err(e) => panic!("signing failed: {e}"),
});

/// Applies 4-byte edits to the genuine token.
fn edit(edits: &[u8]) -> String {
    let mut token: Vec<u8> = GENUINE.as_bytes().to_vec();
    for chunk in edits.chunks_exact(4) {
        let &[op, hi, lo, byte] = chunk else { continue };
        let pos = usize::from(u16::from_be_bytes([hi, lo]));
        let at = pos % (token.len() + 1);
        match op % 6 {
            0 if at < token.len() => token[at] = byte,
            1 => token.insert(at, byte),
            2 if at < token.len() => {
                token.remove(at);
            }
            3 => token.truncate(at),
            4 => {
                // Swap two dot-separated segments.
                let text = String::from_utf8_lossy(&token).into_owned();
                let mut segments: Vec<&str> = text.split('.').collect();
                let n = segments.len();
                segments.swap(pos % n, usize::from(byte) % n);
                token = segments.join(".").into_bytes();
            }
            5 => {
                // Base64 padding at the end of a segment.
                let dots: Vec<usize> = (0..token.len()).filter(|&i| token[i] == b'.').collect();
                let end = dots
                    .get(pos % (dots.len() + 1))
                    .copied()
                    .unwrap_or(token.len());
                for _ in 0..=byte % 3 {
                    token.insert(end, b'=');
                }
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&token).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let token = match data.split_first() {
        Some((b'!', edits)) => edit(edits),
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    let result = CODEC.verify(&token, NOW);
    if token == *GENUINE {
        assert!(
            matches!(&result, Ok(claims) if *claims == *CLAIMS),
            "the genuine token was refused: {result:?}"
        );
    } else if token.len() > MAX_TOKEN_LEN {
        assert!(
            matches!(result, Err(TokenError::Invalid("token too long"))),
            "{result:?}"
        );
    } else {
        assert!(
            matches!(result, Err(TokenError::Invalid(_))),
            "{token:?} was not refused as invalid: {result:?}"
        );
    }
});
