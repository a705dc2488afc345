//! A download read on a raw socket, so a test controls the transfer: it reads the headers and
//! some of the body, then stops reading, reads a little more, or drops the connection (a cut-off).

#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::TestApp;

/// A raw HTTP/1.1 GET that reads the headers and at least `want` body bytes, then stops reading
/// and hands back the open connection (drop it to cut the download off).
pub struct PartialGet {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Held open until the test drops it: that is the cut-off.
    _conn: TcpStream,
}

impl PartialGet {
    pub async fn start(app: &TestApp, link: &str, extra: &[(&str, &str)], want: usize) -> Self {
        Self::send(app, "GET", link, extra, want).await
    }

    /// As [`PartialGet::start`], with another method (`POST` from the confirm page).
    pub async fn send(
        app: &TestApp,
        method: &str,
        link: &str,
        extra: &[(&str, &str)],
        want: usize,
    ) -> Self {
        let path = &link[app.base.len()..];
        let socket = TcpSocket::new_v4().unwrap();
        // A small receive window, so the server cannot push the whole document into buffers.
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut conn = socket.connect(app.addr).await.unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", app.addr);
        for (k, v) in extra {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();

        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let head_end = loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the headers");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let mut body = buf[head_end..].to_vec();
        while body.len() < want {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed early");
            body.extend_from_slice(&chunk[..n]);
        }
        Self {
            status,
            headers,
            body,
            _conn: conn,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl PartialGet {
    /// One read of at most `max` body bytes, as a slow reader takes them; returns how many
    /// arrived (0 when the connection ended).
    pub async fn read_some(&mut self, max: usize) -> usize {
        let mut chunk = vec![0u8; max];
        match self._conn.read(&mut chunk).await {
            Ok(n) => {
                self.body.extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Reads up to `n` more body bytes (fewer if the server ends or cuts the transfer); returns
    /// how many arrived.
    pub async fn read_more(&mut self, n: usize) -> usize {
        let mut chunk = vec![0u8; 16 * 1024];
        let mut got = 0;
        while got < n {
            match self._conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    got += k;
                    self.body.extend_from_slice(&chunk[..k]);
                }
            }
        }
        got
    }
}
