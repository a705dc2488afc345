//! Rate limits per client and per address, behind [`RateLimiter`].
//!
//! The algorithm is GCRA (the generic cell rate algorithm): each key keeps one timestamp, its
//! *theoretical arrival time*. A rate of `N/period` admits bursts of `N` and then one event every
//! `period / N`; a refused event learns exactly how long to wait. [`gcra`] is the one definition of
//! the arithmetic; every implementation applies it atomically per key.
//!
//! Keys are built here, never by callers, so addresses are hashed and IPv6 clients share one key
//! per /64 (one customer's allocation) wherever a limit applies.

pub mod memory;
pub mod shared;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::units::Rate;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the same event would be allowed after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// A limiter that cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limiter unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which limit a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    RequestPerIp,
    RequestPerEmail,
    /// Link requests per recipient domain: a sprayer cannot mail one company's inboxes.
    RequestPerDomain,
    DownloadPerIp,
    /// Every link mail the service sends, whoever asked.
    Mail,
    /// Sign-in attempts on the owner's page, per client IP.
    OwnerLogin,
}

impl Scope {
    /// The limit's name, in keys and metrics.
    pub fn tag(self) -> &'static str {
        match self {
            Scope::RequestPerIp => "req-ip",
            Scope::RequestPerEmail => "req-email",
            Scope::RequestPerDomain => "req-domain",
            Scope::DownloadPerIp => "dl-ip",
            Scope::Mail => "mail",
            Scope::OwnerLogin => "owner-login",
        }
    }
}

/// A scope as the metrics label it is counted under (`Metrics::limited`).
impl From<Scope> for &'static str {
    fn from(scope: Scope) -> Self {
        scope.tag()
    }
}

/// A limit key: scope and subject, with no personal data in clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    scope: Scope,
    text: String,
    /// A limit on the whole service: its key names nobody.
    global: bool,
}

impl Key {
    /// The key for a client IP: IPv4 (and IPv4-mapped IPv6) per address, IPv6 per /64.
    pub fn ip(scope: Scope, ip: IpAddr) -> Self {
        Self::new(scope, &crate::pseudonym::network_of(ip), false)
    }

    /// The key for an email address: a hash of its lowercased form.
    pub fn email(scope: Scope, address: &str) -> Self {
        let digest = Sha256::digest(address.to_lowercase().as_bytes());
        Self::new(scope, &hex::encode(&digest[..16]), false)
    }

    /// The key for a recipient domain, hashed like an address: a personal domain names its owner.
    pub fn domain(scope: Scope, domain: &str) -> Self {
        Self::email(scope, domain)
    }

    /// The one key of a limit on the whole service.
    pub fn global(scope: Scope) -> Self {
        Self::new(scope, "all", true)
    }

    /// `<scope>:<subject>`.
    fn new(scope: Scope, subject: &str, global: bool) -> Self {
        Self {
            scope,
            text: [scope.tag(), ":", subject].concat(),
            global,
        }
    }

