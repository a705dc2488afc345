//! Raw HTTP/1.1: requests built byte for byte, sent on a fresh TCP connection, and the answers
//! parsed (chunked bodies included).

use super::*;

/// What came back on one connection.
pub(super) struct Reply {
    /// The first answer, if any.
    pub(super) answer: Option<Answer>,
    /// Bytes after the first answer: a second answer means a second request was served.
    pub(super) extra: Vec<u8>,
    /// The server closed the connection (it did not sit idle for [`IDLE`]).
    pub(super) closed: bool,
}

pub(super) struct Answer {
    /// Status, headers, and the body as text (empty for a document).
    pub(super) sent: Sent,
    pub(super) body: Vec<u8>,
}

/// Sends `request` on a fresh connection, reading while writing (the server may answer and close
/// before it has read everything), until the server closes or goes quiet.
pub(super) async fn exchange(app: &TestApp, request: &[u8]) -> Reply {
    let (mut rx, mut tx) = TcpStream::connect(app.addr).await.unwrap().into_split();
    let request = request.to_vec();
    // The write half is kept open until the reading is done: closing it could end the exchange.
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(&request).await;
        tx
    });
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout(IDLE, rx.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    drop(writer.await);
    match parse(&bytes) {
        Some((answer, used)) => Reply {
            answer: Some(answer),
            extra: bytes[used..].to_vec(),
            closed,
        },
        None => {
            assert!(
                bytes.is_empty(),
                "unparseable answer: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            Reply {
                answer: None,
                extra: Vec::new(),
                closed,
            }
        }
    }
}

/// The first HTTP/1.1 response in `bytes`, and how many bytes it took.
pub(super) fn parse(bytes: &[u8]) -> Option<(Answer, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.get(9..12)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(key.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let rest = &bytes[head_end..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let (body, used) = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.to_str().ok()?.parse().ok()?;
        (rest.get(..len)?.to_vec(), len)
    } else {
        (rest.to_vec(), rest.len())
    };
    let text = if headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/pdf"))
    {
        String::new()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let sent = Sent {
        status,
        headers,
        body: text,
    };
    Some((Answer { sent, body }, head_end + used))
}

/// A chunked body's bytes, and how many bytes of `bytes` it took.
pub(super) fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // No trailers from docgate: the final CRLF.
            return Some((body, at + 2));
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size + 2;
    }
}

/// A request with `Host` and `Connection: close`, and a `Content-Length` when it has a body.
pub(super) fn http(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: docgate.test\r\nConnection: close\r\n");
    for (key, value) in headers {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body.unwrap_or_default()].concat()
}

pub(super) fn get(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    http("GET", target, headers, None)
}

/// A link request body as the tables write it: bytes, text or a JSON value.
pub(super) trait Payload {
    fn into_bytes(self) -> Vec<u8>;
}

impl Payload for Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self
    }
}

impl Payload for &[u8] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl Payload for &str {
    fn into_bytes(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Payload for String {
    fn into_bytes(self) -> Vec<u8> {
        self.into()
    }
}

impl Payload for Value {
    fn into_bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// A link request with this content type (none when `None`).
pub(super) fn post(content_type: Option<&str>, body: impl Payload) -> Vec<u8> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    http("POST", REQUESTS, &headers, Some(&body.into_bytes()))
}

/// A link request sent in 1 KiB chunks, without `Content-Length`.
pub(super) fn post_chunked(content_type: Option<&str>, body: impl Payload) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    headers.push(("Transfer-Encoding", "chunked"));
    let mut request = http("POST", REQUESTS, &headers, None);
    for chunk in body.into_bytes().chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// A JSON link request announcing `length` bytes, whatever `body` holds.
pub(super) fn announced(length: &str, body: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![AS_JSON, ("Content-Length", length)];
    headers.extend_from_slice(extra);
    [http("POST", REQUESTS, &headers, None), body.to_vec()].concat()
}

/// A link request with exactly these framing headers, on a connection kept alive: if the server
/// read the body's end differently from a proxy, what follows would be served as a request.
pub(super) fn smuggle(framing: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {REQUESTS} HTTP/1.1\r\nHost: docgate.test\r\nContent-Type: application/json\r\n"
    );
    for (key, value) in framing {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

/// The same request, as HTTP/1.0.
pub(super) fn http10(request: Vec<u8>) -> Vec<u8> {
    let line_end = request.windows(2).position(|w| w == b"\r\n").unwrap();
    let version = line_end - "HTTP/1.1".len();
    assert_eq!(&request[version..line_end], b"HTTP/1.1");
    [&request[..version], b"HTTP/1.0", &request[line_end..]].concat()
}

/// A complete, valid link request for `hidden-{marker}@example.org`.
pub(super) fn hidden_request(marker: &str) -> Vec<u8> {
    let body = ask(format!("hidden-{marker}@example.org")).into_bytes();
    let head = format!(
        "POST {REQUESTS} HTTP/1.1\r\nHost: docgate.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body].concat()
}
