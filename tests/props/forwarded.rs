//! `X-Forwarded-For`: the client address follows the documented walk, and never lands on a
//! trusted proxy while an untrusted hop was seen. The walk's model is `tests/models/forwarded.rs`
//! (shared with the `xff` fuzz target).

use super::*;

/// Addresses, often inside the trusted pools below so that walks go somewhere.
pub(crate) fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c))),
        any::<u8>().prop_map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d % 4))),
        any::<u16>().prop_map(|x| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x % 4))),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
    ]
}

/// Trusted networks: typical proxy ranges, the mapped-IPv4 range, and arbitrary networks.
pub(crate) fn trusted_nets() -> impl Strategy<Value = Vec<IpNet>> {
    let pool: Vec<IpNet> = [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "192.0.2.0/30",
        "2001:db8::/126",
        "127.0.0.1/32",
        "::1/128",
        "::ffff:0:0/96",
        "0.0.0.0/0",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let arbitrary = (address(), any::<u8>()).prop_filter_map("prefix fits", |(ip, len)| {
        let max = if ip.is_ipv4() { 33 } else { 129 };
        IpNet::new(ip, len % max).ok()
    });
    prop::collection::vec(
        prop_oneof![3 => prop::sample::select(pool), 1 => arbitrary],
        0..4,
    )
}

/// How a proxy (or a liar) might write an address: bare, with a port, bracketed, IPv4-mapped.
pub(crate) fn hop_text(ip: IpAddr) -> impl Strategy<Value = String> {
    let forms = match ip {
        IpAddr::V4(v4) => {
            let mapped = v4.to_ipv6_mapped();
            vec![
                format!("{v4}"),
                format!("{v4}:443"),
                format!("{mapped}"),
                format!("[{mapped}]:80"),
            ]
        }
        IpAddr::V6(v6) => vec![format!("{v6}"), format!("[{v6}]:8080")],
    };
    (prop::sample::select(forms), ows(), ows()).prop_map(|(f, a, b)| format!("{a}{f}{b}"))
}

/// One `X-Forwarded-For` entry: usually an address, sometimes garbage.
pub(crate) fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => address().prop_flat_map(hop_text),
        1 => prop::sample::select(vec![
            "", " ", "unknown", "1.2.3", "[::1]", "fe80::1%eth0", "10.0.0.1:99999", "_hidden",
            "::ffff:10.0.0.1:80",
        ])
        .prop_map(str::to_owned),
        1 => "[ -+\\--~]{0,12}",
    ]
}

/// One header line of hops, joined by commas (sometimes with spaces).
pub(crate) fn xff_line() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(hop(), 1..5), prop::bool::ANY)
        .prop_map(|(hops, space)| hops.join(if space { ", " } else { "," }).into_bytes())
}

/// Header lines as sent: mostly hops, sometimes raw bytes (obs-text, controls).
pub(crate) fn xff_lines(raw: bool) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let line = if raw {
        prop_oneof![
            6 => xff_line(),
            1 => prop::collection::vec(any::<u8>(), 0..20),
            1 => (xff_line(), any::<Index>(), 0x80..=0xffu8).prop_map(|(mut l, i, b)| {
                l.insert(i.index(l.len() + 1), b);
                l
            }),
        ]
        .boxed()
    } else {
        xff_line().boxed()
    };
    prop::collection::vec(line, 0..4)
}

pub(crate) fn peer() -> impl Strategy<Value = SocketAddr> {
    (address(), prop::bool::ANY, any::<u16>()).prop_map(|(ip, mapped, port)| match ip {
        IpAddr::V4(v4) if mapped => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port),
        ip => SocketAddr::new(ip, port),
    })
}

/// The lines that make valid header values, as a header map, in order.
pub(crate) fn header_map(lines: &[Vec<u8>]) -> (HeaderMap, Vec<HeaderValue>) {
    let values: Vec<HeaderValue> = lines
        .iter()
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let mut map = HeaderMap::new();
    for v in &values {
        map.append("x-forwarded-for", v.clone());
    }
    (map, values)
}

/// The hops of the header values, as the model reads them.
pub(crate) fn header_hops(values: &[HeaderValue]) -> Vec<Hop> {
    xff_model::hops(values.iter().map(HeaderValue::as_bytes))
}

proptest! {
    #![proptest_config(config(2000))]

    /// Whatever the lines and the trusted list, the answer is the peer or an address that a
    /// readable entry of the header literally holds; from an untrusted peer it is the peer.
    #[test]
    fn client_ip_comes_from_the_peer_or_the_header(
        peer in peer(),
        lines in xff_lines(true),
        trusted in trusted_nets(),
    ) {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        let peer_ip = xff_model::canonical(peer.ip());
        let in_header = header_hops(&values).contains(&Hop::Addr(ip));
        prop_assert!(ip == peer_ip || in_header, "{ip} from {peer} and {values:?}");
        if !trusted.iter().any(|n| n.contains(&peer_ip)) {
            prop_assert_eq!(ip, peer_ip);
        }
        if let IpAddr::V6(v6) = ip {
            prop_assert!(v6.to_ipv4_mapped().is_none(), "mapped address reported: {ip}");
        }
    }

    /// On text headers, the answer is the documented rule's, and it is a trusted address only
    /// when every hop right of the first garbage entry (from the right) was trusted too.
    #[test]
    fn client_ip_follows_the_documented_walk(
        peer in peer(),
        lines in xff_lines(false),
        trusted in trusted_nets(),
    ) {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        let hops = header_hops(&values);
        prop_assert_eq!(ip, xff_model::client(peer.ip(), &hops, &trusted), "{:?}", values);
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        if is_trusted(&ip) {
            let right_of_garbage = hops.iter().rev().take_while(|h| **h != Hop::Garbage);
            for hop in right_of_garbage {
                prop_assert!(matches!(hop, Hop::Addr(a) if is_trusted(a)), "{ip} though {hop:?} is not trusted");
            }
        }
    }
}

/// Over raw lines: an entry that is not text (obs-text) is garbage and stops the walk; it never
/// hides the lines to its left, which the client wrote, nor the entries a proxy appended to its
/// right. (Found by this property: such a line used to be skipped whole.)
#[test]
fn client_ip_stops_at_unreadable_lines() {
    let config = config(2000);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (peer(), xff_lines(true), trusted_nets());
    let result = runner.run(&strategy, |(peer, lines, trusted)| {
        let (map, values) = header_map(&lines);
        let ip = client_ip(peer, &map, &trusted);
        prop_assert_eq!(
            ip,
            xff_model::client(peer.ip(), &header_hops(&values), &trusted),
            "{:?}",
            values
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
