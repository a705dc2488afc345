//! Diagnostic logging: the `tracing` subscriber, and pseudonyms for the personal data that log
//! lines must not carry in clear.
//!
//! Architecture invariant: no log line, at any level, holds an email address, a token or a secret.
//! Addresses appear as [`pseudonym`]s (stable per address and key, not reversible without the
//! key), links as the first characters of their `jti`, routes under `/d/` as `/d/<redacted>`.

use std::io::IsTerminal;

use sha2::{Digest, Sha256};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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
    drop(result);
}

/// A short, stable stand-in for an email address in logs: `e:` and 12 hex digits of a keyed hash.
pub fn pseudonym(key: &[u8], address: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(address.to_lowercase().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("e:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_and_hide_the_address() {
        let a = pseudonym(b"key", "Jane@Example.com");
        assert_eq!(a, pseudonym(b"key", "jane@example.com"));
        assert_ne!(a, pseudonym(b"other key", "jane@example.com"));
        assert!(!a.contains("jane"));
        assert_eq!(a.len(), 14);
    }
}
