//! What the open internet can do to a server, over real sockets: clients that dribble, stall or
//! hoard connections, spoofed `X-Forwarded-For`, guessed tokens, mail bombs, and a signing key
//! rotated under links in flight. Every limit is set short through its environment variable.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use docgate::store::{LinkState, TokenStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::redis::RedisServer;
use crate::support::{
    BIG_LEN, PartialGet, TestApp, assert_whole_resume, content, retry_after, sha256,
};

const REQUESTS: &str = "/api/download-requests";

/// Reads until the server closes the connection (EOF or reset) or `limit` passes; returns how
/// long the close took, or `None` when it stayed open.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends a raw HTTP/1.1 request and reads the response head: status and lower-cased headers.
async fn raw(app: &TestApp, request: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_client_dribbling_its_headers_is_cut_off_at_the_header_timeout() {
    let app = TestApp::with(&[("DOCGATE_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut_after = None;
    // One header line every 200 ms: each arrives well within any per-read timeout, the whole
    // head never does.
    for i in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if conn
            .write_all(format!("X-Dribble-{i}: x\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_after = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), conn.read(&mut probe)).await
        {
            cut_after = Some(started.elapsed());
            break;
        }
    }
    let cut_after = cut_after.expect("the dribbling client was never cut off");
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(3),
        "cut off after {cut_after:?}"
    );

    // An idle keep-alive connection is closed by the same timeout.
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut conn, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle keep-alive connection stayed open");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_the_link_stays_usable() {
    let app = TestApp::with(&[("DOCGATE_WRITE_TIMEOUT", "1s")]).await;
    let (claims, link) = app.mint("big").await;

    // Read 64 KiB of 24 MiB, then stop reading without closing.
    let stalled = PartialGet::start(&app, &link, &[], 64 * 1024).await;
    assert_eq!(stalled.status, 200);
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::InFlight
    );
    let started = Instant::now();
    let mut released = None;
    for _ in 0..100 {
        if app.store().peek(&claims.jti).await.unwrap() != LinkState::InFlight {
            released = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let released = released.expect("the stalled download kept its claim");
    assert!(released < Duration::from_secs(4), "{released:?}");
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 1 },
        "the cut-off counts one start and spends nothing"
    );
    let log = app.wait_for_log(1).await;
    assert_eq!(log[0].outcome, "interrupted");
    drop(stalled);

    // The recipient retries and gets the whole document.
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), BIG_LEN);
    assert_eq!(sha256(&body), sha256(&content(3, BIG_LEN)));
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = TestApp::with(&[("DOCGATE_MAX_CONNECTIONS", "2")]).await;
    let first = TcpStream::connect(app.addr).await.unwrap();
    let _second = TcpStream::connect(app.addr).await.unwrap();
    // The kernel completes the handshake (the backlog), but docgate does not serve it.
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served: {early:?}");

    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}

#[tokio::test]
async fn headers_over_the_configured_size_or_count_are_431() {
    let app = TestApp::with(&[
        ("DOCGATE_MAX_HEADER_BYTES", "2048"),
        ("DOCGATE_MAX_HEADERS", "16"),
    ])
    .await;
    let (claims, link) = app.mint("resume").await;
    let path = &link[app.base.len()..];

    let big = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    let (status, text) = raw(&app, &big).await;
    assert_eq!(status, 431, "{text}");
    assert!(text.contains(r#""error":"headers_too_large""#), "{text}");

    let many: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, text) = raw(
        &app,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431, "{text}");

    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 },
        "refused heads touch no link"
    );
    let (status, _) = raw(
        &app,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "a head within the limits downloads");
}

/// The client address the request log recorded for each entry.
fn logged_ips(app: &TestApp) -> Vec<IpAddr> {
    app.request_log().iter().map(|e| e.client_ip).collect()
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_REQUEST_PER_IP", "2/h")]).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = app
            .request_link_via(
                &format!("198.51.100.{i}"),
                &format!("p{i}@example.org"),
                "resume",
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [202, 202, 429],
        "a new header per request is no new client"
    );
    // The refusal is counted, not stored.
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(logged_ips(&app), [loopback; 2]);
    assert_eq!(app.outbox().len(), 2);
}

