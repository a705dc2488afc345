//! Identifiers at rest: the keyed stand-ins for an email address or a client network that docgate
//! stores (in Redis, in the request log's indexes) or writes to diagnostic logs.
//!
//! Every such identifier is an HMAC-SHA256 under `DOCGATE_PSEUDONYM_KEY`, a secret of its own, so
//! nobody holding a copy of Redis (or of the logs) can reverse it by hashing a list of likely
//! addresses, as a bare SHA-256 would allow. Each use has its own label inside the MAC, so the
//! identifier of a person in the owner index, a rate-limit key and a log pseudonym of the same
//! address are unrelated strings.
//!
//! Rotation: `DOCGATE_PSEUDONYM_KEY_PREVIOUS` keeps the old key for *lookups* (revoking every link
//! of an address, exporting or erasing a person's request log entries) while new identifiers are
//! made with the new key only; see README.md.
//!
//! Architecture invariant: nothing else in docgate hashes an address or a network to store or log
//! it. This module does no I/O.

use std::net::{IpAddr, Ipv6Addr};

use aws_lc_rs::hmac;

use crate::secret::Secret;

/// Hex digits of an identifier: 128 bits.
const ID_BYTES: usize = 16;

/// Hex digits of a log pseudonym: 48 bits, enough to follow one address through the logs.
const LOG_BYTES: usize = 6;

/// The keys of [`Pseudonyms`], as configuration reads them: every identifier docgate stores or
/// logs for an address or a client network is an HMAC under `current`; `previous` keys are only
/// looked up.
#[derive(Debug, Clone)]
pub struct PseudonymKeys {
    pub current: Secret,
    pub previous: Vec<Secret>,
    /// True when no key was configured: a random one for this process (embedded mode only,
    /// where nothing keyed by it outlives the process).
    pub generated: bool,
}

/// The keys identifiers are made with: the current one, and the previous ones still looked up.
pub struct Pseudonyms {
    current: hmac::Key,
    previous: Vec<hmac::Key>,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonyms")
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl Pseudonyms {
    /// The identifiers of the configured keys.
    pub fn new(keys: &PseudonymKeys) -> Self {
        Self {
            current: key(&keys.current),
            previous: keys.previous.iter().map(key).collect(),
        }
    }

    /// Identifiers under one key only (tests, tools).
    pub fn with_key(secret: &[u8]) -> Self {
        Self {
            current: hmac::Key::new(hmac::HMAC_SHA256, secret),
            previous: Vec::new(),
        }
    }

    /// The person an address names, as the owner index and the request log's person index keep
    /// it: case does not matter.
    pub fn person(&self, address: &str) -> String {
        mac(
            &self.current,
            b"person",
            normalized(address).as_bytes(),
            ID_BYTES,
        )
    }

    /// [`Pseudonyms::person`] under the current key, then under each previous key: every id
    /// an address may have been stored under since the last rotation.
    pub fn people(&self, address: &str) -> Vec<String> {
        let address = normalized(address);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|key| mac(key, b"person", address.as_bytes(), ID_BYTES))
            .collect()
    }

    /// A client network (an IPv4 address, an IPv6 /64), as a download's lease holder names it.
    pub fn network(&self, client: IpAddr) -> String {
        mac(
            &self.current,
            b"network",
            network_of(client).as_bytes(),
            ID_BYTES,
        )
    }

    /// The stored form of a rate limit's subject (`scope` names the limit: one subject has
    /// unrelated keys in different limits).
    pub fn limit_subject(&self, scope: &str, subject: &str) -> String {
        let mut input = Vec::with_capacity(scope.len() + 1 + subject.len());
        input.extend_from_slice(scope.as_bytes());
        input.push(0);
        input.extend_from_slice(subject.as_bytes());
        mac(&self.current, b"limit", &input, ID_BYTES)
    }

    /// How an address appears in diagnostic logs: `e:` and 12 hex digits.
    pub fn log(&self, address: &str) -> String {
        format!(
            "e:{}",
            mac(
                &self.current,
                b"log",
                normalized(address).as_bytes(),
                LOG_BYTES
            )
        )
    }
}

/// The network a client is counted and named as: its IPv4 address (IPv4-mapped IPv6 included),
/// or the /64 of its IPv6 address (one host usually holds a whole /64).
pub fn network(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// [`network`] as text: `192.0.2.7`, or `2001:db8:1:2::/64`.
pub fn network_of(client: IpAddr) -> String {
    match network(client) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

fn key(secret: &Secret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.expose())
}

fn normalized(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Hex of the first `bytes` bytes of HMAC(key, label NUL input).
fn mac(key: &hmac::Key, label: &[u8], input: &[u8], bytes: usize) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(label);
    context.update(&[0]);
    context.update(input);
    let tag = context.sign();
    hex::encode(&tag.as_ref()[..bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &[u8], previous: &[&[u8]]) -> PseudonymKeys {
        PseudonymKeys {
            current: Secret::new(current.to_vec()),
            previous: previous.iter().map(|p| Secret::new(p.to_vec())).collect(),
            generated: false,
        }
    }

    #[test]
    fn a_person_is_the_same_whatever_the_case_and_another_key_gives_another_id() {
        let a = Pseudonyms::new(&keys(b"key one", &[]));
        let b = Pseudonyms::new(&keys(b"key two", &[]));
        let id = a.person("Jane@Example.com");
        assert_eq!(id, a.person(" jane@example.com"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, b.person("jane@example.com"));
        assert_ne!(id, a.person("john@example.com"));
    }

    #[test]
    fn no_identifier_is_a_bare_hash_of_its_input() {
        use sha2::{Digest, Sha256};
        let ids = Pseudonyms::with_key(b"a key");
        let bare = |s: &str| -> String {
            Sha256::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        for (id, input) in [
            (ids.person("jane@example.com"), "jane@example.com"),
            (ids.network("192.0.2.7".parse().unwrap()), "192.0.2.7"),
        ] {
            assert!(!bare(input).starts_with(&id), "{input}");
        }
    }

    #[test]
    fn each_use_has_its_own_identifier() {
        let ids = Pseudonyms::with_key(b"a key");
        let address = "jane@example.com";
        let person = ids.person(address);
        let limit = ids.limit_subject("req-email", address);
        let log = ids.log(address);
        assert_ne!(person, limit);
        assert!(!person.starts_with(&log[2..]));
        assert_ne!(
            ids.limit_subject("req-ip", "192.0.2.7"),
            ids.limit_subject("dl-ip", "192.0.2.7")
        );
        assert!(log.starts_with("e:") && log.len() == 14, "{log}");
    }

    #[test]
    fn lookups_cover_the_previous_keys_and_new_ids_use_the_current_one() {
        let old = Pseudonyms::new(&keys(b"old key", &[]));
        let rotated = Pseudonyms::new(&keys(b"new key", &[b"old key"]));
        let address = "jane@example.com";
        assert_eq!(
            rotated.people(address),
            vec![rotated.person(address), old.person(address)]
        );
        assert_ne!(rotated.person(address), old.person(address));
    }

    #[test]
    fn networks_group_ipv6_per_64_and_mapped_ipv4_as_ipv4() {
        let ids = Pseudonyms::with_key(b"a key");
        let net = |s: &str| ids.network(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
    }
}
