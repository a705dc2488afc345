//! Reading what an `ObjectSource` opened, as the tests of every source do: chunk by chunk, each
//! checked to be a real chunk (not empty, at most `CHUNK_SIZE`).

#![allow(dead_code)]

use std::io;

use bytes::Bytes;
use docgate::objects::{ByteStream, CHUNK_SIZE, Object};
use docgate::range::RangeRequest;
use futures_util::StreamExt;

/// Every chunk of `body` until its end or its first error, and that error.
pub async fn drain_body(mut body: ByteStream) -> (Vec<u8>, Option<io::Error>) {
    let mut bytes = Vec::new();
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                assert!(!chunk.is_empty() && chunk.len() <= CHUNK_SIZE);
                bytes.extend_from_slice(&chunk);
            }
            Err(e) => return (bytes, Some(e)),
        }
    }
    (bytes, None)
}

/// Every chunk of `object` until its end or its first error, and that error.
pub async fn drain(object: Object) -> (Vec<u8>, Option<io::Error>) {
    drain_body(object.body).await
}

/// All of `object`, which must end cleanly.
pub async fn read_all(object: Object) -> Vec<u8> {
    read_on(Bytes::new(), object.body).await
}

/// `first`, a chunk already taken from `body`, then the rest of `body`, which must end cleanly.
pub async fn read_on(first: Bytes, body: ByteStream) -> Vec<u8> {
    let (rest, error) = drain_body(body).await;
    assert!(error.is_none(), "{error:?}");
    [&first[..], &rest].concat()
}

/// A range request from a `Range` header and an optional `If-Range` validator.
pub fn range(header: &str, if_range: Option<&str>) -> RangeRequest {
    RangeRequest::from_headers(Some(header), if_range).unwrap()
}
