//! Fuzzes `client_ip`, which reads `X-Forwarded-For` to name the client every rate limit and
//! request-log entry is keyed on: a client that could choose its address would escape its limits.
//!
//! Input: byte 0 picks the TCP peer, byte 1 the trusted proxy list (from small pools, so that
//! walks go somewhere), the rest is header lines separated by `\n` (raw bytes; lines that are not
//! valid header values are left out). Checks: no panic; the answer is the peer or an address a
//! readable entry of the header holds; from an untrusted peer it is the peer; never an
//! IPv4-mapped IPv6 address; and, when every line is text, it is what the documented rule gives,
//! and a trusted address only if every hop right of the rightmost garbage entry was trusted. The
//! model of the rule is `tests/models/forwarded.rs`, shared with the property tests.
//!
//! Lines that are not text (obs-text bytes) are left out of the model comparison: `client_ip`
//! skips such a line where the documented rule stops at it as garbage (reported; see
//! `client_ip_stops_at_unreadable_lines` in `tests/props/forwarded.rs`).

#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use docgate::http::client::client_ip;
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/models/forwarded.rs"]
mod model;

use model::Hop;

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
    let peer_ip = model::canonical(peer.ip());
    let texts: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
    // An entry that is not text is garbage; the rest of its line stays readable.
    let hops = model::hops(values.iter().map(HeaderValue::as_bytes));
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
            model::client(peer_ip, &hops, trusted),
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