#[tokio::test]
async fn a_trusted_proxy_chain_names_the_client_and_spoofed_entries_change_nothing() {
    let app = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8"),
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "2/h"),
    ])
    .await;
    // The ingress appends the address it saw; whatever the client wrote comes before it.
    let chains = [
        "203.0.113.5",
        "6.6.6.6, 203.0.113.5",
        "1.1.1.1, garbage, 203.0.113.5, 10.1.2.3",
        "203.0.113.6",
        "[::ffff:203.0.113.6]:4431",
        "::ffff:203.0.113.6",
    ];
    let mut statuses = Vec::new();
    for (n, xff) in chains.into_iter().enumerate() {
        let response = app
            .request_link_via(xff, &format!("c{n}@example.org"), "resume")
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [202, 202, 429, 202, 202, 429],
        "each real client has its own budget; the spoofed entries and the trusted hop are skipped, \
         IPv4-mapped IPv6 is the same client"
    );
    // The answered requests, stored; the refusals are only counted.
    let ips: Vec<String> = logged_ips(&app).iter().map(ToString::to_string).collect();
    assert_eq!(
        ips,
        ["203.0.113.5", "203.0.113.5", "203.0.113.6", "203.0.113.6"]
    );
}

#[tokio::test]
async fn ipv6_clients_share_a_limit_per_64() {
    let app = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "2/h"),
    ])
    .await;
    let (_, link) = app.mint("resume").await;
    let mut statuses = Vec::new();
    for xff in [
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "2001:db8:1:2::7",
        "2001:db8:1:3::1",
    ] {
        let response = app.client.head(&link).header("X-Forwarded-For", xff);
        statuses.push(response.send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200], "one /64, one budget");
}

#[tokio::test]
async fn guessed_tokens_count_against_the_client() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "3/h")]).await;
    let (claims, link) = app.mint("resume").await;
    for guess in ["a.b.c", "not-a-token", "eyJhbGciOiJub25lIn0.e30."] {
        let response = app
            .client
            .get(format!("{}/d/{guess}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{guess}");
    }
    let response = app.get(&link).await;
    assert_eq!(response.status(), 429, "the guesses used the budget");
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 },
        "the refused download did not touch the link"
    );
}

#[tokio::test]
async fn nobody_can_mail_bomb_an_inbox_from_many_addresses() {
    let app = TestApp::with(&[
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "3/h"),
    ])
    .await;
    app.requests_answered_alike(
        (0..12).map(|i| (format!("198.51.100.{i}"), "victim@example.org".to_owned())),
    )
    .await;
    assert_eq!(app.outbox().len(), 3, "only the address's budget is mailed");
    assert_eq!(app.store().live_links(), 3);
    let outcomes: Vec<String> = app.request_log().into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "sent").count(), 3);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| *o == "not_sent_address_limit")
            .count(),
        9
    );
}

#[tokio::test]
async fn the_service_wide_mail_ceiling_refuses_with_retry_after() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_MAIL", "3/h")]).await;
    for i in 0..3 {
        let response = app
            .request_link(&format!("person{i}@example.org"), "resume")
            .await;
        assert_eq!(response.status(), 202);
    }
    let refused = app.request_link("person9@example.org", "resume").await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=1200).contains(&wait), "{wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(app.outbox().len(), 3);
    assert_eq!(
        app.store().live_links(),
        3,
        "no link minted for the refused mail"
    );
}

const KEY_OLD: &str = "old-signing-key-0123456789abcdef0123456789";
const KEY_NEW: &str = "new-signing-key-0123456789abcdef0123456789";

/// A server on `redis` with these token keys (and no single secret).
async fn keyed(redis: &RedisServer, keys: &str, signing: &str) -> TestApp {
    let url = redis.url();
    TestApp::with(&[
        ("DOCGATE_REDIS_URL", url.as_str()),
        ("DOCGATE_TOKEN_SECRET", ""),
        ("DOCGATE_TOKEN_KEYS", keys),
        ("DOCGATE_TOKEN_SIGNING_KID", signing),
    ])
    .await
}

