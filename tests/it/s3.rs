//! `S3Source` against an in-process S3 server (s3s-fs, signatures verified): objects and ranges,
//! `If-Range`, S3's errors, an outage, a transfer cut halfway, a slow reader, public objects.

use std::time::{Duration, Instant};

use docgate::objects::s3::S3Source;
use docgate::objects::{ObjectError, ObjectSource};
use docgate::range::{ByteRange, Unsatisfiable};

use crate::objects_contract::{assert_if_range_applies, assert_not_found};
use crate::support::objects::{drain, range, read_all};
use crate::support::s3::{
    BUCKET, PUBLIC_PREFIX, S3Server, proxied, sent_to_a_reader_standing_still,
};
use crate::support::{content, sha256};

const KEY: &str = "resume/Jane_Doe_Resume.pdf";

/// A server holding `KEY` with `len` bytes, and a source over it.
async fn serving(len: usize) -> (S3Server, S3Source, Vec<u8>) {
    let server = S3Server::start().await;
    let bytes = content(11, len);
    server.put(KEY, &bytes).await;
    let source = server.source().await;
    (server, source, bytes)
}

/// The text a failure would show, with everything that must not leak in it checked.
fn assert_generic(error: &ObjectError, server: &S3Server) {
    let shown = format!("{error} / {error:?}");
    for secret in [
        BUCKET,
        KEY,
        "resume",
        "127.0.0.1",
        &server.addr.port().to_string(),
    ] {
        assert!(!shown.contains(secret), "{secret:?} in {shown}");
    }
}

#[tokio::test]
async fn head_reports_the_size_and_the_stored_etag() {
    let server = S3Server::start().await;
    let bytes = content(1, 300 * 1024);
    let etag = server.put(KEY, &bytes).await;
    let source = server.source().await;
    let meta = source.head(KEY).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    assert_eq!(meta.etag, etag);
    assert!(meta.etag.starts_with('"') && meta.etag.ends_with('"') && meta.etag.len() > 2);
}

#[tokio::test]
async fn whole_objects_stream_in_chunks_with_their_bytes() {
    let (_server, source, bytes) = serving(3 * 1024 * 1024 + 123).await;
    let object = source.open(KEY, None).await.unwrap();
    assert_eq!(object.meta.size, bytes.len() as u64);
    assert_eq!(object.range, None);
    assert_eq!(object.len(), bytes.len() as u64);
    assert!(object.reaches_end());
    let got = read_all(object).await;
    assert_eq!(sha256(&got), sha256(&bytes));
}

#[tokio::test]
async fn ranges_are_served_with_the_whole_size() {
    let (_server, source, bytes) = serving(200_000).await;
    let size = bytes.len() as u64;
    for (header, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=100000-100009", 100_000, 100_009),
        ("bytes=65530-131080", 65_530, 131_080),
        ("bytes=199990-300000", 199_990, 199_999),
        ("bytes=150000-", 150_000, 199_999),
        ("bytes=-1000", 199_000, 199_999),
        ("bytes=-500000", 0, 199_999),
    ] {
        let object = source.open(KEY, Some(&range(header, None))).await.unwrap();
        assert_eq!(object.meta.size, size, "{header}");
        assert_eq!(object.range, Some(ByteRange { start, end }), "{header}");
        assert_eq!(object.reaches_end(), end == size - 1, "{header}");
        let got = read_all(object).await;
        assert_eq!(
            sha256(&got),
            sha256(&bytes[start as usize..=end as usize]),
            "{header}"
        );
    }
}

#[tokio::test]
async fn if_range_with_the_current_etag_serves_the_range() {
    let (_server, source, bytes) = serving(100_000).await;
    assert_if_range_applies(&source, KEY, &bytes, "bytes=40000-", 40_000, 99_999).await;
}

