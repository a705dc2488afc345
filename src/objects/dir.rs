//! The embedded object source: files under a directory, read in [`READ_SIZE`] pieces (from the
//! page cache on the runtime's worker, from the disk on the blocking pool, one read at most ahead
//! of the consumer; see `dir::chunks`) and handed to the response without copying.
//!
//! A key resolves to a path under the root only if its canonical form stays under the root's
//! canonical form: `..`, absolute paths and symlinks pointing out of the directory all read as
//! "not found".

mod chunks;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;

pub use self::chunks::READ_SIZE;
use self::chunks::chunks;
use super::{Object, ObjectError, ObjectMeta, ObjectSource};
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
        Ok((file, meta_of(&metadata)))
    }

    /// As [`DirSource::resolve`], on this thread, when the kernel can open the file from its
    /// caches alone (`openat2` with `RESOLVE_CACHED`) and its path has no symlink
    /// (`RESOLVE_NO_SYMLINKS`: the root is canonical and the key has no `..`, so the file is under
    /// the root). `None` for anything else (not cached, missing, a symlink, not a file, an old
    /// kernel): then `resolve`, on the blocking pool, decides.
    #[cfg(target_os = "linux")]
    fn resolve_cached(&self, key: &str) -> Option<(File, ObjectMeta)> {
        use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};

        if key.starts_with('/') || key.split('/').any(|s| s == "..") {
            return None;
        }
        let fd = rustix::fs::openat2(
            CWD,
            self.root.join(key),
            // Non-blocking, so a FIFO among the documents cannot hold this thread in `open`
            // (it is then not a file, and left to `resolve`); no effect on a regular file.
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::CACHED | ResolveFlags::NO_SYMLINKS,
        )
        .ok()?;
        let file = File::from(fd);
        // The inode of an open file is in memory: this does not wait for the disk.
        let metadata = file.metadata().ok()?;
        metadata.is_file().then(|| {
            let meta = meta_of(&metadata);
            (file, meta)
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn resolve_cached(&self, _key: &str) -> Option<(File, ObjectMeta)> {
        None
    }
}

/// An open file's size and validator.
fn meta_of(metadata: &std::fs::Metadata) -> ObjectMeta {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    ObjectMeta {
        size: metadata.len(),
        etag: format!("\"{:x}-{:x}\"", modified, metadata.len()),
        content_type: None,
    }
}

/// `file`, positioned at the part of it `range` selects.
fn opened(
    file: File,
    meta: ObjectMeta,
    range: Option<&RangeRequest>,
) -> Result<Object, ObjectError> {
    let selected = match range {
        Some(request) => request.select(&meta.etag, meta.size)?,
        None => None,
    };
    let (start, len) = selected.map_or((0, meta.size), |r| (r.start, r.len()));
    Ok(Object {
        meta,
        range: selected,
        body: chunks(file, start, len),
    })
}

#[async_trait]
impl ObjectSource for DirSource {
    async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
        if let Some((_, meta)) = self.resolve_cached(key) {
            return Ok(meta);
        }
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.resolve(&key).map(|(_, meta)| meta)).await
    }

    async fn open(&self, key: &str, range: Option<&RangeRequest>) -> Result<Object, ObjectError> {
        if let Some((file, meta)) = self.resolve_cached(key) {
            return opened(file, meta, range);
        }
        let this = self.clone();
        let key = key.to_owned();
        let range = range.cloned();
        blocking(move || {
            let (file, meta) = this.resolve(&key)?;
            opened(file, meta, range.as_ref())
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::objects::CHUNK_SIZE;
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
    async fn a_cached_lookup_agrees_with_the_blocking_one_or_leaves_it_to_it() {
        let (dir, source) = source();
        std::fs::create_dir(dir.path().join("docs/sub")).unwrap();
        std::fs::write(dir.path().join("docs/sub/b.bin"), b"inner").unwrap();
        std::os::unix::fs::symlink("a.bin", dir.path().join("docs/inside.bin")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("outside.txt"),
            dir.path().join("docs/link.txt"),
        )
        .unwrap();
        // A FIFO: opening it for reading would wait for a writer; here it is only not a file.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("docs/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        assert!(source.resolve_cached("fifo").is_none());
        // Freshly written: in the caches, so the lookup is made on this thread.
        for key in ["a.bin", "sub/b.bin"] {
            let (_, cached) = source.resolve_cached(key).expect(key);
            let (_, resolved) = source.resolve(key).unwrap();
            assert_eq!(cached, resolved, "{key}");
        }
        // Symlinks (in or out), directories, escapes and missing files: the blocking lookup's
        // answer, whatever it is.
        for key in [
            "inside.bin",
            "link.txt",
            "sub",
            ".",
            "",
            "../outside.txt",
            "/etc/passwd",
            "missing.pdf",
        ] {
            assert!(source.resolve_cached(key).is_none(), "{key}");
        }
        assert_eq!(source.head("inside.bin").await.unwrap().size, 200_000);
        assert!(matches!(
            source.head("link.txt").await,
            Err(ObjectError::NotFound)
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
