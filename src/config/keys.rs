//! The keys: the token keys that sign and verify links, the pseudonym keys that name people and
//! networks, and the admin API's bearer token. Errors name the variable, never the secret.

use super::env::{
    ENV_ADMIN_TOKEN, ENV_PSEUDONYM_KEY, ENV_PSEUDONYM_KEY_PREVIOUS, ENV_TOKEN_KEYS,
    ENV_TOKEN_SECRET, ENV_TOKEN_SIGNING_KID, Reader,
};
use super::{ConfigError, Source};
use crate::pseudonym::PseudonymKeys;
use crate::secret::Secret;
use crate::token::TokenKeys;

/// The shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The shortest HMAC key accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_SECRET_LEN: usize = 32;

/// The admin API's bearer token, at least [`MIN_ADMIN_TOKEN_LEN`] bytes; `None`: the admin API
/// is off.
pub(super) fn admin_token<S: Source>(env: &Reader<'_, S>) -> Result<Option<Secret>, ConfigError> {
    match env.secret(ENV_ADMIN_TOKEN)? {
        Some(token) if token.expose().len() < MIN_ADMIN_TOKEN_LEN => Err(ConfigError::hidden(
            ENV_ADMIN_TOKEN,
            format!(
                "must be at least {MIN_ADMIN_TOKEN_LEN} bytes, got {}",
                token.expose().len()
            ),
        )),
        token => Ok(token),
    }
}

/// Refuses a secret shorter than [`MIN_SECRET_LEN`]; `what` names it within the variable (`key
/// "a" `), and the error never shows it.
pub(super) fn check_secret_len(name: &str, what: &str, secret: &Secret) -> Result<(), ConfigError> {
    let len = secret.expose().len();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::hidden(
            name,
            format!("{what}must be at least {MIN_SECRET_LEN} bytes, got {len}"),
        ));
    }
    Ok(())
}

/// The token keys from `DOCGATE_TOKEN_KEYS`, `DOCGATE_TOKEN_SECRET` (a verify-only key beside
/// the list when both are set, so a deployment moves from one to the other without breaking
/// links), and `DOCGATE_TOKEN_SIGNING_KID`.
pub(super) fn token_keys<S: Source>(
    env: &Reader<'_, S>,
    shared: bool,
) -> Result<TokenKeys, ConfigError> {
    let mut keys = match env.secret(ENV_TOKEN_KEYS)? {
        Some(list) => parse_token_keys(&list, check_secret_len)?,
        None => Vec::new(),
    };
    if let Some(secret) = env.secret(ENV_TOKEN_SECRET)? {
        check_secret_len(ENV_TOKEN_SECRET, "", &secret)?;
        let single = TokenKeys::single(secret);
        if keys.iter().any(|(kid, _)| *kid == single.signing) {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!(
                    "lists kid {:?}, the kid of DOCGATE_TOKEN_SECRET; remove one of them",
                    single.signing
                ),
            ));
        }
        keys.extend(single.keys);
    }
    if keys.is_empty() {
        if shared {
            return Err(ConfigError::hidden(
                ENV_TOKEN_SECRET,
                "is required with DOCGATE_REDIS_URL, DOCGATE_REDIS_CLUSTER_URLS or DOCGATE_REDIS_SENTINEL_URLS (or DOCGATE_TOKEN_KEYS): every replica must sign and verify with the same key",
            ));
        }
        return Ok(TokenKeys {
            generated: true,
            ..TokenKeys::single(Secret::random())
        });
    }
    let signing = match env.get(ENV_TOKEN_SIGNING_KID) {
        Some(kid) if keys.iter().any(|(k, _)| *k == kid) => kid,
        Some(kid) => {
            return Err(ConfigError::value(
                ENV_TOKEN_SIGNING_KID,
                &kid,
                "names no key of DOCGATE_TOKEN_KEYS",
            ));
        }
        None => keys[0].0.clone(),
    };
    Ok(TokenKeys {
        keys,
        signing,
        generated: false,
    })
}

/// `DOCGATE_PSEUDONYM_KEY` and the previous keys still looked up,
/// `DOCGATE_PSEUDONYM_KEY_PREVIOUS` (one per line or separated by commas).
pub(super) fn pseudonym_keys<S: Source>(
    env: &Reader<'_, S>,
    shared: bool,
) -> Result<PseudonymKeys, ConfigError> {
    let check_len = |name: &str, secret: &Secret| check_secret_len(name, "", secret);
    let previous = match env.secret(ENV_PSEUDONYM_KEY_PREVIOUS)? {
        Some(list) => {
            let text = String::from_utf8_lossy(list.expose()).into_owned();
            let keys: Vec<Secret> = text
                .split([',', '\n'])
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| Secret::new(k.as_bytes().to_vec()))
                .collect();
            for key in &keys {
                check_len(ENV_PSEUDONYM_KEY_PREVIOUS, key)?;
            }
            keys
        }
        None => Vec::new(),
    };
    match env.secret(ENV_PSEUDONYM_KEY)? {
        Some(current) => {
            check_len(ENV_PSEUDONYM_KEY, &current)?;
            Ok(PseudonymKeys {
                current,
                previous,
                generated: false,
            })
        }
        None if shared => Err(ConfigError::hidden(
            ENV_PSEUDONYM_KEY,
            "is required with DOCGATE_REDIS_URL, DOCGATE_REDIS_CLUSTER_URLS or DOCGATE_REDIS_SENTINEL_URLS: every replica must name a person or a network the same way in Redis",
        )),
        None if !previous.is_empty() => Err(ConfigError::hidden(
            ENV_PSEUDONYM_KEY_PREVIOUS,
            "needs DOCGATE_PSEUDONYM_KEY as well",
        )),
        None => Ok(PseudonymKeys {
            current: Secret::random(),
            previous,
            generated: true,
        }),
    }
}

/// `kid=secret` entries, one per line or separated by commas; blank lines and `#` comments are
/// skipped. A `kid` is 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn parse_token_keys(
    list: &Secret,
    check_len: impl Fn(&str, &str, &Secret) -> Result<(), ConfigError>,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let text = std::str::from_utf8(list.expose())
        .map_err(|_| ConfigError::hidden(ENV_TOKEN_KEYS, "is not UTF-8 text"))?;
    let mut keys: Vec<(String, Secret)> = Vec::new();
    let entries = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for (n, entry) in entries.enumerate() {
        let Some((kid, secret)) = entry.split_once('=') else {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!("entry {} is not kid=secret", n + 1),
            ));
        };
        let kid = kid.trim();
        let kid_ok = (1..=64).contains(&kid.len())
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !kid_ok {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!(
                    "entry {}: a kid is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
                    n + 1
                ),
            ));
        }
        let secret = Secret::new(secret.trim().as_bytes().to_vec());
        check_len(ENV_TOKEN_KEYS, &format!("key {kid:?} "), &secret)?;
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!("lists kid {kid:?} twice"),
            ));
        }
        keys.push((kid.to_owned(), secret));
    }
    if keys.is_empty() {
        return Err(ConfigError::hidden(ENV_TOKEN_KEYS, "lists no key"));
    }
    Ok(keys)
}
