//! Bytes that must never be printed: keys, passwords, URLs that hold credentials.
//!
//! A leaf: every module that holds a secret (configuration, token keys, pseudonym keys, the
//! webhook's key, the admin credential) names this type, and it names nothing of docgate.

use std::fmt;

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// 32 bytes from the operating system's random number generator: a key for this process
    /// alone, when none was configured.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        // The OS RNG failing at startup leaves no safe way to sign links; there is nothing to
        // fall back to, and the process cannot do its job.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_shows_no_bytes() {
        let secret = Secret::new(b"super-secret-value".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(<18 bytes>)");
    }
}
