//! The S3 client's own HTTP transport (`docgate::objects::s3::http`) against an in-process S3
//! server: its bounded read buffer (no body piece larger than `READ_BUFFER_MAX`, objects many times
//! that size stream exactly), and that a reader who stops stops the reads from S3.

use std::time::Duration;

use docgate::objects::ObjectSource;
use docgate::objects::s3::http::READ_BUFFER_MAX;

use crate::support::objects::{range, read_all};
use crate::support::s3::{
    BUCKET, S3Server, client_on_docgate_transport, sent_to_a_reader_standing_still,
};
use crate::support::{content, sha256};

const KEY: &str = "resume/Jane_Doe_Resume.pdf";

#[tokio::test]
async fn body_pieces_never_exceed_the_read_buffer_even_when_the_socket_holds_more() {
    let server = S3Server::start().await;
    let bytes = content(21, 6 * 1024 * 1024);
    server.put(KEY, &bytes).await;
    let client = client_on_docgate_transport(&server.endpoint());

    let output = client
        .get_object()
        .bucket(BUCKET)
        .key(KEY)
        .send()
        .await
        .unwrap();
    let mut body = output.body;
    let mut got = Vec::with_capacity(bytes.len());
    let mut largest = 0;
    let mut pieces = 0;
    while let Some(piece) = body.next().await {
        let piece = piece.unwrap();
        largest = largest.max(piece.len());
        got.extend_from_slice(&piece);
        pieces += 1;
        if pieces <= 3 {
            // Let the socket fill up: an unbounded buffer would now take far more at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(largest <= READ_BUFFER_MAX, "a {largest}-byte piece");
    assert!(
        largest > READ_BUFFER_MAX / 2,
        "{largest}: the buffer grows to its bound"
    );
    assert_eq!(sha256(&got), sha256(&bytes));
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
