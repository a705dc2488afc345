//! Who is asking: the client's IP address, whether it wants HTML or JSON, and which site's page
//! a browser sent the request from.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{ACCEPT, HeaderName, ORIGIN};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then `X-Forwarded-For`
/// is walked from the right, skipping trusted hops, and the first untrusted address is the client.
/// A garbage entry stops the walk at the last address known good. IPv4-mapped IPv6 addresses are
/// reported as IPv4.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Every entry of every line, rightmost first. An entry that is not text (a byte over 0x7f)
    // is garbage: it stops the walk like any other, never hiding what lies to its left, and
    // never hiding the entries to its right that a proxy appended on the same line.
    let lines: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let hops = lines.iter().rev().flat_map(|line| {
        line.rsplit(|&b| b == b',')
            .map(|entry| std::str::from_utf8(entry).ok().and_then(parse_hop))
    });
    for hop in hops {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IP, possibly with a port, an IPv6 address possibly in
/// brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let bare = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// True when the client prefers HTML to JSON: a browser navigating, not an API client.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut html = 0.0f32;
    let mut json = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" => json = json.max(q),
            _ => {}
        }
    }
    html > json
}

/// True unless a browser says the request comes from a page of another site than docgate's own
/// (`public_origin`) or one of `also` (origins allowed to post, `DOCGATE_CORS_ORIGINS`).
///
/// `Origin` decides when present: docgate's origin or one of `also` passes (docgate's own only
/// with a same-origin `Sec-Fetch-Site`, when that is sent too), any other refuses. `Origin: null`
/// (a sandboxed frame, a `data:` page, a browser hiding where a post came from) passes only where
/// `Sec-Fetch-Site` vouches for it: `same-origin` or `none`. Without `Origin`, `Sec-Fetch-Site`
/// decides: `same-origin` and `none` (the person typed or bookmarked it) pass; `cross-site` and
/// `same-site` refuse, since a sibling subdomain may host anyone's pages (a site docgate trusts
/// goes in `also`, and every browser that sends `Sec-Fetch-Site` sends `Origin` on a `POST`).
/// A client that sends neither is not a browser on someone else's page, and passes.
pub fn from_own_site(headers: &HeaderMap, public_origin: &str, also: &[String]) -> bool {
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let vouched = site
        .is_none_or(|s| s.eq_ignore_ascii_case(b"same-origin") || s.eq_ignore_ascii_case(b"none"));
    match headers.get(ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some("null") => site.is_some() && vouched,
        Some(origin) if origin.eq_ignore_ascii_case(public_origin) => vouched,
        Some(origin) => also.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        None => vouched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_decides_then_fetch_site() {
        let own = "https://docs.example.com";
        let also = vec!["https://jane.example".to_owned()];
        let check = |pairs: &[(&str, &str)], also: &[String]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            from_own_site(&map, own, also)
        };
        let fs = "sec-fetch-site";
        // Browsers on docgate's own pages, and clients that are no browser.
        assert!(check(&[], &[]));
        assert!(check(&[("origin", own), (fs, "same-origin")], &[]));
        assert!(check(&[("origin", "HTTPS://Docs.Example.com")], &[]));
        assert!(check(&[(fs, "same-origin")], &[]));
        assert!(check(&[(fs, "none")], &[]));
        assert!(check(&[("origin", "null"), (fs, "same-origin")], &[]));
        // Another site's page.
        assert!(!check(
            &[("origin", "https://evil.example"), (fs, "cross-site")],
            &[]
        ));
        assert!(!check(&[("origin", "https://evil.example")], &[]));
        assert!(!check(&[(fs, "cross-site")], &[]));
        assert!(!check(&[(fs, "same-site")], &[]));
        assert!(!check(&[("origin", own), (fs, "cross-site")], &[]));
        assert!(!check(&[("origin", "null")], &[]));
        assert!(!check(&[("origin", "null"), (fs, "cross-site")], &[]));
        // An allowed origin, whatever site it is.
        assert!(check(
            &[("origin", "https://jane.example"), (fs, "cross-site")],
            &also
        ));
        assert!(!check(
            &[("origin", "https://jane.example"), (fs, "cross-site")],
            &[]
        ));
        assert!(!check(
            &[("origin", "https://jane.example.evil"), (fs, "cross-site")],
            &also
        ));
        assert!(!check(&[("origin", "null"), (fs, "cross-site")], &also));
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in xff {
            map.append(&X_FORWARDED_FOR, v.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let peer = "203.0.113.9:5000".parse().unwrap();
        let ip = client_ip(peer, &headers(&["1.2.3.4"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_chains_are_walked_from_the_right() {
        let peer = "10.0.0.2:5000".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = client_ip(
            peer,
            &headers(&["6.6.6.6, 198.51.100.7, 10.0.0.5"]),
            &trusted,
        );
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        let ip = client_ip(peer, &headers(&["6.6.6.6", "198.51.100.7"]), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        let ip = client_ip(peer, &headers(&["garbage, 10.0.0.7"]), &trusted);
        assert_eq!(ip, "10.0.0.7".parse::<IpAddr>().unwrap());
        let ip = client_ip(peer, &headers(&[]), &trusted);
        assert_eq!(ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        let ip = client_ip(peer, &headers(&["[2001:db8::1]:443"]), &trusted);
        assert_eq!(ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        let ip = client_ip(peer, &headers(&["[2001:db8::2]"]), &trusted);
        assert_eq!(ip, "2001:db8::2".parse::<IpAddr>().unwrap());
        // An entry that is not text is garbage and stops the walk: what the client wrote to its
        // left is not reached, and what the proxy appended to its right still counts.
        let mut map = headers(&["1.2.3.4"]);
        map.append(
            &X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\x80, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            client_ip(peer, &map, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let mut map = headers(&["1.2.3.4"]);
        map.append(
            &X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\x80, 10.0.0.9").unwrap(),
        );
        assert_eq!(
            client_ip(peer, &map, &trusted),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let peer = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), &[]),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let accept = |v: &str| {
            let mut map = HeaderMap::new();
            map.insert(ACCEPT, v.parse().unwrap());
            wants_html(&map)
        };
        assert!(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!accept("*/*"));
        assert!(!accept("application/json"));
        assert!(!accept("application/json, text/html;q=0.5"));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
