//! Where documents' bytes come from, behind [`ObjectSource`].
//!
//! A source answers with an object's size and strong `ETag`, and opens it as a stream of chunks:
//! never the whole object in memory. Range selection (including `If-Range`) is applied by the
//! source against the current version of the object, so the bytes and the headers describe the
//! same version.
//!
//! Implementations: [`dir::DirSource`] (embedded: a directory) and [`s3::S3Source`] (production: a
//! private S3 bucket). Errors never carry the key, path or endpoint out to a client; they are logged
//! and mapped to a generic status in `http::error`.

pub mod dir;
pub mod observed;
pub mod s3;

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::range::{ByteRange, RangeRequest, Unsatisfiable};

/// Chunk size for streaming: large enough for throughput, small enough to bound memory per stream.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// What a source knows about an object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// A strong validator, quoted (`"..."`): it changes whenever the bytes do.
    pub etag: String,
    /// The media type the store keeps with the object, if any (S3's `Content-Type`).
    pub content_type: Option<String>,
}

/// An object's bytes, chunk by chunk. An `Err` item means the transfer broke.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An opened object.
pub struct Object {
    pub meta: ObjectMeta,
    /// The part being sent, or `None` for all of it.
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

impl Object {
    /// How many bytes `body` will yield.
    pub fn len(&self) -> u64 {
        self.range.map_or(self.meta.size, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `body` ends with the object's last byte.
    pub fn reaches_end(&self) -> bool {
        self.range.is_none_or(|r| r.reaches_end(self.meta.size))
    }
}

/// Why an object could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// No such object (or not one this source may serve).
    #[error("object not found")]
    NotFound,
    /// The requested range lies outside the object.
    #[error(transparent)]
    Range(#[from] Unsatisfiable),
    /// The source failed: I/O error, timeout, backend error.
    #[error("object source failed: {0}")]
    Unavailable(#[source] io::Error),
}

/// A source of document bytes.
#[async_trait]
pub trait ObjectSource: Send + Sync + 'static {
    /// Size and validator of the object at `key`.
    async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError>;

    /// Opens the object at `key`, positioned at the selected range.
    async fn open(&self, key: &str, range: Option<&RangeRequest>) -> Result<Object, ObjectError>;

    /// Answers when the source is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), ObjectError>;
}