#[tokio::test]
async fn if_range_after_the_object_changed_serves_the_whole_new_version() {
    let (server, source, _old) = serving(100_000).await;
    let old_etag = source.head(KEY).await.unwrap().etag;
    let new = content(12, 150_000);
    let new_etag = server.put(KEY, &new).await;
    assert_ne!(old_etag, new_etag);

    let object = source
        .open(KEY, Some(&range("bytes=40000-", Some(&old_etag))))
        .await
        .unwrap();
    assert_eq!(object.range, None);
    assert_eq!(object.meta.size, new.len() as u64);
    assert_eq!(object.meta.etag, new_etag);
    assert_eq!(sha256(&read_all(object).await), sha256(&new));

    // Also when the old range would not even fit the new version.
    let object = source
        .open(KEY, Some(&range("bytes=160000-", Some(&old_etag))))
        .await
        .unwrap();
    assert_eq!(object.range, None);
    assert_eq!(read_all(object).await.len(), new.len());
}

#[tokio::test]
async fn if_range_with_a_weak_tag_or_a_date_serves_everything() {
    let (_server, source, bytes) = serving(50_000).await;
    let etag = source.head(KEY).await.unwrap().etag;
    for validator in [format!("W/{etag}"), "Wed, 21 Oct 2015 07:28:00 GMT".into()] {
        let object = source
            .open(KEY, Some(&range("bytes=10-19", Some(&validator))))
            .await
            .unwrap();
        assert_eq!(object.range, None, "{validator}");
        assert_eq!(read_all(object).await, bytes, "{validator}");
    }
}

#[tokio::test]
async fn missing_keys_are_not_found() {
    let (_server, source, _) = serving(10).await;
    assert_not_found(
        &source,
        &[
            "missing.pdf",
            "resume/other.pdf",
            "resume/Jane_Doe_Resume.pdf.old",
        ],
        "bytes=0-1",
    )
    .await;
}

#[tokio::test]
async fn ranges_beyond_the_end_are_unsatisfiable_with_the_size() {
    let (_server, source, bytes) = serving(10_000).await;
    let etag = source.head(KEY).await.unwrap().etag;
    let size = bytes.len() as u64;
    for (header, if_range) in [
        ("bytes=10000-", None),
        ("bytes=10000-20000", None),
        ("bytes=99999999-", None),
        ("bytes=-0", None),
        ("bytes=10000-", Some(etag.as_str())),
        ("bytes=-0", Some(etag.as_str())),
    ] {
        match source.open(KEY, Some(&range(header, if_range))).await {
            Err(ObjectError::Range(Unsatisfiable { size: s })) => assert_eq!(s, size, "{header}"),
            Err(e) => panic!("{header}: {e}"),
            Ok(o) => panic!("{header}: served {:?}", o.range),
        }
    }
    // With a stale validator the range does not apply at all: the whole object.
    let object = source
        .open(KEY, Some(&range("bytes=-0", Some("\"stale\""))))
        .await
        .unwrap();
    assert_eq!(read_all(object).await, bytes);
}

