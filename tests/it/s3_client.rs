//! The S3 client's own HTTP transport (`docgate::objects::s3::http`) against an in-process S3
//! server: its read buffers (a lone response reads up to `READ_BUFFER_WIDE`, one that starts while
//! `FEW_RESPONSES` others are open no more than `READ_BUFFER_MAX` at once, objects many times that
//! size stream exactly), that a reader who stops stops the reads from S3, how far its receive
//! buffer lets the store send ahead of a reader (fixed, or the kernel's sizing), and its
//! connections: one read to its end carries the next request, one left half-read is closed, never
//! reused, and one the store closed while it waited in the pool is never sent a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use docgate::objects::ObjectSource;
use docgate::objects::s3::http::{
    FEW_RESPONSES, IDLE_TIMEOUT, KernelSized, READ_BUFFER_MAX, READ_BUFFER_WIDE, ReceiveBuffer,
};

use tokio::io::AsyncWriteExt;

use crate::support::chaos::ChaosProxy;
use crate::support::objects::{range, read_all};
use crate::support::s3::{
    BUCKET, S3Server, client_on_docgate_transport, client_on_docgate_transport_with,
    client_on_docgate_transport_without_retries, request_head, sent_to_a_reader_standing_still,
};
use crate::support::{content, eventually, sha256};

const KEY: &str = "resume/Jane_Doe_Resume.pdf";

/// An S3 server holding `len` bytes of seed `seed` under `KEY`, the bytes, and a client on
/// docgate's transport to it.
async fn serving(seed: u8, len: usize) -> (S3Server, aws_sdk_s3::Client, Vec<u8>) {
    let server = S3Server::start().await;
    let bytes = content(seed, len);
    server.put(KEY, &bytes).await;
    let client = client_on_docgate_transport(&server.endpoint());
    (server, client, bytes)
}

/// As [`serving`], with the client's connections through a proxy that counts them.
async fn through_a_proxy(
    seed: u8,
    len: usize,
) -> (S3Server, ChaosProxy, aws_sdk_s3::Client, Vec<u8>) {
    let server = S3Server::start().await;
    let bytes = content(seed, len);
    server.put(KEY, &bytes).await;
    let proxy = ChaosProxy::start(server.addr).await;
    let client = client_on_docgate_transport(&proxy.endpoint());
    (server, proxy, client, bytes)
}

/// One `GetObject` of `KEY`, its body not yet read.
async fn get(client: &aws_sdk_s3::Client) -> GetObjectOutput {
    client
        .get_object()
        .bucket(BUCKET)
        .key(KEY)
        .send()
        .await
        .unwrap()
}

/// One `GetObject` of `KEY`, read to its end.
async fn get_whole(client: &aws_sdk_s3::Client) -> Vec<u8> {
    let body = get(client).await.body.collect().await.unwrap();
    body.into_bytes().to_vec()
}

/// The largest body piece of one `GetObject` of `KEY`, read slowly at first so the socket fills
/// up (an unbounded buffer would then take far more at once), with the bytes checked.
async fn largest_piece(client: &aws_sdk_s3::Client, bytes: &[u8]) -> usize {
    let mut body = get(client).await.body;
    let mut got = Vec::with_capacity(bytes.len());
    let mut largest = 0;
    let mut pieces = 0;
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        largest = largest.max(piece.len());
        got.extend_from_slice(&piece);
        pieces += 1;
        if pieces <= 6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(sha256(&got), sha256(bytes));
    largest
}

#[tokio::test]
async fn a_lone_body_reads_with_the_wide_buffer_and_never_beyond_it() {
    let (_server, client, bytes) = serving(21, 6 * 1024 * 1024).await;

    let largest = largest_piece(&client, &bytes).await;
    assert!(largest <= READ_BUFFER_WIDE, "a {largest}-byte piece");
    assert!(
        largest > READ_BUFFER_MAX,
        "{largest}: a lone response reads beyond the bounded buffer"
    );
}

