//! HTTP/2 as the open internet can speak it, over real sockets: the limits it advertises, h2c
//! refused unless enabled, rapid reset, and idle connections closed at the idle timeout.

use std::time::{Duration, Instant};

use docgate::store::{LinkState, TokenStore};
use tokio::net::TcpStream;

use crate::support::{RESUME_LEN, TestApp, content, sha256};

/// An HTTP/2 client connection (prior knowledge, as behind an ingress speaking h2c).
async fn h2_connect(app: &TestApp) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Sends a bodiless request on `client` and reads the whole response.
async fn h2_get(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    uri: &str,
    headers: &[(&str, String)],
) -> Result<(u16, Vec<u8>), h2::Error> {
    let mut request = http::Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    client.clone().ready().await?;
    let (response, _) = client.send_request(request.body(()).unwrap(), true)?;
    let response = response.await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, bytes))
}

#[tokio::test]
async fn http2_advertises_its_limits_streams_downloads_and_refuses_big_header_lists() {
    let app = TestApp::with(&[
        ("DOCGATE_H2C", "on"),
        ("DOCGATE_H2_MAX_STREAMS", "2"),
        ("DOCGATE_MAX_HEADER_BYTES", "4096"),
    ])
    .await;
    let (claims, link) = app.mint("resume").await;
    let mut client = h2_connect(&app).await;

    let (status, _) = h2_get(&mut client, &format!("{}/healthz", app.base), &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        client.current_max_send_streams(),
        2,
        "SETTINGS_MAX_CONCURRENT_STREAMS"
    );

    // A header list over the limit never reaches a handler.
    let big = h2_get(&mut client, &link, &[("x-big", "a".repeat(8192))]).await;
    let (status, _) = big.unwrap();
    assert_eq!(status, 431);
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );

    // The document downloads over HTTP/2, whole.
    let mut client = h2_connect(&app).await;
    let (status, body) = h2_get(&mut client, &link, &[]).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha256(&body), sha256(&content(1, RESUME_LEN)));
}

#[tokio::test]
async fn http2_cleartext_is_refused_by_default_while_http1_is_served() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("resume").await;
    // An HTTP/2 client with prior knowledge: its preface is no HTTP/1 request, so the
    // connection ends before any response (the handshake or the first request fails).
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let (client, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client;
        h2_get(&mut client, &format!("{}/healthz", app.base), &[]).await
    })
    .await
    .expect("the server neither answered nor closed the connection");
    assert!(
        answered.is_err(),
        "an h2c request was answered: {answered:?}"
    );
    for uri in [format!("{}/healthz", app.base), link.clone()] {
        let mut client =
            match h2::client::handshake(TcpStream::connect(app.addr).await.unwrap()).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client
                }
                Err(_) => continue,
            };
        assert!(h2_get(&mut client, &uri, &[]).await.is_err(), "{uri}");
    }
    // Nothing was spent, and HTTP/1.1 on the same listener serves the health check and the link.
    assert_eq!(
        app.store().peek(&claims.jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    let body = app.download(&link).await;
    assert_eq!(sha256(&body), sha256(&content(1, RESUME_LEN)));

    // The admin listener speaks HTTP/1.1 only, whatever DOCGATE_H2C says.
    let on = TestApp::with(&[("DOCGATE_H2C", "on")]).await;
    let admin: std::net::SocketAddr = on.admin_base["http://".len()..].parse().unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut client, connection) =
            h2::client::handshake(TcpStream::connect(admin).await.unwrap()).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        h2_get(&mut client, &format!("{}/metrics", on.admin_base), &[]).await
    })
    .await
    .expect("the admin listener neither answered nor closed the connection");
    assert!(refused.is_err(), "h2c on the admin listener: {refused:?}");
}

#[tokio::test]
async fn http2_rapid_reset_ends_the_connection() {
    let app = TestApp::with(&[("DOCGATE_H2C", "on")]).await;
    let (claims, link) = app.mint("big").await;
    let client = h2_connect(&app).await;
    // Open streams and cancel each at once (CVE-2023-44487). The server must not keep serving
    // them without bound: past its limit of resets it sends GOAWAY and the connection ends.
    let mut ended = None;
    for i in 0..2000 {
        let mut ready = match client.clone().ready().await {
            Ok(ready) => ready,
            Err(e) => {
                ended = Some((i, e));
                break;
            }
        };
        let request = http::Request::get(&link).body(()).unwrap();
        match ready.send_request(request, true) {
            Ok((response, _)) => drop(response),
            Err(e) => {
                ended = Some((i, e));
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    let (i, e) = ended.expect("2000 reset streams and the connection still open");
    assert!(e.is_go_away() || e.is_io() || e.is_remote(), "{i}: {e:?}");
    // The link was not spent by streams nobody read.
    let state = app.store().peek(&claims.jti).await.unwrap();
    assert!(
        !matches!(state, LinkState::Used),
        "a cancelled stream spent the link: {state:?}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_at_the_idle_timeout() {
    let app = TestApp::with(&[("DOCGATE_H2C", "on"), ("DOCGATE_IDLE_TIMEOUT", "1s")]).await;
    let mut client = h2_connect(&app).await;
    let (status, _) = h2_get(&mut client, &format!("{}/healthz", app.base), &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    let started = Instant::now();
    let mut closed = None;
    // Nothing is sent either way (no keep-alive PINGs keep it alive).
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if h2_get(&mut client, &format!("{}/healthz", app.base), &[])
            .await
            .is_err()
        {
            closed = Some(started.elapsed());
            break;
        }
        // A request is traffic: wait the full timeout again before the next probe.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let closed = closed.expect("an idle HTTP/2 connection stayed open");
    assert!(closed < Duration::from_secs(10), "{closed:?}");
}
