//! Diagnostic logging: the `tracing` subscriber, and pseudonyms for the personal data that log
//! lines must not carry in clear.
//!
//! Architecture invariant: no log line, at any level, holds an email address, a token or a secret.
//! Addresses appear as [`crate::pseudonym::Pseudonyms::log`] pseudonyms (stable per address and
//! key, not reversible without the key), links as the first characters of their `jti`, routes under `/d/` as `/d/<redacted>`.
//! Panics are logged through the same subscriber, their message passed through [`redact`]
//! first, so not even a bug's message can carry personal data or a token to the logs.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log output format (`DOCGATE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Installs the global subscriber, writing to stderr in `format`.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (tests start several servers in one process): keep the first.
    if result.is_ok() {
        std::panic::set_hook(Box::new(log_panic));
    }
}

/// The panic hook: one `error` line with the location and the redacted message, instead of the
/// default hook's raw message on stderr.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let location = info
        .location()
        .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
    tracing::error!(location = %location, message = %redact(message), "panic");
}

/// `text` with every email-like word replaced by `<email>`, every JWT-like word by `<token>`,
/// and whatever follows `/d/` by `<redacted>`.
pub fn redact(text: &str) -> String {
    let is_delimiter = |c: char| c.is_whitespace() || "\"'<>(),;[]{}`".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str("<email>");
        } else if let Some(at) = word.find("/d/") {
            out.push_str(&word[..at]);
            out.push_str("/d/<redacted>");
        } else if looks_like_token(word) {
            out.push_str("<token>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_delimiter(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Three or more dot-separated base64url segments, the first two long enough to be a header and
/// claims: the shape of a JWT.
fn looks_like_token(word: &str) -> bool {
    let segments: Vec<&str> = word.split('.').collect();
    segments.len() >= 3
        && segments[..2].iter().all(|s| s.len() >= 8)
        && segments.iter().all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_addresses_tokens_and_link_paths() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJhYmMifQ.c2lnbmF0dXJl";
        let text = format!(
            "failed for jane.doe@example.com (\"{token}\") at http://h/d/{token}/x; ok v1.2.3"
        );
        let redacted = redact(&text);
        assert_eq!(
            redacted,
            "failed for <email> (\"<token>\") at http://h/d/<redacted>; ok v1.2.3"
        );
        assert_eq!(
            redact("index out of bounds: 3 > 2"),
            "index out of bounds: 3 > 2"
        );
    }

    #[test]
    fn pseudonyms_are_stable_and_hide_the_address() {
        use crate::pseudonym::Pseudonyms;
        let pseudonym = |key: &[u8], address: &str| Pseudonyms::with_key(key).log(address);
        let a = pseudonym(b"key", "Jane@Example.com");
        assert_eq!(a, pseudonym(b"key", "jane@example.com"));
        assert_ne!(a, pseudonym(b"other key", "jane@example.com"));
        assert!(!a.contains("jane"));
        assert_eq!(a.len(), 14);
    }
}