#[tokio::test]
async fn with_many_responses_open_pieces_never_exceed_the_bounded_buffer() {
    let (_server, client, bytes) = serving(24, 4 * 1024 * 1024).await;

    // Responses left open, not read: the next one starts among many.
    let mut open = Vec::with_capacity(FEW_RESPONSES);
    for _ in 0..FEW_RESPONSES {
        open.push(get(&client).await);
    }
    let largest = largest_piece(&client, &bytes).await;
    assert!(largest <= READ_BUFFER_MAX, "a {largest}-byte piece");
    assert!(
        largest > READ_BUFFER_MAX / 2,
        "{largest}: the buffer grows to its bound"
    );

    // Their bodies dropped, a lone response reads wide again.
    drop(open);
    let largest = largest_piece(&client, &bytes).await;
    assert!(
        largest > READ_BUFFER_MAX,
        "{largest}: with the others closed, reads are wide again"
    );
}

#[tokio::test]
async fn objects_many_times_the_read_buffer_stream_exactly_whole_and_in_ranges() {
    let server = S3Server::start().await;
    let bytes = content(22, 40 * READ_BUFFER_MAX + 12_345);
    server.put(KEY, &bytes).await;
    let source = server.source().await;

    let object = source.open(KEY, None).await.unwrap();
    assert_eq!(sha256(&read_all(object).await), sha256(&bytes));

    // A range that starts and ends inside buffers, crossing many of them.
    let (first, last) = (READ_BUFFER_MAX + 17, 30 * READ_BUFFER_MAX + 5);
    let request = range(&format!("bytes={first}-{last}"), None);
    let object = source.open(KEY, Some(&request)).await.unwrap();
    assert_eq!(object.len(), (last - first + 1) as u64);
    assert_eq!(read_all(object).await, bytes[first..=last]);
}

#[tokio::test]
async fn a_reader_that_stops_stops_the_reads_from_s3() {
    let bytes = content(23, 32 * 1024 * 1024);
    // Nobody reads after the first chunk: once the socket buffers are full, nothing more comes
    // from S3.
    let settled = sent_to_a_reader_standing_still(KEY, &bytes).await;
    assert!(
        settled < bytes.len() as u64 / 2,
        "{settled} bytes came from S3 for a reader that took one chunk"
    );
}

#[tokio::test]
async fn a_connection_read_to_its_end_carries_the_next_request_and_a_half_read_one_is_closed() {
    let (_server, proxy, client, bytes) = through_a_proxy(25, 8 * READ_BUFFER_WIDE + 99).await;

    // One after the other, each body read to its end (a HEAD has none): one connection.
    for _ in 0..3 {
        let head = client.head_object().bucket(BUCKET).key(KEY).send().await;
        assert_eq!(head.unwrap().content_length(), Some(bytes.len() as i64));
        assert_eq!(sha256(&get_whole(&client).await), sha256(&bytes));
    }
    assert_eq!(
        proxy.accepted(),
        1,
        "requests read to their end share a connection"
    );

    // A body dropped after its first piece: its connection, with the rest unread, is closed.
    let mut body = get(&client).await.body;
    assert!(body.next().await.unwrap().unwrap().len() < bytes.len());
    drop(body);
    assert_eq!(sha256(&get_whole(&client).await), sha256(&bytes));
    assert_eq!(
        proxy.accepted(),
        2,
        "the half-read connection was not reused; a new one carried the next request"
    );

    // A missing object's error answer is read to its end too: the connection stays.
    let missing = client
        .get_object()
        .bucket(BUCKET)
        .key("no/such.pdf")
        .send()
        .await;
    assert!(missing.is_err());
    assert_eq!(sha256(&get_whole(&client).await), sha256(&bytes));
    assert_eq!(
        proxy.accepted(),
        2,
        "an error answer's connection carries the next request"
    );
}

