//! The set of keys links are signed and verified with, as configuration builds it
//! (`DOCGATE_TOKEN_KEYS`, `DOCGATE_TOKEN_SECRET`, `DOCGATE_TOKEN_SIGNING_KID`).

use super::key_id;
use crate::secret::Secret;

/// The token keys: every listed key verifies links, one signs new ones. Listing two keys is how
/// a key rotates without breaking links in flight.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    /// `kid` and secret, in the order configured.
    pub keys: Vec<(String, Secret)>,
    /// The `kid` of the key that signs new links; always one of `keys`.
    pub signing: String,
    /// True when no key was configured and a random one was made for this process: links
    /// then stop working when it restarts, which startup warns about.
    pub generated: bool,
}

impl TokenKeys {
    /// One key, its `kid` derived from the secret (see [`key_id`]).
    pub fn single(secret: Secret) -> Self {
        let kid = key_id(&secret);
        Self {
            keys: vec![(kid.clone(), secret)],
            signing: kid,
            generated: false,
        }
    }

    /// The secret of the signing key; `None` if `signing` names no listed key (configuration
    /// never builds such a set).
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.keys
            .iter()
            .find(|(kid, _)| *kid == self.signing)
            .map(|(_, secret)| secret)
    }
}
