//! What every `ObjectSource` promises, written once and run against each implementation: the
//! embedded `DirSource` and `S3Source` (over an in-process S3 server). Same cases, same
//! expectations, so `http` can rely on the trait and not on a backend.

use std::any::Any;
use std::sync::Arc;

use docgate::objects::dir::DirSource;
use docgate::objects::{CHUNK_SIZE, ObjectError, ObjectSource};
use docgate::range::{ByteRange, Unsatisfiable};

use crate::support::objects::{range, read_all};
use crate::support::s3::S3Server;
use crate::support::{content, sha256};

/// The key of the known object.
const KEY: &str = "contract/Jane_Doe_Resume.pdf";
/// Its size: more than a few chunks, and not a multiple of one.
const SIZE: usize = 3 * CHUNK_SIZE + 4321;

/// A source holding `KEY` with `bytes`, and whatever keeps it alive (directory, server).
struct Fixture {
    source: Arc<dyn ObjectSource>,
    bytes: Vec<u8>,
    _keep: Box<dyn Any + Send>,
}

async fn dir_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(21, SIZE);
    let path = dir.path().join(KEY);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let source = DirSource::new(dir.path()).unwrap();
    Fixture {
        source: Arc::new(source),
        bytes,
        _keep: Box::new(dir),
    }
}

async fn s3_fixture() -> Fixture {
    let server = S3Server::start().await;
    let bytes = content(21, SIZE);
    server.put(KEY, &bytes).await;
    let source = server.source().await;
    Fixture {
        source: Arc::new(source),
        bytes,
        _keep: Box::new(server),
    }
}

// The cases. Each takes the source and the known object's bytes (at `KEY`).

async fn whole_read_equals_the_bytes(source: &dyn ObjectSource, bytes: &[u8]) {
    let object = source.open(KEY, None).await.unwrap();
    assert_eq!(object.meta.size, bytes.len() as u64);
    assert_eq!(object.range, None);
    assert_eq!(object.len(), bytes.len() as u64);
    assert!(object.reaches_end());
    assert_eq!(sha256(&read_all(object).await), sha256(bytes));
}

async fn range_reads(source: &dyn ObjectSource, bytes: &[u8]) {
    let last = bytes.len() as u64 - 1;
    for (header, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1000-70000", 1000, 70_000),
        ("bytes=65536-131071", 65_536, 131_071),
        ("bytes=100000-", 100_000, last),
        ("bytes=200000-99999999", 200_000, last),
        ("bytes=0-", 0, last),
    ] {
        let object = source.open(KEY, Some(&range(header, None))).await.unwrap();
        assert_eq!(object.meta.size, bytes.len() as u64, "{header}");
        assert_eq!(object.range, Some(ByteRange { start, end }), "{header}");
        assert_eq!(object.len(), end - start + 1, "{header}");
        assert_eq!(object.reaches_end(), end == last, "{header}");
        let got = read_all(object).await;
        assert_eq!(got, bytes[start as usize..=end as usize], "{header}");
    }
}

async fn suffix_range(source: &dyn ObjectSource, bytes: &[u8]) {
    let size = bytes.len() as u64;
    for (n, start) in [(1, size - 1), (500, size - 500), (size, 0), (size * 2, 0)] {
        let header = format!("bytes=-{n}");
        let object = source.open(KEY, Some(&range(&header, None))).await.unwrap();
        assert_eq!(
            object.range,
            Some(ByteRange {
                start,
                end: size - 1
            }),
            "{header}"
        );
        assert!(object.reaches_end());
        assert_eq!(read_all(object).await, bytes[start as usize..], "{header}");
    }
}

async fn range_beyond_the_end_is_unsatisfiable(source: &dyn ObjectSource, bytes: &[u8]) {
    let size = bytes.len() as u64;
    for header in [
        format!("bytes={size}-"),
        format!("bytes={size}-{}", size + 10),
        format!("bytes={}-", size * 10),
        "bytes=-0".to_owned(),
    ] {
        match source.open(KEY, Some(&range(&header, None))).await {
            Err(ObjectError::Range(Unsatisfiable { size: s })) => assert_eq!(s, size, "{header}"),
            Err(e) => panic!("{header}: {e}"),
            Ok(object) => panic!("{header}: served {:?}", object.range),
        }
    }
}

async fn if_range_with_its_own_etag_applies_the_range(source: &dyn ObjectSource, bytes: &[u8]) {
    assert_if_range_applies(source, KEY, bytes, "bytes=100-199", 100, 199).await;
}