#[tokio::test]
async fn a_connection_left_idle_for_the_idle_timeout_is_closed() {
    let (_server, proxy, client, bytes) = through_a_proxy(26, 3 * READ_BUFFER_MAX).await;
    assert_eq!(sha256(&get_whole(&client).await), sha256(&bytes));
    assert_eq!(proxy.active(), 1, "kept open for the next request");

    // No request comes: once it has been idle that long, the pool closes it by itself. (A
    // moment first, for the pool's reaper to start its wait.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::pause();
    tokio::time::advance(IDLE_TIMEOUT + Duration::from_secs(1)).await;
    tokio::time::resume();
    eventually(
        "the idle connection closed after the idle timeout",
        Duration::from_secs(5),
        || async { (proxy.active() == 0).then_some(()) },
    )
    .await;
}

/// A raw store's answer head for an object of `len` bytes.
fn answer_head(len: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nETag: \"e1\"\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

/// A store that answers one `GET` per connection, keep-alive as far as the answer says, then
/// closes the connection a moment later, as S3 closes a keep-alive connection it finds idle. Counts
/// the connections it accepted and the requests it answered.
struct ClosesWhenIdle {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ClosesWhenIdle {
    async fn start(body: Vec<u8>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, answered, closed) = (Arc::default(), Arc::default(), Arc::default());
        let counts: (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) = (
            Arc::clone(&accepted),
            Arc::clone(&answered),
            Arc::clone(&closed),
        );
        let task = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counts.0.fetch_add(1, Ordering::SeqCst);
                request_head(&mut socket).await;
                socket
                    .write_all(answer_head(body.len()).as_bytes())
                    .await
                    .unwrap();
                socket.write_all(&body).await.unwrap();
                counts.1.fetch_add(1, Ordering::SeqCst);
                // Later, once the client has put the connection back in its pool.
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(socket);
                counts.2.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            addr,
            accepted,
            answered,
            closed,
            task,
        }
    }
}

impl Drop for ClosesWhenIdle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_connection_the_store_closed_while_idle_is_never_sent_a_request() {
    let bytes = content(27, 3 * READ_BUFFER_MAX + 5);
    let store = ClosesWhenIdle::start(bytes.clone()).await;
    // One try per request: a request sent on the closed connection would fail the call.
    let client = client_on_docgate_transport_without_retries(&format!("http://{}", store.addr));
    for round in 1..=3 {
        assert_eq!(
            sha256(&get_whole(&client).await),
            sha256(&bytes),
            "round {round}"
        );
        // The store has closed the connection that carried it; the pool still holds it, idle.
        eventually(
            "the store closed the connection",
            Duration::from_secs(5),
            || async { (store.closed.load(Ordering::SeqCst) == round).then_some(()) },
        )
        .await;
    }
    assert_eq!(store.answered.load(Ordering::SeqCst), 3);
    assert_eq!(
        store.accepted.load(Ordering::SeqCst),
        3,
        "each request on a connection of its own: none was sent on a closed one"
    );
}

#[tokio::test]
async fn a_connection_carries_the_next_request_once_its_last_piece_is_read() {
    let (_server, proxy, client, bytes) = through_a_proxy(28, 4 * READ_BUFFER_WIDE + 7).await;

    // Read to its last piece, the body not yet dropped (as while a download settles).
    let mut body = get(&client).await.body;
    let mut got = Vec::new();
    while let Some(piece) = body.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(sha256(&got), sha256(&bytes));
    // The next request goes on the same connection meanwhile.
    assert_eq!(sha256(&get_whole(&client).await), sha256(&bytes));
    assert_eq!(
        proxy.accepted(),
        1,
        "the connection was back in the pool before its body was dropped"
    );
    drop(body);
}

