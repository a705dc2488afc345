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

/// A document key's cached read: the object's `ETag` it was made for, and the read (or the one
/// under way).
type Cached = (String, Arc<OnceCell<Read>>);

/// The structures of watermarked documents, one per document key, for the object's current
/// `ETag`: at most one entry per watermarked document of the catalog.
#[derive(Default)]
pub struct Stamps {
    read: Mutex<HashMap<String, Cached>>,
}

impl Stamps {
    /// The structure of the object at `key` whose current version is `meta`: from the cache, or
    /// read now (once, whoever asks at the same time). A source that fails is not remembered.
    async fn structure(
        &self,
        objects: &Arc<dyn ObjectSource>,
        key: &str,
        meta: &ObjectMeta,
    ) -> Result<Read, Error> {
        let cell = {
            let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            match read.get(key) {
                Some((etag, cell)) if *etag == meta.etag => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    read.insert(key.to_owned(), (meta.etag.clone(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| read_structure(objects, key, meta))
            .await
            .cloned()
    }
}

/// Reads the whole object (at most [`MAX_DOCUMENT_BYTES`]) into one buffer and parses it on the
/// blocking pool; the buffer is dropped once parsed.
async fn read_structure(
    objects: &Arc<dyn ObjectSource>,
    key: &str,
    meta: &ObjectMeta,
) -> Result<Read, Error> {
    if meta.size > MAX_DOCUMENT_BYTES {
        return Ok(Arc::new(Err(CannotStamp::TooLarge {
            size: meta.size,
            limit: MAX_DOCUMENT_BYTES,
        })));
    }
    let object = objects.open(key, None).await?;
    if object.meta.etag != meta.etag {
        return Err(changed());
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
    let read = tokio::task::spawn_blocking(move || watermark::read(&bytes, MAX_DOCUMENT_BYTES))
        .await
        .map_err(|e| Error::Internal(format!("reading a document to stamp: {e}")))?;
    if let Err(e) = &read {
        tracing::warn!(cause = %e, "a watermarked document cannot be stamped");
    }
    Ok(Arc::new(read))
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

/// How a download of `document` by the link `claims` is sent: reads the structure (cached) and
/// the recipient's address, and computes the update. A document that cannot be stamped is
/// served unstamped or refused, as `DOCGATE_WATERMARK_FALLBACK` says.
pub async fn plan(
    app: &App,
    stamps: &Stamps,
    claims: &Claims,
    document: &Document,
) -> Result<Plan, Error> {
    if !document.watermark {
        return Ok(Plan::Plain);
    }
    let objects = &app.backends.objects;
    let meta = objects.head(&document.key).await?;
    let read = stamps.structure(objects, &document.key, &meta).await?;
    let why = match (&*read, recipient(app, claims).await?) {
        (Ok(structure), Some(email)) => {
            let line = app
                .config
                .recipients
                .watermark_text
                .render(&email, &utc_date(app.now()));
            let update = structure.stamp(&line);
            let etag = copy_etag(&meta.etag, &update);
            return Ok(Plan::Stamped(Stamped {
                original: meta,
                update,
                etag,
            }));
        }
        (Err(cannot), _) => cannot.to_string(),
        (Ok(_), None) => "the link's recipient is no longer known".to_owned(),
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
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
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
    /// [`Object`]: the original's part opened at the source (the same version the update was
    /// computed for, or the download fails before its first byte), then the update's part.
    pub async fn open(
        &self,
        objects: &Arc<dyn ObjectSource>,
        key: &str,
        range: Option<&RangeRequest>,
    ) -> Result<Object, Error> {
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
            if object.meta.etag != self.original.etag
                || object.range != Some(ByteRange { start, end: last })
            {
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
        Ok(Object {
            meta,
            range: selected,
            body,
        })
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