#[tokio::test]
async fn a_rotated_key_keeps_old_links_working_until_it_is_removed() {
    let redis = RedisServer::start();
    let old_keys = format!("2026-05={KEY_OLD}");
    let both = format!("2026-05={KEY_OLD}\n2026-11={KEY_NEW}");
    let new_keys = format!("2026-11={KEY_NEW}");

    // Before: links signed with the old key, mailed.
    let before = keyed(&redis, &old_keys, "2026-05").await;
    let kept = before.link("keep@example.org", "resume").await;
    let dropped = before.link("drop@example.org", "resume").await;

    // Step 1 and 2: both keys listed, the new one signs. Old links still download.
    let during = keyed(&redis, &both, "2026-11").await;
    let fresh = during.link("fresh@example.org", "resume").await;
    let path = |link: &str| link[link.find("/d/").unwrap()..].to_owned();
    let response = during
        .client
        .get(format!("{}{}", during.base, path(&kept)))
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;

    // Step 3: the old key removed. Its links are refused as invalid and left untouched;
    // links signed with the new key work.
    let after = keyed(&redis, &new_keys, "2026-11").await;
    let response = after
        .client
        .get(format!("{}{}", after.base, path(&dropped)))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_link");
    let head = during
        .client
        .head(format!("{}{}", during.base, path(&dropped)))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200, "the refused link was not consumed");
    let response = after
        .client
        .get(format!("{}{}", after.base, path(&fresh)))
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_no_server_banner() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "5/h")]).await;
    let (_, link) = app.mint("resume").await;
    let client = &app.client;
    let base = &app.base;
    let requests = [
        client.get(format!("{base}/healthz")),
        client.get(format!("{base}/readyz")),
        client.get(format!("{base}/nowhere")),
        client
            .post(format!("{base}{REQUESTS}"))
            .json(&serde_json::json!({"email": "jane@example.org", "document": "resume"})),
        client
            .post(format!("{base}{REQUESTS}"))
            .json(&serde_json::json!({"email": "nope", "document": "resume"})),
        client.get(&link).header("Range", "bytes=999999999-"),
        client.get(&link).header("Accept", "text/html"),
        client.get(&link),
        client.get(format!("{base}/d/x.y.z")),
        client.get(&link),
        client.get(&link),
        client.get(format!("{base}/request/resume")),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.send().await.unwrap();
        let headers = response.headers().clone();
        let status = response.status().as_u16();
        statuses.push(status);
        let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("server"), None, "{status}");
        assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
        // Pages send their origin with their own form posts and nothing to other sites;
        // everything else (the document's bytes, JSON) sends nothing anywhere.
        let page = get("content-type").is_some_and(|t| t.starts_with("text/html"));
        let referrer = if page { "same-origin" } else { "no-referrer" };
        assert_eq!(
            get("referrer-policy").as_deref(),
            Some(referrer),
            "{status}"
        );
        assert_eq!(
            get("cache-control").as_deref(),
            Some("no-store"),
            "{status}"
        );
        if get("content-type").is_some_and(|t| t.starts_with("text/html")) {
            let csp = get("content-security-policy").expect("HTML without a CSP");
            assert!(csp.contains("default-src 'none'"), "{csp}");
        }
        let body = response.text().await.unwrap();
        if status == 200 {
            continue;
        }
        assert!(!body.contains(&app.dir.path().display().to_string()));
    }
    assert_eq!(
        statuses,
        [200, 200, 404, 202, 400, 416, 200, 200, 400, 410, 429, 200],
        "each kind of response was seen"
    );
}

#[tokio::test]
async fn with_the_mail_ceiling_reached_every_address_gets_the_same_429() {
    let app = TestApp::with(&[
        ("DOCGATE_LIMIT_MAIL", "2/h"),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
    ])
    .await;
    let statuses = [
        app.request_link("over@example.org", "resume")
            .await
            .status(),
        app.request_link("over@example.org", "resume")
            .await
            .status(),
        app.request_link("fresh@example.org", "resume")
            .await
            .status(),
        app.request_link("over@example.org", "resume")
            .await
            .status(),
    ];
    assert_eq!(
        statuses.map(|s| s.as_u16()),
        [202, 202, 429, 429],
        "once the ceiling is reached, an address over its own limit is refused like any other"
    );
    assert_eq!(app.outbox().len(), 1);
}

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
    let app = TestApp::with(&[("DOCGATE_WRITE_TIMEOUT", "3s")]).await;
    let (claims, link) = app.mint("big").await;
    let path = &link[app.base.len()..];
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // About 160 KB/s for 5 s: slow, but never stalled as long as the write timeout.
    let mut received = 0usize;
    let mut chunk = vec![0u8; 16 * 1024];
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("the server went quiet")
            .unwrap();
        assert!(n > 0, "cut off after {received} bytes");
        received += n;
    }
    assert!(received > 200 * 1024, "{received}");
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::InFlight,
        "still downloading"
    );
}
