//! Watermarked downloads: a PDF whose catalog entry says `watermark = true` is sent as its
//! original bytes, streamed unchanged from the object source, followed by one recipient's
//! incremental update ([`crate::watermark`]) naming them, computed before the first byte.
//!
//! Owns the cache of documents' structures ([`Stamps`]): one read per document key and object
//! `ETag`, shared by concurrent first downloads (a [`OnceCell`] per key), read again when the
//! object is replaced; a document that cannot be stamped is remembered as such too. And the
//! stamped copy as an [`Object`]: its size is the original's plus the update's, its strong `ETag`
//! the object's joined to a hash of the update (so a `Range` resume with `If-Range` splices only
//! the same copy), and a range is mapped onto the original's bytes and the update's.
//!
//! The recipient's address is not in the token: it is the one the owner's request log keeps with
//! the link's request ([`crate::requestlog::RequestLog::requester`]), as the owner's download
//! notice finds it. A link whose request entry is gone (erased, purged) names nobody and gets the
//! fallback, like a document that cannot be stamped.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::error::Error;
use crate::app::App;
use crate::catalog::Document;
use crate::config::StampFallback;
use crate::objects::{Object, ObjectMeta, ObjectSource};
use crate::range::{ByteRange, RangeRequest, Spec};
use crate::token::Claims;
use crate::watermark::{self, CannotStamp, MAX_DOCUMENT_BYTES, Structure, Update};

/// A document's structure as read, or why it cannot be stamped.
type Read = Arc<Result<Structure, CannotStamp>>;

/// A document key's read: the version of the object it was made from, and the structure.
type Version = (ObjectMeta, Read);

/// The structures of watermarked documents, one per document key, for the object's version last
/// read: at most one entry per watermarked document of the catalog.
#[derive(Default)]
pub struct Stamps {
    read: Mutex<HashMap<String, Arc<OnceCell<Version>>>>,
}

impl Stamps {
    /// The structure of the object at `key` as last read, with the version it was read from; or
    /// read now (once, whoever asks at the same time), the version being the one the read opens.
    /// A source that fails is not remembered. Nothing here asks whether the object changed since:
    /// the caller finds out when it opens the object ([`Stamped::open`]) and [`Stamps::forget`]s.
    async fn last(&self, objects: &Arc<dyn ObjectSource>, key: &str) -> Result<Version, Error> {
        let cell = {
            let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            read.entry(key.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| read_structure(objects, key))
            .await
            .cloned()
    }

    /// The structure of the object at `key` whose current version is `meta` (from a `HEAD`):
    /// from the cache if it was read from that version, else read again.
    async fn of(
        &self,
        objects: &Arc<dyn ObjectSource>,
        key: &str,
        meta: &ObjectMeta,
    ) -> Result<Version, Error> {
        let cell = {
            let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            let cell = read.entry(key.to_owned()).or_default();
            // A read under way is waited for: it opens the object after this `HEAD` or close to
            // it, and is the version the caller gets.
            if cell.get().is_some_and(|(read, _)| read.etag != meta.etag) {
                *cell = Arc::default();
            }
            cell.clone()
        };
        cell.get_or_try_init(|| read_structure(objects, key))
            .await
            .cloned()
    }

    /// Forgets the structure of `key` if it was read from the version `etag`: the object has
    /// been replaced since, and the next download reads it again.
    fn forget(&self, key: &str, etag: &str) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if read
            .get(key)
            .and_then(|cell| cell.get())
            .is_some_and(|(read, _)| read.etag == etag)
        {
            read.remove(key);
        }
    }
}