    /// The key as a shared store keeps it: `<scope>:<HMAC of the subject>` (a limit on the
    /// whole service keeps its plain name), so no address or network is stored in clear or as
    /// a hash anyone can recompute.
    pub fn stored(&self, ids: &crate::pseudonym::Pseudonyms) -> String {
        if self.global {
            return self.text.clone();
        }
        let tag = self.scope.tag();
        [tag, ":", &ids.limit_subject(tag, &self.text)].concat()
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Applies one event at `now` to a key whose theoretical arrival time is `tat` (`None`: a key
/// never seen or long idle). Returns the decision and, when allowed, the new arrival time to
/// store. Times are in microseconds on any monotonic scale.
pub fn gcra(tat: Option<u64>, now: u64, rate: Rate) -> (Decision, Option<u64>) {
    let interval = u64::try_from(rate.interval().as_micros()).unwrap_or(u64::MAX);
    let period = u64::try_from(rate.period.as_micros()).unwrap_or(u64::MAX);
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval);
    let ahead = new_tat - now;
    if ahead > period {
        let retry_after = Duration::from_micros(ahead - period);
        (Decision::Limited { retry_after }, None)
    } else {
        (Decision::Allowed, Some(new_tat))
    }
}

/// Per-key rate limits.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one event for `key` under `rate`, unless it is over the limit.
    async fn check(&self, key: &Key, rate: Rate) -> Result<Decision, LimitError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_rate;

    #[test]
    fn every_scope_is_a_metrics_label() {
        let all = [
            Scope::RequestPerIp,
            Scope::RequestPerEmail,
            Scope::RequestPerDomain,
            Scope::DownloadPerIp,
            Scope::Mail,
            Scope::OwnerLogin,
        ];
        // A new scope fails to compile here until it is listed above.
        for scope in all {
            match scope {
                Scope::RequestPerIp
                | Scope::RequestPerEmail
                | Scope::RequestPerDomain
                | Scope::DownloadPerIp
                | Scope::Mail
                | Scope::OwnerLogin => {}
            }
        }
        let tags: Vec<&str> = all.into_iter().map(Scope::tag).collect();
        assert_eq!(tags, crate::metrics::LIMITS);
    }

    #[test]
    fn gcra_admits_a_burst_then_paces() {
        let rate = parse_rate("3/m").unwrap();
        let mut tat = None;
        for _ in 0..3 {
            let (decision, next) = gcra(tat, 0, rate);
            assert_eq!(decision, Decision::Allowed);
            tat = next;
        }
        let (decision, next) = gcra(tat, 0, rate);
        assert_eq!(
            decision,
            Decision::Limited {
                retry_after: Duration::from_secs(20)
            }
        );
        assert_eq!(next, None);
        // 20 s later exactly one more fits.
        let (decision, next) = gcra(tat, 20_000_000, rate);
        assert_eq!(decision, Decision::Allowed);
        let (decision, _) = gcra(next, 20_000_000, rate);
        assert!(matches!(decision, Decision::Limited { .. }));
    }

    #[test]
    fn ip_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let a = Key::ip(
            Scope::DownloadPerIp,
            "2001:db8:1:2:aaaa::1".parse().unwrap(),
        );
        let b = Key::ip(
            Scope::DownloadPerIp,
            "2001:db8:1:2:bbbb::2".parse().unwrap(),
        );
        let c = Key::ip(Scope::DownloadPerIp, "2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "dl-ip:2001:db8:1:2::/64");
        let mapped = Key::ip(Scope::RequestPerIp, "::ffff:192.0.2.7".parse().unwrap());
        let v4 = Key::ip(Scope::RequestPerIp, "192.0.2.7".parse().unwrap());
        assert_eq!(mapped, v4);
        assert_ne!(
            v4,
            Key::ip(Scope::DownloadPerIp, "192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn email_keys_hide_the_address() {
        let key = Key::email(Scope::RequestPerEmail, "Jane@Example.com");
        assert_eq!(key, Key::email(Scope::RequestPerEmail, "jane@example.com"));
        assert!(!key.as_str().contains("jane"));
        assert!(!key.as_str().contains("example"));
        let domain = Key::domain(Scope::RequestPerDomain, "example.com");
        assert!(domain.as_str().starts_with("req-domain:"));
        assert!(!domain.as_str().contains("example"));
    }

    #[test]
    fn stored_keys_are_keyed_and_global_ones_plain() {
        let ids = crate::pseudonym::Pseudonyms::with_key(b"limit tests");
        let other = crate::pseudonym::Pseudonyms::with_key(b"another key");
        let ip = Key::ip(Scope::RequestPerIp, "192.0.2.7".parse().unwrap());
        let stored = ip.stored(&ids);
        assert!(stored.starts_with("req-ip:"), "{stored}");
        assert!(!stored.contains("192.0.2.7"));
        assert_ne!(stored, ip.stored(&other));
        let email = Key::email(Scope::RequestPerEmail, "jane@example.com");
        assert!(
            !email
                .stored(&ids)
                .contains(&email.as_str()["req-email:".len()..])
        );
        assert_eq!(Key::global(Scope::Mail).stored(&ids), "mail:all");
    }
}
