//! The S3 client's own HTTP transport (`docgate::objects::s3::http`) against an in-process S3
//! server: its bounded read buffer (no body piece larger than `READ_BUFFER_MAX`, objects many times
//! that size stream exactly), and that a reader who stops stops the reads from S3.

use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use docgate::objects::ObjectSource;
use docgate::objects::s3::S3Source;
use docgate::objects::s3::http::READ_BUFFER_MAX;
use docgate::range::RangeRequest;
use futures_util::StreamExt;

use crate::support::chaos::ChaosProxy;
use crate::support::s3::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};
use crate::support::{content, sha256};

const KEY: &str = "resume/Jane_Doe_Resume.pdf";

/// An SDK client on docgate's transport, as `S3Source` builds it.
fn sdk_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(docgate::objects::s3::http::client().unwrap())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test]
async fn body_pieces_never_exceed_the_read_buffer_even_when_the_socket_holds_more() {
    let server = S3Server::start().await;
    let bytes = content(21, 6 * 1024 * 1024);
    server.put(KEY, &bytes).await;
    let client = sdk_client(&server.endpoint());

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
    let mut got = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(sha256(&got), sha256(&bytes));

    // A range that starts and ends inside buffers, crossing many of them.
    let (first, last) = (READ_BUFFER_MAX + 17, 30 * READ_BUFFER_MAX + 5);
    let request = RangeRequest::from_headers(Some(&format!("bytes={first}-{last}")), None).unwrap();
    let object = source.open(KEY, Some(&request)).await.unwrap();
    assert_eq!(object.len(), (last - first + 1) as u64);
    let mut got = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, bytes[first..=last]);
}

#[tokio::test]
async fn a_reader_that_stops_stops_the_reads_from_s3() {
    let server = S3Server::start().await;
    let bytes = content(23, 32 * 1024 * 1024);
    server.put(KEY, &bytes).await;
    let proxy = ChaosProxy::start(server.addr).await;
    let source = S3Source::new(&server.config_at(&proxy.endpoint()))
        .await
        .unwrap();

    let object = source.open(KEY, None).await.unwrap();
    let mut body = object.body;
    let first = body.next().await.unwrap().unwrap();

    // Nobody reads now: once the socket buffers are full, nothing more comes from S3.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = proxy.forwarded();
    let settled = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = proxy.forwarded();
        if now == before {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "S3 kept sending to a stopped reader"
        );
        before = now;
    };
    assert!(
        settled < bytes.len() as u64 / 2,
        "{settled} bytes came from S3 for a reader that took one chunk"
    );

    let mut got = first.to_vec();
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(sha256(&got), sha256(&bytes));
}