#[tokio::test]
async fn empty_objects_have_no_satisfiable_range() {
    let server = S3Server::start().await;
    server.put(KEY, b"").await;
    let source = server.source().await;
    assert_eq!(source.head(KEY).await.unwrap().size, 0);
    let object = source.open(KEY, None).await.unwrap();
    assert!(object.is_empty());
    assert!(read_all(object).await.is_empty());
    assert!(matches!(
        source.open(KEY, Some(&range("bytes=0-", None))).await,
        Err(ObjectError::Range(Unsatisfiable { size: 0 }))
    ));
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_quickly() {
    let (mut server, source, _) = serving(1000).await;
    source.head(KEY).await.unwrap(); // a pooled connection exists
    server.stop().await;

    // Each is bounded by the timeouts and retries; run together so the test stays short.
    let started = Instant::now();
    let ranged = range("bytes=1-2", None);
    let (head, open, ranged, ping, public) = tokio::join!(
        source.head(KEY),
        source.open(KEY, None),
        source.open(KEY, Some(&ranged)),
        source.ping(),
        source.publicly_readable(KEY),
    );
    let elapsed = started.elapsed();
    let errors = [
        head.err().unwrap(),
        open.err().unwrap(),
        ranged.err().unwrap(),
        ping.err().unwrap(),
        public.err().unwrap(),
    ];
    for error in &errors {
        assert!(matches!(error, ObjectError::Unavailable(_)), "{error:?}");
        assert_generic(error, &server);
    }
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn a_body_cut_mid_transfer_ends_with_an_error_item() {
    let bytes = content(13, 4 * 1024 * 1024);
    let (_server, proxy, source) = proxied(KEY, &bytes).await;
    proxy.cut_after(1024 * 1024);

    let object = source.open(KEY, None).await.unwrap();
    assert_eq!(object.len(), bytes.len() as u64);
    let (got, error) = drain(object).await;
    let error = error.expect("a cut transfer ends with an error, not a clean short end");
    assert!(!got.is_empty() && got.len() < bytes.len(), "{}", got.len());
    assert_eq!(got[..], bytes[..got.len()]);
    assert!(!error.to_string().contains(KEY), "{error}");

    // The same for a range.
    proxy.cut_after(300 * 1024);
    let object = source
        .open(KEY, Some(&range("bytes=1000000-", None)))
        .await
        .unwrap();
    let (got, error) = drain(object).await;
    assert!(error.is_some());
    assert_eq!(got[..], bytes[1_000_000..1_000_000 + got.len()]);
}

#[tokio::test]
async fn a_slow_reader_slows_the_transfer() {
    let bytes = content(14, 24 * 1024 * 1024);
    // Only socket buffers and one chunk hold bytes while nobody reads: no read-ahead.
    let settled = sent_to_a_reader_standing_still(KEY, &bytes).await;
    assert!(
        settled < 16 * 1024 * 1024,
        "{settled} bytes came from S3 for a reader that took one chunk"
    );
}

#[tokio::test]
async fn private_objects_are_not_publicly_readable() {
    let (_server, source, _) = serving(100).await;
    assert!(!source.publicly_readable(KEY).await.unwrap());
    assert!(!source.publicly_readable("missing.pdf").await.unwrap());
}

#[tokio::test]
async fn public_objects_are_publicly_readable() {
    let server = S3Server::start().await;
    let key = format!("{PUBLIC_PREFIX}brochure.pdf");
    server.put(&key, &content(15, 100)).await;
    let source = server.source().await;
    assert!(source.publicly_readable(&key).await.unwrap());
    // Signed reads of it work as usual.
    assert_eq!(source.head(&key).await.unwrap().size, 100);
}

#[tokio::test]
async fn ping_answers_while_the_bucket_exists() {
    let (mut server, source, _) = serving(1).await;
    source.ping().await.unwrap();

    let mut config = server.config();
    config.bucket = "no-such-bucket".into();
    let elsewhere = S3Source::new(&config).await.unwrap();
    assert!(matches!(
        elsewhere.ping().await,
        Err(ObjectError::Unavailable(_))
    ));

    server.stop().await;
    let error = source.ping().await.unwrap_err();
    assert!(matches!(error, ObjectError::Unavailable(_)));
}

#[tokio::test]
async fn wrong_credentials_make_the_store_unavailable_not_the_object_missing() {
    let server = S3Server::start().await;
    server.put(KEY, b"x").await;
    let mut config = server.config();
    if let Some(keys) = config.credentials.as_mut() {
        keys.secret_access_key = docgate::config::Secret::new(b"not-the-secret".to_vec());
    }
    let source = S3Source::new(&config).await.unwrap();
    let error = source.open(KEY, None).await.err().unwrap();
    assert!(matches!(error, ObjectError::Unavailable(_)), "{error:?}");
    assert!(
        error.to_string().contains("SignatureDoesNotMatch") || error.to_string().contains("403"),
        "{error}"
    );
    assert_generic(&error, &server);
    assert!(matches!(
        source.head(KEY).await,
        Err(ObjectError::Unavailable(_))
    ));
    assert!(source.ping().await.is_err());
}