/// `If-Range` with the current ETag of the object at `key`: the range `spec` (`start..=end`) of
/// its `bytes` is served.
pub async fn assert_if_range_applies(
    source: &dyn ObjectSource,
    key: &str,
    bytes: &[u8],
    spec: &str,
    start: u64,
    end: u64,
) {
    let etag = source.head(key).await.unwrap().etag;
    let object = source
        .open(key, Some(&range(spec, Some(&etag))))
        .await
        .unwrap();
    assert_eq!(object.range, Some(ByteRange { start, end }));
    assert_eq!(object.meta.etag, etag);
    assert_eq!(read_all(object).await, bytes[start as usize..=end as usize]);
}

async fn if_range_with_another_etag_gives_the_whole_object(
    source: &dyn ObjectSource,
    bytes: &[u8],
) {
    let etag = source.head(KEY).await.unwrap().etag;
    for validator in [
        "\"another-version\"".to_owned(),
        format!("W/{etag}"),
        "Wed, 21 Oct 2015 07:28:00 GMT".to_owned(),
    ] {
        let object = source
            .open(KEY, Some(&range("bytes=100-199", Some(&validator))))
            .await
            .unwrap();
        assert_eq!(object.range, None, "{validator}");
        assert_eq!(object.meta.size, bytes.len() as u64, "{validator}");
        assert_eq!(read_all(object).await, bytes, "{validator}");
    }
    // Even when the range could not be satisfied: it does not apply.
    let size = bytes.len();
    let object = source
        .open(KEY, Some(&range(&format!("bytes={size}-"), Some("\"x\""))))
        .await
        .unwrap();
    assert_eq!(object.range, None);
}

async fn missing_key_is_not_found(source: &dyn ObjectSource, _bytes: &[u8]) {
    assert_not_found(
        source,
        &["contract/missing.pdf", "missing.pdf"],
        "bytes=0-9",
    )
    .await;
}

/// Each of `keys` is not found, whether headed, opened, or opened for the range `spec`.
pub async fn assert_not_found(source: &dyn ObjectSource, keys: &[&str], spec: &str) {
    for key in keys {
        assert!(
            matches!(source.head(key).await, Err(ObjectError::NotFound)),
            "{key}"
        );
        assert!(
            matches!(source.open(key, None).await, Err(ObjectError::NotFound)),
            "{key}"
        );
        assert!(
            matches!(
                source.open(key, Some(&range(spec, None))).await,
                Err(ObjectError::NotFound)
            ),
            "{key}"
        );
    }
}

async fn etag_is_strong_and_stable(source: &dyn ObjectSource, _bytes: &[u8]) {
    let first = source.head(KEY).await.unwrap().etag;
    assert!(first.len() > 2 && first.starts_with('"') && first.ends_with('"'));
    assert_eq!(source.head(KEY).await.unwrap().etag, first);
    let whole = source.open(KEY, None).await.unwrap();
    assert_eq!(whole.meta.etag, first);
    let part = source
        .open(KEY, Some(&range("bytes=5-", None)))
        .await
        .unwrap();
    assert_eq!(part.meta.etag, first);
}

async fn head_size_equals_open_size(source: &dyn ObjectSource, bytes: &[u8]) {
    let meta = source.head(KEY).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let object = source.open(KEY, None).await.unwrap();
    assert_eq!(object.meta, meta);
    let part = source
        .open(KEY, Some(&range("bytes=-10", None)))
        .await
        .unwrap();
    assert_eq!(part.meta, meta);
}

async fn ping_answers(source: &dyn ObjectSource, _bytes: &[u8]) {
    source.ping().await.unwrap();
}

/// One `#[tokio::test]` per case and implementation: `objects_contract::<impl>::<case>`.
macro_rules! contract {
    ($($backend:ident => $fixture:ident),+ $(,)?) => {$(
        mod $backend {
            contract!(@cases $fixture:
                whole_read_equals_the_bytes,
                range_reads,
                suffix_range,
                range_beyond_the_end_is_unsatisfiable,
                if_range_with_its_own_etag_applies_the_range,
                if_range_with_another_etag_gives_the_whole_object,
                missing_key_is_not_found,
                etag_is_strong_and_stable,
                head_size_equals_open_size,
                ping_answers,
            );
        }
    )+};
    (@cases $fixture:ident: $($case:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let fixture = super::$fixture().await;
            super::$case(fixture.source.as_ref(), &fixture.bytes).await;
        }
    )+};
}

contract! {
    dir => dir_fixture,
    s3 => s3_fixture,
}