/// A store that answers its first request with the head of a 64 MiB object, then sends the body
/// through a socket with a small send buffer, counting the bytes the socket takes until one
/// write has waited a second: beyond its own small buffer, what the client's receive window let
/// it send.
struct SendsUntilBlocked {
    addr: std::net::SocketAddr,
    sent: tokio::task::JoinHandle<usize>,
}

impl SendsUntilBlocked {
    const LEN: usize = 64 << 20;
    const PIECE: usize = 16 << 10;

    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket2::SockRef::from(&socket)
                .set_send_buffer_size(Self::PIECE)
                .unwrap();
            assert!(request_head(&mut socket).await.is_some(), "a request head");
            socket
                .write_all(answer_head(Self::LEN).as_bytes())
                .await
                .unwrap();
            let piece = vec![7u8; Self::PIECE];
            let mut sent = 0;
            while sent < Self::LEN {
                match tokio::time::timeout(Duration::from_secs(1), socket.write(&piece)).await {
                    Ok(Ok(n)) => sent += n,
                    Ok(Err(e)) => panic!("the client closed early: {e}"),
                    Err(_) => break,
                }
            }
            sent
        });
        Self { addr, sent }
    }
}

/// How far a store got ahead of a reader on docgate's transport with `receive` that took the
/// body's first piece and then stood still.
async fn sent_ahead_of_a_reader_standing_still(receive: ReceiveBuffer) -> usize {
    let store = SendsUntilBlocked::start().await;
    let client = client_on_docgate_transport_with(&format!("http://{}", store.addr), receive);
    let mut body = get(&client).await.body;
    let first = body.next().await.unwrap().unwrap();
    assert!(first.len() <= READ_BUFFER_WIDE);
    let sent = store.sent.await.unwrap();
    assert!(
        sent < SendsUntilBlocked::LEN,
        "the store was never held back"
    );
    drop(body);
    sent
}

#[tokio::test]
async fn the_receive_buffer_is_how_far_the_store_may_send_ahead_of_a_reader() {
    const WANTED: usize = 2 << 20;
    // Left to the kernel, a connection whose reader stands still keeps its starting window.
    let kernel =
        sent_ahead_of_a_reader_standing_still(ReceiveBuffer::Kernel(KernelSized::Chosen)).await;
    assert!(
        kernel < WANTED / 2,
        "{kernel} bytes ahead with the kernel's sizing"
    );

    let receive = ReceiveBuffer::for_host(WANTED);
    let fixed = sent_ahead_of_a_reader_standing_still(receive).await;
    match receive {
        // The kernel keeps twice the size for its own bookkeeping, and the window is what of it
        // is left for data: at least the size asked for, never more than twice (and the store's
        // own small send buffer).
        ReceiveBuffer::Fixed(_) => assert!(
            (WANTED..=2 * WANTED + (256 << 10)).contains(&fixed),
            "{fixed} bytes ahead with a {WANTED}-byte receive buffer"
        ),
        // net.core.rmem_max is below it here: the kernel's sizing, as above.
        ReceiveBuffer::Kernel(_) => assert!(fixed < WANTED / 2, "{fixed} bytes ahead"),
    }
}

#[tokio::test]
async fn an_s3_source_gives_its_connections_the_configured_receive_buffer() {
    const WANTED: usize = 2 << 20;
    let store = SendsUntilBlocked::start().await;
    let mut config = crate::support::s3::config_at(&format!("http://{}", store.addr));
    config.receive_buffer = WANTED;
    let source = docgate::objects::s3::S3Source::new(&config).await.unwrap();
    let mut body = source.open(KEY, None).await.unwrap().body;
    assert!(
        !futures_util::StreamExt::next(&mut body)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let sent = store.sent.await.unwrap();
    drop(body);
    match ReceiveBuffer::for_host(WANTED) {
        ReceiveBuffer::Fixed(_) => assert!(sent >= WANTED, "{sent} bytes ahead"),
        ReceiveBuffer::Kernel(_) => assert!(sent < WANTED / 2, "{sent} bytes ahead"),
    }
}