/// Opens the whole object (its version is the open's), reads it (at most
/// [`MAX_DOCUMENT_BYTES`]) into one buffer and parses it on the blocking pool; the buffer is
/// dropped once parsed. A larger object is not read at all.
async fn read_structure(objects: &Arc<dyn ObjectSource>, key: &str) -> Result<Version, Error> {
    let object = objects.open(key, None).await?;
    let meta = object.meta;
    if meta.size > MAX_DOCUMENT_BYTES {
        let too_large = CannotStamp::TooLarge {
            size: meta.size,
            limit: MAX_DOCUMENT_BYTES,
        };
        tracing::warn!(cause = %too_large, "a watermarked document cannot be stamped");
        return Ok((meta, Arc::new(Err(too_large))));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Error::ObjectStore)?;
        if (bytes.len() + chunk.len()) as u64 > meta.size {
            return Err(changed());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() as u64 != meta.size {
        return Err(changed());
    }
    let read = tokio::task::spawn_blocking(move || watermark::read(&bytes, MAX_DOCUMENT_BYTES))
        .await
        .map_err(|e| Error::Internal(format!("reading a document to stamp: {e}")))?;
    if let Err(e) = &read {
        tracing::warn!(cause = %e, "a watermarked document cannot be stamped");
    }
    Ok((meta, Arc::new(read)))
}

/// The error of a download whose object changed under it (`502`, before any byte).
pub(super) fn replaced() -> Error {
    changed()
}

fn changed() -> Error {
    Error::ObjectStore(io::Error::other("the object changed while it was read"))
}

/// How a download of a document is sent.
pub enum Plan {
    /// As it is: not a watermarked document.
    Plain,
    /// As it is, though it should have been stamped: the fallback serves it (the log says so).
    Unstamped,
    /// Stamped for its recipient.
    Stamped(Stamped),
}

impl Plan {
    /// What the owner's request log notes on the download's entry.
    pub fn noted(&self) -> Option<&'static str> {
        match self {
            Plan::Plain => None,
            Plan::Unstamped => Some("unstamped"),
            Plan::Stamped(_) => Some("stamped"),
        }
    }
}

/// One recipient's stamped copy of one version of a document.
pub struct Stamped {
    /// The original's version.
    original: ObjectMeta,
    update: Update,
    /// The copy's `ETag`, quoted.
    etag: String,
}

/// A watermarked document's version and its structure as read (or why it cannot be stamped),
/// before its link is claimed: reading a document the first time takes a while, longer than a
/// claim's lease should wait.
pub struct Prepared {
    meta: ObjectMeta,
    read: Read,
}

/// For a watermarked `document` about to be downloaded, its structure: as last read, without
/// asking the object source (see [`Stamps::last`]), so a download makes one object request, its
/// `open`, like any other; [`Stamped::open`] finds out there whether the object was replaced
/// since. A document remembered as one that cannot be stamped is checked with a `HEAD` first, so
/// an owner who replaces it with one that can is not refused from the cache. `None` for any other
/// document.
pub async fn prepare(
    app: &App,
    stamps: &Stamps,
    document: &Document,
) -> Result<Option<Prepared>, Error> {
    if !document.watermark {
        return Ok(None);
    }
    let objects = &app.backends.objects;
    let (meta, read) = stamps.last(objects, &document.key).await?;
    let (meta, read) = match &*read {
        Ok(_) => (meta, read),
        Err(_) => {
            let now = objects.head(&document.key).await?;
            stamps.of(objects, &document.key, &now).await?
        }
    };
    Ok(Some(Prepared { meta, read }))
}

/// For a watermarked `document` whose current version is `meta` (the caller made a `HEAD`: a
/// `HEAD` of the link, the confirm page), its structure for that version (see [`Stamps::of`]);
/// `None` for any other document.
pub async fn prepare_for(
    app: &App,
    stamps: &Stamps,
    document: &Document,
    meta: &ObjectMeta,
) -> Result<Option<Prepared>, Error> {
    if !document.watermark {
        return Ok(None);
    }
    let (meta, read) = stamps
        .of(&app.backends.objects, &document.key, meta)
        .await?;
    Ok(Some(Prepared { meta, read }))
}

/// The recipient's stamped copy of a [`prepare`]d document, or why there is none: it cannot be
/// stamped, or the link's recipient is no longer known.
pub async fn copy(
    app: &App,
    claims: &Claims,
    prepared: &Prepared,
) -> Result<Result<Stamped, String>, Error> {
    let Prepared { meta, read } = prepared;
    Ok(match (&**read, recipient(app, claims).await?) {
        (Ok(structure), Some(email)) => {
            let line = app
                .config
                .recipients
                .watermark_text
                .render(&email, &utc_date(app.now()));
            let update = structure.stamp(&line);
            let etag = copy_etag(&meta.etag, &update);
            Ok(Stamped {
                original: meta.clone(),
                update,
                etag,
            })
        }
        (Err(cannot), _) => Err(cannot.to_string()),
        (Ok(_), None) => Err("the link's recipient is no longer known".to_owned()),
    })
}

