//! An independent statement of the documented `X-Forwarded-For` rule (which entries are
//! addresses, and which one is the client), shared by the property tests
//! (`tests/props/forwarded.rs`) and the `xff` fuzz target.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

/// One hop as the model reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Addr(IpAddr),
    Garbage,
}

/// IPv4-mapped IPv6 as IPv4, by its segments.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.segments() {
            [0, 0, 0, 0, 0, 0xffff, hi, lo] => {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            _ => ip,
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The documented entry syntax: an address, optionally with a port (IPv6 then in brackets), or
/// a bracketed IPv6 address without one.
pub fn hop(text: &str) -> Hop {
    let text = text.trim();
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let ip = unbracketed
        .unwrap_or(text)
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()));
    ip.map_or(Hop::Garbage, |ip| Hop::Addr(canonical(ip)))
}

/// All hops of the header lines (each line's bytes, in order), left to right. An entry that is
/// not text cannot be read, so it is garbage; the other entries of its line stay readable.
pub fn hops<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
    lines
        .into_iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|entry| std::str::from_utf8(entry).map_or(Hop::Garbage, hop))
        .collect()
}

/// The documented rule, stated positionally: from an untrusted peer, the peer (canonical).
/// Otherwise find the rightmost hop that is garbage or untrusted: an untrusted address is the
/// client; garbage means the client is the (trusted) hop just right of it, or the peer if there
/// is none. With no such hop the whole chain is trusted and the client is its leftmost entry.
pub fn client(peer: IpAddr, hops: &[Hop], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(&peer) {
        return peer;
    }
    let addr = |hop: Option<&Hop>| match hop {
        Some(Hop::Addr(ip)) => *ip,
        _ => peer,
    };
    match hops
        .iter()
        .rposition(|h| !matches!(h, Hop::Addr(ip) if is_trusted(ip)))
    {
        Some(k) if hops[k] == Hop::Garbage => addr(hops.get(k + 1)),
        Some(k) => addr(hops.get(k)),
        None => addr(hops.first()),
    }
}
