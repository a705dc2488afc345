//! Slow clients cannot hold the door, over real sockets: bodies trickled a byte a second, heads
//! hoarded from one address, readers taking a few bytes at a time, stalled downloads filling the
//! download caps, and a flooded public port while the probes answer on the admin listener.
//! Every limit is set short through its environment variable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use docgate::store::{LinkState, TokenStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::admin::TOKEN;
use crate::support::redis::{RedisServer, commandstats, reset_stats};
use crate::support::{BIG_LEN, PartialGet, TestApp, content, retry_after, sha256};

/// A connection to `to` from the loopback address `from` (any 127.0.0.0/8 address is local).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads a whole response until the server closes the connection, for at most `limit`: the text,
/// and whether the server closed it.
async fn read_until_closed(conn: &mut TcpStream, limit: Duration) -> (String, bool) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Some(left) = limit.checked_sub(started.elapsed()) else {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        };
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `head` at once, then `body` a byte a second (as far as the server lets it), and reads
/// the answer: the response text, how long after the head it came, and whether the server
/// closed the connection.
async fn trickle(to: SocketAddr, head: String, body: &str) -> (String, Duration, bool) {
    let mut conn = TcpStream::connect(to).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = conn.into_split();
    let bytes = body.as_bytes().to_vec();
    let writing = tokio::spawn(async move {
        for byte in bytes {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
        writer
    });
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut closed = false;
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(15) {
        match tokio::time::timeout(Duration::from_millis(200), reader.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                answered.get_or_insert_with(|| started.elapsed());
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
    writing.abort();
    let text = String::from_utf8_lossy(&out).into_owned();
    (text, answered.unwrap_or(started.elapsed()), closed)
}

#[tokio::test]
async fn bodies_sent_a_byte_a_second_are_cut_with_408_while_a_normal_client_is_served() {
    let app = TestApp::with(&[
        ("DOCGATE_BODY_TIMEOUT", "2s"),
        ("DOCGATE_ADMIN_TOKEN", TOKEN),
    ])
    .await;
    let (claims, link) = app.mint("resume").await;
    let path = &link[app.base.len()..];
    let admin: SocketAddr = app.admin_base["http://".len()..].parse().unwrap();

    let request = r#"{"email":"slow@example.com","document":"resume"}"#;
    let link_request = trickle(
        app.addr,
        format!(
            "POST /api/download-requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            request.len()
        ),
        request,
    );
    let form = "renew=0&padding=xxxxxxxxxx";
    let link_post = trickle(
        app.addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            form.len()
        ),
        form,
    );
    let revocation = r#"{"email":"slow@example.com"}"#;
    let admin_call = trickle(
        admin,
        format!(
            "POST /admin/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            revocation.len()
        ),
        revocation,
    );
    // Meanwhile, a client that sends its body at once is served.
    let normal = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.request_link("quick@example.com", "resume")
            .await
            .status()
    };
    let (link_request, link_post, admin_call, normal) =
        tokio::join!(link_request, link_post, admin_call, normal);
    assert_eq!(normal, 202);

    for (what, (text, after, closed)) in [
        ("link request", link_request),
        ("link POST", link_post),
        ("admin API", admin_call),
    ] {
        assert!(text.starts_with("HTTP/1.1 408"), "{what}: {text}");
        assert!(text.contains(r#""error":"body_timeout""#), "{what}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{what}: {text}"
        );
        assert!(closed, "{what}: the connection stayed open");
        assert!(
            after >= Duration::from_millis(1800) && after < Duration::from_secs(6),
            "{what}: answered after {after:?}"
        );
    }
    assert_eq!(app.outbox().len(), 1, "only the normal client's mail");
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 },
        "the cut POST spent nothing"
    );
}