/// How a download by the link `claims` is sent: for a watermarked document ([`prepare`]d), the
/// recipient's address read and the update computed. A document that cannot be stamped is
/// served unstamped or refused, as `DOCGATE_WATERMARK_FALLBACK` says.
pub async fn plan(app: &App, claims: &Claims, prepared: Option<Prepared>) -> Result<Plan, Error> {
    let Some(prepared) = prepared else {
        return Ok(Plan::Plain);
    };
    let why = match copy(app, claims, &prepared).await? {
        Ok(stamped) => return Ok(Plan::Stamped(stamped)),
        Err(why) => why,
    };
    match app.config.recipients.watermark_fallback {
        StampFallback::Serve => {
            tracing::info!(link = claims.jti.short(), reason = %why, "served unstamped");
            Ok(Plan::Unstamped)
        }
        StampFallback::Refuse => Err(Error::NotStampable(why)),
    }
}

/// The address the link was requested for, from the owner's request log.
async fn recipient(app: &App, claims: &Claims) -> Result<Option<String>, Error> {
    app.backends
        .requests
        .requester(claims.jti.as_str())
        .await
        .map_err(|e| Error::StoreUnavailable(Box::new(e)))
}

/// `YYYY-MM-DD`, UTC, of `unix` seconds.
fn utc_date(unix: u64) -> String {
    let date = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The stamped copy's strong `ETag`: the object's, joined to the first 64 bits of the update's
/// SHA-256, so two recipients' copies (or two days' copies) never share one.
fn copy_etag(object_etag: &str, update: &Update) -> String {
    let mut hash = Sha256::new();
    for chunk in update.chunks() {
        hash.update(&chunk);
    }
    let digest = hash.finalize();
    let hex = hex::encode(&digest[..8]);
    let inner = object_etag.trim_matches('"');
    format!("\"{inner}-w{hex}\"")
}

impl Stamped {
    /// The copy's size and validator, as a `HEAD` reports them.
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            size: self.original.size + self.update.len(),
            etag: self.etag.clone(),
            content_type: self.original.content_type.clone(),
        }
    }

    /// The bytes of the copy `range` selects (`If-Range` against the copy's `ETag`), as an
    /// [`Object`]: the original's part opened at the source, then the update's part. `None`
    /// when the source has another version than the one the update was computed for (the
    /// object was replaced since its structure was read): nothing is sent, the caller
    /// [`forget`](Self::forget)s the structure and may try again.
    pub async fn open(
        &self,
        objects: &Arc<dyn ObjectSource>,
        key: &str,
        range: Option<&RangeRequest>,
    ) -> Result<Option<Object>, Error> {
        let meta = self.meta();
        let selected = match range {
            Some(request) => request.select(&meta.etag, meta.size)?,
            None => None,
        };
        let whole = ByteRange {
            start: 0,
            end: meta.size - 1,
        };
        let ByteRange { start, end } = selected.unwrap_or(whole);
        let original = self.original.size;
        let head = if start < original {
            let last = end.min(original - 1);
            let request = RangeRequest {
                spec: Spec::Bounded(start, last),
                if_range: Some(self.original.etag.clone()),
            };
            let object = objects.open(key, Some(&request)).await?;
            if object.meta.etag != self.original.etag {
                return Ok(None);
            }
            if object.range != Some(ByteRange { start, end: last }) {
                return Err(changed());
            }
            Some(object.body)
        } else {
            None
        };
        let tail = self.tail(
            start.max(original) - original,
            end + 1 - original.min(end + 1),
        );
        let tail = stream::iter(tail.into_iter().map(Ok::<Bytes, io::Error>));
        let body = match head {
            Some(head) => head.chain(tail).boxed(),
            None => tail.boxed(),
        };
        Ok(Some(Object {
            meta,
            range: selected,
            body,
        }))
    }

    /// Forgets, in `stamps`, the structure this copy was computed from: the object at `key` was
    /// replaced since ([`Stamped::open`] gave `None`).
    pub fn forget(&self, stamps: &Stamps, key: &str) {
        stamps.forget(key, &self.original.etag);
    }

    /// The update's bytes from `from` up to `to` (exclusive), as chunks without copying.
    fn tail(&self, from: u64, to: u64) -> Vec<Bytes> {
        let mut at = 0u64;
        let mut out = Vec::new();
        for chunk in self.update.chunks() {
            let len = chunk.len() as u64;
            let (a, b) = (from.max(at), to.min(at + len));
            if a < b {
                out.push(chunk.slice((a - at) as usize..(b - at) as usize));
            }
            at += len;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::objects::ObjectError;
    use crate::objects::dir::DirSource;

    /// A real directory source that counts the requests made through it.
    struct Counting {
        dir: DirSource,
        heads: AtomicUsize,
        opens: AtomicUsize,
    }

    #[async_trait]
    impl ObjectSource for Counting {
        async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
            self.heads.fetch_add(1, Ordering::SeqCst);
            self.dir.head(key).await
        }
        async fn open(
            &self,
            key: &str,
            range: Option<&RangeRequest>,
        ) -> Result<Object, ObjectError> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            self.dir.open(key, range).await
        }
        async fn ping(&self) -> Result<(), ObjectError> {
            self.dir.ping().await
        }
    }

    /// A one-page PDF drawing `text`, with a classic cross-reference table.
    fn one_page(text: &str) -> Vec<u8> {
        let content = format!("BT /F1 12 Tf 72 700 Td ({text}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_owned(),
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        ];
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(b"xref\n0 6\n0000000000 65535 f\r\n");
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes());
        }
        out.extend_from_slice(
            format!("trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
        );
        out
    }

    #[tokio::test]
    async fn a_structure_is_read_once_per_version_by_concurrent_downloads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cv.pdf"), one_page("First")).unwrap();
        let counting = Arc::new(Counting {
            dir: DirSource::new(dir.path()).unwrap(),
            heads: AtomicUsize::new(0),
            opens: AtomicUsize::new(0),
        });
        let objects: Arc<dyn ObjectSource> = counting.clone();
        let opens = || counting.opens.load(Ordering::SeqCst);
        let stamps = Stamps::default();

        // Concurrent first downloads: one read, whose open gives the version; no HEAD.
        let reads =
            futures_util::future::join_all((0..16).map(|_| stamps.last(&objects, "cv.pdf"))).await;
        let meta = objects.head("cv.pdf").await.unwrap();
        for read in &reads {
            let (version, read) = read.as_ref().unwrap();
            assert_eq!(version.etag, meta.etag);
            assert_eq!(read.as_ref().as_ref().unwrap().pages(), 1);
        }
        assert_eq!(opens(), 1, "one read for all");
        assert_eq!(counting.heads.load(Ordering::SeqCst), 1, "the test's own");
        stamps.last(&objects, "cv.pdf").await.unwrap();
        stamps.of(&objects, "cv.pdf", &meta).await.unwrap();
        assert_eq!(opens(), 1, "cached");

        // A replaced object (another ETag) given by a HEAD is read again, and only it is kept.
        std::fs::write(dir.path().join("cv.pdf"), one_page("Second, longer")).unwrap();
        let newer = objects.head("cv.pdf").await.unwrap();
        assert_ne!(newer.etag, meta.etag);
        let (version, read) = stamps.of(&objects, "cv.pdf", &newer).await.unwrap();
        assert_eq!(version.etag, newer.etag);
        assert_eq!(read.as_ref().as_ref().unwrap().original_len(), newer.size);
        assert_eq!(opens(), 2);
        assert_eq!(stamps.read.lock().unwrap().len(), 1);

        // Without a HEAD, the last read stands until a download finds it stale and forgets it;
        // forgetting another version than the one kept changes nothing.
        std::fs::write(dir.path().join("cv.pdf"), one_page("Third, longer still")).unwrap();
        let (stale, _) = stamps.last(&objects, "cv.pdf").await.unwrap();
        assert_eq!(stale.etag, newer.etag);
        stamps.forget("cv.pdf", &meta.etag);
        assert_eq!(
            stamps.last(&objects, "cv.pdf").await.unwrap().0.etag,
            newer.etag
        );
        assert_eq!(opens(), 2);
        stamps.forget("cv.pdf", &newer.etag);
        let (third, _) = stamps.last(&objects, "cv.pdf").await.unwrap();
        assert_ne!(third.etag, newer.etag);
        assert_eq!(opens(), 3);
    }

    #[tokio::test]
    async fn a_copy_of_a_replaced_object_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let original = one_page("First");
        std::fs::write(dir.path().join("cv.pdf"), &original).unwrap();
        let objects: Arc<dyn ObjectSource> = Arc::new(DirSource::new(dir.path()).unwrap());
        let meta = objects.head("cv.pdf").await.unwrap();
        let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).unwrap();
        let update = structure.stamp("Downloaded by a@example.com on 2026-12-05");
        let etag = copy_etag(&meta.etag, &update);
        let stamped = Stamped {
            original: meta,
            update,
            etag,
        };
        assert!(
            stamped
                .open(&objects, "cv.pdf", None)
                .await
                .unwrap()
                .is_some()
        );
        std::fs::write(dir.path().join("cv.pdf"), one_page("Second, longer")).unwrap();
        assert!(
            stamped
                .open(&objects, "cv.pdf", None)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_copy_etag_is_strong_and_names_its_update() {
        let structure = watermark::read(&one_page("x"), MAX_DOCUMENT_BYTES).unwrap();
        let a = structure.stamp("Downloaded by a@example.com on 2026-12-05");
        let b = structure.stamp("Downloaded by b@example.com on 2026-12-05");
        let (ea, eb) = (copy_etag("\"abc\"", &a), copy_etag("\"abc\"", &b));
        assert!(ea.starts_with("\"abc-w") && ea.ends_with('"') && !ea.starts_with("W/"));
        assert_ne!(ea, eb);
        assert_eq!(ea, copy_etag("\"abc\"", &a.clone()));
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_796_428_800), "2026-12-05");
    }

    #[tokio::test]
    async fn ranges_map_onto_the_original_and_the_update() {
        let dir = tempfile::tempdir().unwrap();
        let original = one_page("Ranges");
        std::fs::write(dir.path().join("cv.pdf"), &original).unwrap();
        let objects: Arc<dyn ObjectSource> = Arc::new(DirSource::new(dir.path()).unwrap());
        let meta = objects.head("cv.pdf").await.unwrap();
        let structure = watermark::read(&original, MAX_DOCUMENT_BYTES).unwrap();
        let update = structure.stamp("Downloaded by a@example.com on 2026-12-05");
        let whole = [original.clone(), update.to_vec()].concat();
        let etag = copy_etag(&meta.etag, &update);
        let stamped = Stamped {
            original: meta,
            update,
            etag: etag.clone(),
        };
        let o = original.len() as u64;
        let total = whole.len() as u64;
        for spec in [
            Spec::Bounded(0, 9),
            Spec::Bounded(o - 3, o + 3),
            Spec::Bounded(o, o),
            Spec::From(o + 5),
            Spec::Suffix(total),
            Spec::Bounded(10, total + 100),
        ] {
            let request = RangeRequest {
                spec,
                if_range: Some(etag.clone()),
            };
            let object = stamped
                .open(&objects, "cv.pdf", Some(&request))
                .await
                .unwrap()
                .unwrap();
            let range = object.range.unwrap();
            let mut got = Vec::new();
            let mut body = object.body;
            while let Some(chunk) = body.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(
                got,
                whole[range.start as usize..=range.end as usize],
                "{spec:?}"
            );
        }
        let whole_object = stamped
            .open(&objects, "cv.pdf", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(whole_object.len(), total);
        assert!(whole_object.reaches_end());
    }
}
