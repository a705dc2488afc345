//! The embedded object source: files under a directory, read in [`CHUNK_SIZE`] pieces on the
//! blocking pool and handed to the response without copying.
//!
//! A key resolves to a path under the root only if its canonical form stays under the root's
//! canonical form: `..`, absolute paths and symlinks pointing out of the directory all read as
//! "not found".

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ByteStream, CHUNK_SIZE, Object, ObjectError, ObjectMeta, ObjectSource};
use crate::range::RangeRequest;

/// Files under one directory.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The canonical directory.
    root: PathBuf,
}

impl DirSource {
    /// A source over `dir`, which must exist.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Self { root })
    }

    /// The file for `key` and its metadata, if it is a regular file under the root.
    fn resolve(&self, key: &str) -> Result<(File, ObjectMeta), ObjectError> {
        if key.starts_with('/') || key.split('/').any(|s| s == "..") {
            return Err(ObjectError::NotFound);
        }
        let path = match self.root.join(key).canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ObjectError::NotFound),
            Err(e) => return Err(ObjectError::Unavailable(e)),
        };
        if !path.starts_with(&self.root) {
            return Err(ObjectError::NotFound);
        }
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ObjectError::NotFound,
            _ => ObjectError::Unavailable(e),
        })?;
        let metadata = file.metadata().map_err(ObjectError::Unavailable)?;
        if !metadata.is_file() {
            return Err(ObjectError::NotFound);
        }
        let modified = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let meta = ObjectMeta {
            size: metadata.len(),
            etag: format!("\"{:x}-{:x}\"", modified, metadata.len()),
            content_type: None,
        };
        Ok((file, meta))
    }
}

#[async_trait]
impl ObjectSource for DirSource {
    async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.resolve(&key).map(|(_, meta)| meta)).await
    }

    async fn open(&self, key: &str, range: Option<&RangeRequest>) -> Result<Object, ObjectError> {
        let this = self.clone();
        let key = key.to_owned();
        let range = range.cloned();
        blocking(move || {
            let (mut file, meta) = this.resolve(&key)?;
            let selected = match &range {
                Some(request) => request.select(&meta.etag, meta.size)?,
                None => None,
            };
            let (start, len) = selected.map_or((0, meta.size), |r| (r.start, r.len()));
            if start > 0 {
                file.seek(SeekFrom::Start(start))
                    .map_err(ObjectError::Unavailable)?;
            }
            Ok(Object {
                meta,
                range: selected,
                body: chunks(file, len),
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        let root = self.root.clone();
        blocking(move || match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(ObjectError::Unavailable(io::Error::new(
                io::ErrorKind::NotADirectory,
                "documents directory is not a directory",
            ))),
            Err(e) => Err(ObjectError::Unavailable(e)),
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
) -> Result<T, ObjectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ObjectError::Unavailable(io::Error::other(e)))?
}

/// Streams `len` bytes of `file` from its current position, one chunk per blocking read.
fn chunks(file: File, len: u64) -> ByteStream {
    Box::pin(futures_util::stream::try_unfold(
        (file, len),
        |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(CHUNK_SIZE as u64);
            // Allocated here, on the runtime's worker, not on the blocking thread: buffers then
            // come from the workers' few malloc arenas instead of one per blocking thread, which
            // keeps memory flat at high concurrency. Exactly `want` bytes of capacity, which
            // read_to_end fills without growing.
            let mut buf = Vec::with_capacity(want as usize);
            let (file, buf) = tokio::task::spawn_blocking(move || {
                (&mut file).take(want).read_to_end(&mut buf)?;
                Ok::<_, io::Error>((file, buf))
            })
            .await
            .map_err(io::Error::other)??;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while streaming",
                ));
            }
            let left = left - buf.len() as u64;
            Ok(Some((Bytes::from(buf), (file, left))))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    fn source() -> (tempfile::TempDir, DirSource) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("docs")).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("docs/a.bin"), &data).unwrap();
        std::fs::write(dir.path().join("outside.txt"), b"secret").unwrap();
        let source = DirSource::new(&dir.path().join("docs")).unwrap();
        (dir, source)
    }

    async fn read_all(object: Object) -> Vec<u8> {
        let chunks: Vec<Bytes> = object.body.try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_SIZE));
        chunks.concat()
    }

    #[tokio::test]
    async fn streams_whole_files_in_chunks() {
        let (_dir, source) = source();
        let meta = source.head("a.bin").await.unwrap();
        assert_eq!(meta.size, 200_000);
        assert!(meta.etag.starts_with('"') && meta.etag.ends_with('"'));
        let object = source.open("a.bin", None).await.unwrap();
        assert_eq!(object.len(), 200_000);
        assert!(object.reaches_end());
        let bytes = read_all(object).await;
        assert_eq!(bytes.len(), 200_000);
        assert_eq!(bytes[199_999], (199_999u32 % 251) as u8);
    }

    #[tokio::test]
    async fn serves_ranges() {
        let (_dir, source) = source();
        let request = RangeRequest::from_headers(Some("bytes=100000-100009"), None).unwrap();
        let object = source.open("a.bin", Some(&request)).await.unwrap();
        assert_eq!(object.len(), 10);
        assert!(!object.reaches_end());
        let bytes = read_all(object).await;
        let expected: Vec<u8> = (100_000..100_010u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(bytes, expected);

        let beyond = RangeRequest::from_headers(Some("bytes=300000-"), None).unwrap();
        assert!(matches!(
            source.open("a.bin", Some(&beyond)).await,
            Err(ObjectError::Range(_))
        ));
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_directory() {
        let (dir, source) = source();
        std::os::unix::fs::symlink(
            dir.path().join("outside.txt"),
            dir.path().join("docs/link.txt"),
        )
        .unwrap();
        for key in [
            "../outside.txt",
            "link.txt",
            "/etc/passwd",
            "missing.pdf",
            ".",
        ] {
            assert!(
                matches!(source.head(key).await, Err(ObjectError::NotFound)),
                "{key}"
            );
        }
    }
}