#[tokio::test]
async fn one_client_hoarding_slow_heads_cannot_stop_another_being_served() {
    let app = TestApp::with(&[
        ("DOCGATE_MAX_CONNECTIONS_PER_IP", "4"),
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.3/32"),
    ])
    .await;
    // The hoarder opens 20 connections and sends half a head on each.
    let mut hoard = Vec::new();
    for _ in 0..20 {
        let mut conn = connect_from([127, 0, 0, 2], app.addr).await;
        let _ = conn
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await;
        hoard.push(conn);
    }
    // Those over its share are closed unread, at once.
    let mut closed = 0;
    for conn in &mut hoard {
        if read_until_closed(conn, Duration::from_millis(300)).await.1 {
            closed += 1;
        }
    }
    assert_eq!(closed, 16, "four held, the rest closed");

    // Another client is served meanwhile.
    let mut other = connect_from([127, 0, 0, 1], app.addr).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, closed) = read_until_closed(&mut other, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed);

    // A trusted proxy carries many clients: its connections are not capped per peer.
    let mut proxied = Vec::new();
    for _ in 0..8 {
        proxied.push(connect_from([127, 0, 0, 3], app.addr).await);
    }
    for conn in &mut proxied {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (text, _) = read_until_closed(conn, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }

    // Once the hoarder lets go, it may connect again.
    drop(hoard);
    let mut again = None;
    for _ in 0..50 {
        let mut conn = connect_from([127, 0, 0, 2], app.addr).await;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (text, _) = read_until_closed(&mut conn, Duration::from_secs(2)).await;
        if text.starts_with("HTTP/1.1 200") {
            again = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the hoarder's places never came back");
}

#[tokio::test]
async fn a_reader_below_the_minimum_rate_is_cut_and_the_link_stays_usable() {
    let app = slow_reader_is_cut(&[]).await;
    let log = app.wait_for_log(2).await;
    let outcomes: Vec<_> = log.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["interrupted", "completed"]);
}

#[tokio::test]
async fn on_redis_a_reader_below_the_minimum_rate_is_cut_and_the_link_stays_usable() {
    let redis = RedisServer::start();
    slow_reader_is_cut(&[("DOCGATE_REDIS_URL", &redis.url())]).await;
}

/// A reader far below a 64 KiB/s floor over 1 s windows is cut within a few windows; its link is
/// left with one attempt counted and downloads whole afterwards.
async fn slow_reader_is_cut(backend: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("DOCGATE_DOWNLOAD_MIN_RATE", "64KiB/s"),
        ("DOCGATE_DOWNLOAD_RATE_WINDOW", "1s"),
    ];
    settings.extend_from_slice(backend);
    let app = TestApp::with(&settings).await;
    let store = app.app.backends.store.clone();
    let (claims, link) = app.mint("big").await;

    // Takes 1 KiB every 250 ms (4 KiB/s): every write progresses, so the write deadline (30 s
    // by default) never fires; the rate floor does.
    let mut slow = PartialGet::start(&app, &link, &[], 1024).await;
    assert_eq!(slow.status, 200);
    let started = Instant::now();
    let mut released = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        slow.read_some(1024).await;
        if store.peek(&claims.jti).await.unwrap() != LinkState::InFlight {
            released = Some(started.elapsed());
            break;
        }
    }
    let released = released.expect("the slow reader kept its claim");
    assert!(
        released >= Duration::from_millis(500) && released < Duration::from_secs(6),
        "cut after {released:?}"
    );
    assert_eq!(
        store.peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 1 },
        "the cut counts one start and spends nothing"
    );
    // The connection is gone: what was in flight drains, then it ends.
    let mut rest = 0;
    for _ in 0..1000 {
        let n = slow.read_more(64 * 1024).await;
        rest += n;
        if n < 64 * 1024 {
            break;
        }
    }
    assert!(
        slow.body.len() < BIG_LEN,
        "{rest} more bytes, the whole document"
    );
    drop(slow);

    // A client at a normal speed downloads the whole document.
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), BIG_LEN);
    assert_eq!(sha256(&body), sha256(&content(3, BIG_LEN)));
    app
}

