//! Fuzzes `client_ip`, which reads `X-Forwarded-For` to name the client every rate limit and
//! request-log entry is keyed on: a client that could choose its address would escape its limits.
//!
//! Input: byte 0 picks the TCP peer, byte 1 the trusted proxy list (from small pools, so that
//! walks go somewhere), the rest is header lines separated by `\n` (raw bytes; lines that are not
//! valid header values are left out). Checks: no panic; the answer is the peer or an address a
//! readable entry of the header holds; from an untrusted peer it is the peer; never an
//! IPv4-mapped IPv6 address; and, when every line is text, it is what the documented rule gives,
//! and a trusted address only if every hop right of the rightmost garbage entry was trusted.
//!
//! Lines that are not text (obs-text bytes) are left out of the model comparison: `client_ip`
//! skips such a line where the documented rule stops at it as garbage (reported; see
//! `client_ip_stops_at_unreadable_lines` in `tests/props/forwarded.rs`).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;

use docgate::http::client::client_ip;
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

static PEERS: LazyLock<Vec<SocketAddr>> = LazyLock::new(|| {
    [
        "10.0.0.1:1",
        "[::ffff:10.0.0.1]:1",
        "192.0.2.1:1",
        "203.0.113.9:1",
        "[2001:db8::1]:1",
        "[::1]:1",
        "127.0.0.1:1",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
});

static TRUSTED: LazyLock<Vec<Vec<IpNet>>> = LazyLock::new(|| {
    let nets = |list: &[&str]| list.iter().filter_map(|s| s.parse().ok()).collect();
    vec![
        nets(&[]),
        nets(&["10.0.0.0/8"]),
        nets(&["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"]),
        nets(&["0.0.0.0/0", "::/0"]),
        nets(&["::ffff:0:0/96", "127.0.0.0/8", "::1/128"]),
    ]
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    Garbage,
}

fn canonical(ip: IpAddr) -> IpAddr {
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

/// The documented entry syntax: an address, optionally with a port (IPv6 then in brackets).
fn hop(text: &str) -> Hop {
    let text = text.trim();
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()));
    ip.map_or(Hop::Garbage, |ip| Hop::Addr(canonical(ip)))
}

/// The documented rule, stated positionally: the rightmost hop that is garbage or untrusted
/// decides; an untrusted address is the client, garbage hands it to the trusted hop on its right
/// (or the peer); with none, the leftmost hop of an all-trusted chain is the client.
fn model(peer: IpAddr, hops: &[Hop], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
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

fuzz_target!(|data: &[u8]| {
    let [p, t, lines @ ..] = data else { return };
    let peer = PEERS[usize::from(*p) % PEERS.len()];
    let trusted = &TRUSTED[usize::from(*t) % TRUSTED.len()];
    let values: Vec<HeaderValue> = lines
        .split(|&b| b == b'\n')
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let mut headers = HeaderMap::new();
    for v in &values {
        headers.append("x-forwarded-for", v.clone());
    }

    let ip = client_ip(peer, &headers, trusted);

    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer_ip = canonical(peer.ip());
    let texts: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
    // An entry that is not text is garbage; the rest of its line stays readable.
    let hops: Vec<Hop> = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|entry| std::str::from_utf8(entry).map_or(Hop::Garbage, hop))
        .collect();
    assert!(
        ip == peer_ip || hops.contains(&Hop::Addr(ip)),
        "{ip} is neither the peer {peer} nor in {values:?}"
    );
    if !is_trusted(&peer_ip) {
        assert_eq!(ip, peer_ip);
    }
    if let IpAddr::V6(v6) = ip {
        assert!(
            v6.to_ipv4_mapped().is_none(),
            "mapped address reported: {ip}"
        );
    }
    if texts.len() == values.len() {
        assert_eq!(
            ip,
            model(peer_ip, &hops, trusted),
            "{peer} {trusted:?} {values:?}"
        );
        if is_trusted(&ip) {
            for h in hops.iter().rev().take_while(|h| **h != Hop::Garbage) {
                assert!(
                    matches!(h, Hop::Addr(a) if is_trusted(a)),
                    "{ip} though {h:?}"
                );
            }
        }
    }
});
