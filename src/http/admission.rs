//! Admission by count: how many connections one peer, and how many downloads one client and the
//! whole process, may hold at once.
//!
//! Both are in-process counters (per replica), taken before any work is done and given back when
//! the thing they count ends: [`PeerConnections::admit`] at accept, before a byte of the
//! connection is read; [`Downloads::admit`] before a link is claimed, its [`DownloadSlot`] living
//! as long as the download's response body. Clients are counted per network: an IPv4 address, or
//! the /64 of an IPv6 address (one host usually holds a whole /64).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::pseudonym::network;

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// A count of at most `max` per network.
#[derive(Debug)]
struct PerNetwork {
    max: usize,
    counts: Counts,
}

impl PerNetwork {
    fn new(max: usize) -> Self {
        Self {
            max,
            counts: Arc::default(),
        }
    }

    /// One more for `ip`'s network, unless it already holds `max`.
    fn take(&self, ip: IpAddr) -> Option<Held> {
        let key = network(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            counts: self.counts.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.values().sum()
    }
}

/// One unit of a network's count, given back on drop.
#[derive(Debug)]
pub struct Held {
    counts: Counts,
    key: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Open connections per peer on one listener.
#[derive(Debug)]
pub struct PeerConnections {
    per_peer: PerNetwork,
    /// Peers not counted: the trusted proxies, through which every client comes.
    exempt: Vec<ipnet::IpNet>,
}

/// A connection's place in its peer's count; `None` for an exempt peer.
pub type ConnectionSlot = Option<Held>;

impl PeerConnections {
    pub fn new(per_peer: usize, exempt: Vec<ipnet::IpNet>) -> Self {
        Self {
            per_peer: PerNetwork::new(per_peer),
            exempt,
        }
    }

    /// Admits a connection from `peer`: `None` when its network already holds as many
    /// connections as it may.
    pub fn admit(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        // The trusted list is checked on the address itself (an IPv4-mapped one as IPv4), not
        // its /64: a proxy listed as one IPv6 address is exempt too.
        let address = peer.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&address)) {
            return Some(None);
        }
        self.per_peer.take(peer).map(Some)
    }
}

/// Why a download was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The client already streams as many downloads as it may.
    Client,
    /// The process already streams as many downloads as it may.
    Process,
}

/// Downloads streaming at once: in the whole process and per client.
#[derive(Debug)]
pub struct Downloads {
    total: Arc<Semaphore>,
    per_client: PerNetwork,
}

/// A download's place in both counts, given back when it is dropped (with the response body).
#[derive(Debug)]
pub struct DownloadSlot {
    _total: OwnedSemaphorePermit,
    _client: Held,
}

impl Downloads {
    pub fn new(total: usize, per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            per_client: PerNetwork::new(per_client),
        }
    }

    /// Admits one more download for `client`, or says which count is full.
    pub fn admit(&self, client: IpAddr) -> Result<DownloadSlot, Full> {
        let held = self.per_client.take(client).ok_or(Full::Client)?;
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Process)?;
        Ok(DownloadSlot {
            _total: permit,
            _client: held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(network(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(network(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(network(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn connections_are_capped_per_network_and_trusted_proxies_are_exempt() {
        let peers = PeerConnections::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a = peers.admit(ip("2001:db8::1")).unwrap();
        let b = peers.admit(ip("2001:db8::2")).unwrap();
        assert!(peers.admit(ip("2001:db8::3")).is_none(), "same /64");
        assert!(peers.admit(ip("2001:db8:0:1::1")).is_some(), "another /64");
        drop(a);
        assert!(
            peers.admit(ip("2001:db8::3")).is_some(),
            "a place came back"
        );
        drop(b);
        let proxied: Vec<_> = (0..10).map(|_| peers.admit(ip("10.1.2.3"))).collect();
        assert!(proxied.iter().all(|slot| matches!(slot, Some(None))));
        assert_eq!(peers.per_peer.held(), 0, "nothing left counted");
    }

    #[test]
    fn proxies_listed_by_one_address_are_exempt_in_either_family() {
        let peers = PeerConnections::new(
            2,
            vec![
                "2001:db8::10/128".parse().unwrap(),
                "10.0.0.5/32".parse().unwrap(),
            ],
        );
        for proxy in ["2001:db8::10", "10.0.0.5", "::ffff:10.0.0.5"] {
            let held: Vec<_> = (0..5).map(|_| peers.admit(ip(proxy))).collect();
            assert!(held.iter().all(Option::is_some), "{proxy}");
        }
        // Its /64 neighbours are not the proxy: capped.
        let a = peers.admit(ip("2001:db8::11")).unwrap();
        let b = peers.admit(ip("2001:db8::12")).unwrap();
        assert!(peers.admit(ip("2001:db8::13")).is_none());
        drop((a, b));
    }

    #[test]
    fn downloads_are_capped_per_client_then_in_total() {
        let downloads = Downloads::new(2, 1);
        let a = downloads.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(downloads.admit(ip("192.0.2.1")).unwrap_err(), Full::Client);
        let _b = downloads.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(downloads.admit(ip("192.0.2.3")).unwrap_err(), Full::Process);
        assert_eq!(
            downloads.per_client.held(),
            2,
            "a refusal gives its client's place back"
        );
        drop(a);
        assert!(downloads.admit(ip("192.0.2.3")).is_ok());
    }
}