#[tokio::test]
async fn stalled_downloads_fill_the_caps_and_the_next_is_refused_without_spending_its_link() {
    let app = TestApp::with(&[
        ("DOCGATE_MAX_DOWNLOADS", "2"),
        ("DOCGATE_MAX_DOWNLOADS_PER_IP", "1"),
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let (first, first_link) = app.mint("big").await;
    let (_, second_link) = app.mint("big").await;
    let (refused, refused_link) = app.mint("big").await;
    let as_client = |ip: &'static str| [("X-Forwarded-For", ip)];
    // The refused link asked for by `ip`: the status, whether `Retry-After` says when, and the code.
    let ask_refused = |ip: &'static str| {
        let request = app
            .client
            .get(&refused_link)
            .header("X-Forwarded-For", ip)
            .send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let waits = retry_after(&response) >= 1;
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                waits,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };

    // Client A stalls one download: its own cap is full.
    let a = PartialGet::start(&app, &first_link, &as_client("198.51.100.1"), 1024).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        ask_refused("198.51.100.1").await,
        (429, true, "too_many_downloads".to_owned())
    );

    // Client B stalls another: the process's cap is full, for everyone.
    let b = PartialGet::start(&app, &second_link, &as_client("198.51.100.2"), 1024).await;
    assert_eq!(b.status, 200);
    assert_eq!(
        ask_refused("198.51.100.3").await,
        (503, true, "server_busy".to_owned())
    );

    // Neither refusal touched the link they asked for.
    assert_eq!(
        app.store().peek(&refused.jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    assert_eq!(
        app.store().peek(&first.jti).await.unwrap(),
        LinkState::InFlight
    );

    // Once the stalled downloads end, a download succeeds, whole.
    drop(a);
    drop(b);
    let mut served = None;
    for _ in 0..100 {
        let response = app
            .client
            .get(&refused_link)
            .header("X-Forwarded-For", "198.51.100.3")
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            served = Some(response.bytes().await.unwrap());
            break;
        }
        assert_eq!(response.status(), 503, "only the cap may refuse it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = served.expect("the caps never came back");
    assert_eq!(sha256(&body), sha256(&content(3, BIG_LEN)));
}

#[tokio::test]
async fn probes_on_the_admin_listener_answer_while_the_public_port_is_flooded() {
    let app = TestApp::with(&[
        ("DOCGATE_MAX_CONNECTIONS", "8"),
        ("DOCGATE_HEADER_READ_TIMEOUT", "30s"),
    ])
    .await;
    // Every public connection is taken by a slow head; the next is not served.
    let mut flood = Vec::new();
    for _ in 0..8 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        flood.push(conn);
    }
    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_until_closed(&mut waiting, Duration::from_millis(500)).await;
    assert!(text.is_empty(), "the public port is not flooded: {text}");

    for path in ["/healthz", "/readyz"] {
        let started = Instant::now();
        let response = app
            .client
            .get(format!("{}{path}", app.admin_base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        let want = if path == "/healthz" { "ok" } else { "ready" };
        assert_eq!(body["status"], want, "{path}");
    }
    drop(flood);
}

#[tokio::test]
async fn a_flood_of_readyz_causes_at_most_one_backend_check_per_interval() {
    let redis = RedisServer::start();
    let app = TestApp::with(&[("DOCGATE_REDIS_URL", &redis.url())]).await;
    reset_stats(&mut redis.client());

    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 {
            &app.admin_base
        } else {
            &app.base
        };
        calls.push(app.client.get(format!("{base}/readyz")).send());
    }
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let elapsed = started.elapsed();

    let stats = commandstats(&mut redis.client());
    let pings = stats.get("ping").copied().unwrap_or(0);
    let intervals = elapsed.as_secs() + 1;
    assert!(pings >= 1, "no readiness check reached Redis: {stats:?}");
    assert!(
        pings <= intervals,
        "{pings} PINGs for 100 probes in {elapsed:?}"
    );
}
