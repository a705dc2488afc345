//! A file's bytes as a stream of [`READ_SIZE`] chunks ([`FileChunks`]): cached pages read on the
//! runtime's worker, the disk on the blocking pool, never more than one read ahead of the
//! consumer, a sent chunk's buffer reused for the next read.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::task::JoinHandle;

use crate::objects::{ByteStream, CHUNK_SIZE};

/// How much one read of a file asks for: the size of the chunks the stream yields.
pub const READ_SIZE: usize = CHUNK_SIZE;

/// Streams `len` bytes of `file` from `offset`.
pub(super) fn chunks(file: File, offset: u64, len: u64) -> ByteStream {
    Box::pin(FileChunks::new(file, offset, len))
}

/// A file's bytes as a stream of [`READ_SIZE`] chunks, read only when the consumer asks.
///
/// A read of cached pages is made on the runtime's worker, without a thread hop: `preadv2` with
/// `RWF_NOWAIT` copies what the page cache holds, and fails with `EAGAIN` instead of waiting for
/// the disk. Only then (a cold cache), or where the file system does not support it, is the read
/// made on the blocking pool; and while reads block, the next chunk is read ahead as the current
/// one goes out, so the disk and the socket work at the same time. Never more than one read is
/// ahead of the consumer: a client that stops reading stops the reads, and a stream holds at most
/// the chunk it handed out and one more.
///
/// Reads are positioned (`pread`), so the file's offset is not used. A file that ends early (it
/// was truncated while streaming) ends the stream with `UnexpectedEof`: never padded. A file
/// replaced (renamed over) while streaming goes on from the open file, the old version.
struct FileChunks {
    file: Arc<File>,
    /// Where the next read starts.
    offset: u64,
    /// Bytes still to read.
    left: u64,
    /// The next chunk, read or being read ahead.
    ahead: Option<Ahead>,
    /// The last chunk handed out. Once the consumer has dropped it (sent it), its buffer is the
    /// next read's: no allocation and no zeroing per chunk. Never a second buffer: while the
    /// consumer holds it, this is only another reference to the same bytes.
    last: Option<Bytes>,
    /// False once the file system refused `RWF_NOWAIT`: every read is then a blocking one.
    nowait: bool,
    /// Reads made on the blocking pool, for tests.
    blocking_reads: u64,
}

enum Ahead {
    Ready(Bytes),
    Reading(JoinHandle<io::Result<Bytes>>),
}

impl FileChunks {
    fn new(file: File, offset: u64, len: u64) -> Self {
        Self {
            file: Arc::new(file),
            offset,
            left: len,
            ahead: None,
            last: None,
            nowait: true,
            blocking_reads: 0,
        }
    }

    /// How much the next read asks for.
    fn want(&self) -> usize {
        usize::try_from(self.left).map_or(READ_SIZE, |left| left.min(READ_SIZE))
    }

    /// A buffer for the next read: the last chunk's, if the consumer is done with it.
    fn buffer(&mut self) -> BytesMut {
        let want = self.want();
        if let Some(Ok(mut buf)) = self.last.take().map(Bytes::try_into_mut)
            && buf.len() >= want
        {
            buf.truncate(want);
            return buf;
        }
        BytesMut::zeroed(want)
    }

    /// Reads the next chunk from the page cache, on this thread; `WouldBlock` if that would wait
    /// for the disk. An empty chunk is the end of the file.
    #[cfg(target_os = "linux")]
    fn read_cached(&mut self) -> io::Result<Bytes> {
        use rustix::io::{Errno, ReadWriteFlags};

        if !self.nowait {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut buf = self.buffer();
        let read = rustix::io::preadv2(
            &*self.file,
            &mut [IoSliceMut::new(&mut buf)],
            self.offset,
            ReadWriteFlags::NOWAIT,
        );
        match read {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf.freeze())
            }
            Err(e) if e == Errno::AGAIN => Err(io::ErrorKind::WouldBlock.into()),
            // No RWF_NOWAIT here (an old kernel, a file system without it): block from now on.
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::INVAL || e == Errno::NOSYS => {
                self.nowait = false;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Elsewhere, every read is made on the blocking pool.
    #[cfg(not(target_os = "linux"))]
    fn read_cached(&mut self) -> io::Result<Bytes> {
        self.nowait = false;
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Starts reading the next chunk on the blocking pool.
    fn read_blocking(&mut self) -> JoinHandle<io::Result<Bytes>> {
        self.blocking_reads += 1;
        let file = self.file.clone();
        let offset = self.offset;
        // Allocated here, on the runtime's worker, not on the blocking thread: buffers then come
        // from the workers' few malloc arenas instead of one per blocking thread, which keeps
        // memory flat at high concurrency.
        let mut buf = self.buffer();
        tokio::task::spawn_blocking(move || {
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(buf.freeze())
        })
    }

    /// Counts `chunk` as read; an empty one before the end means the file shrank.
    fn advance(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while streaming",
            ));
        }
        self.offset += chunk.len() as u64;
        self.left = self.left.saturating_sub(chunk.len() as u64);
        Ok(chunk)
    }

    /// Reads the next chunk ahead: from the cache if it is there, else on the blocking pool.
    fn read_ahead(&mut self) {
        if self.left == 0 {
            return;
        }
        self.ahead = Some(match self.read_cached() {
            Ok(chunk) => Ahead::Ready(chunk),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ahead::Reading(self.read_blocking()),
            // Reported when the consumer asks for this chunk: by a read made then.
            Err(_) => return,
        });
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let (chunk, blocked) = match self.ahead.take() {
            Some(Ahead::Ready(chunk)) => (chunk, false),
            Some(Ahead::Reading(mut handle)) => match Pin::new(&mut handle).poll(cx) {
                Poll::Pending => {
                    self.ahead = Some(Ahead::Reading(handle));
                    return Poll::Pending;
                }
                Poll::Ready(joined) => (joined.map_err(io::Error::other)??, true),
            },
            None if self.left == 0 => return Poll::Ready(None),
            None => match self.read_cached() {
                Ok(chunk) => (chunk, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ahead = Some(Ahead::Reading(self.read_blocking()));
                    return self.poll_chunk(cx);
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            },
        };
        let chunk = self.advance(chunk)?;
        // The cache was cold: read the next chunk while this one goes out (into the previous
        // chunk's buffer, if that one has been sent).
        if blocked {
            self.read_ahead();
        }
        self.last = Some(chunk.clone());
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = this.poll_chunk(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            // A broken stream stays broken.
            this.left = 0;
            this.ahead = None;
            this.last = None;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use futures_util::TryStreamExt;

    use super::*;
    use crate::objects::dir::DirSource;
    use crate::objects::{Object, ObjectSource};
    use crate::range::RangeRequest;

    async fn read_all(object: Object) -> Vec<u8> {
        let chunks: Vec<Bytes> = object.body.try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_SIZE));
        chunks.concat()
    }

    /// A file of `chunks` whole chunks and a half, its bytes, and the file open for reading.
    fn chunked_file(dir: &tempfile::TempDir, chunks: usize) -> (PathBuf, Vec<u8>, File) {
        let data: Vec<u8> = (0..chunks * READ_SIZE + READ_SIZE / 2)
            .map(|i| (i % 253) as u8)
            .collect();
        let path = dir.path().join("chunked.bin");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        (path, data, file)
    }

    /// Drops the file's pages from the page cache, so reads of it must wait for the disk.
    fn evict(path: &Path) {
        let file = File::open(path).unwrap();
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }

    /// A stream over `file` that reads cached pages inline (`nowait`), or only on the blocking
    /// pool.
    fn stream(file: File, offset: u64, len: u64, nowait: bool) -> FileChunks {
        let mut stream = FileChunks::new(file, offset, len);
        stream.nowait = nowait;
        stream
    }

    async fn collect(stream: &mut FileChunks) -> Vec<u8> {
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.try_next().await.unwrap() {
            assert!(!chunk.is_empty() && chunk.len() <= READ_SIZE);
            bytes.extend_from_slice(&chunk);
        }
        bytes
    }

    #[tokio::test]
    async fn cached_files_are_read_without_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let (_, data, file) = chunked_file(&dir, 4);
        let mut cached = stream(file, 0, data.len() as u64, true);
        assert_eq!(collect(&mut cached).await, data);
        // Where the file system has RWF_NOWAIT (ext4, xfs, btrfs, tmpfs on recent kernels).
        if cached.nowait {
            assert_eq!(cached.blocking_reads, 0);
        }
    }

    #[tokio::test]
    async fn a_sent_chunk_s_buffer_is_reused_and_a_held_one_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (_, data, file) = chunked_file(&dir, 4);
        for nowait in [true, false] {
            let file = file.try_clone().unwrap();
            let mut chunks = stream(file, 0, data.len() as u64, nowait);
            let first = chunks.try_next().await.unwrap().unwrap();
            let held = first.as_ptr();
            // Still held by the consumer: the next read gets a buffer of its own.
            let second = chunks.try_next().await.unwrap().unwrap();
            assert_ne!(second.as_ptr(), held);
            assert_eq!(first[..], data[..READ_SIZE], "nowait {nowait}");
            assert_eq!(second[..], data[READ_SIZE..2 * READ_SIZE]);
            // Both sent and dropped: the second's buffer takes the next read made (the third
            // chunk's, or when reads block, the fourth's: the third was read ahead already).
            let sent = second.as_ptr();
            drop((first, second));
            let third = chunks.try_next().await.unwrap().unwrap();
            assert_eq!(third[..], data[2 * READ_SIZE..3 * READ_SIZE]);
            assert_eq!(third.as_ptr() == sent, nowait);
            drop(third);
            let fourth = chunks.try_next().await.unwrap().unwrap();
            assert_eq!(fourth[..], data[3 * READ_SIZE..4 * READ_SIZE]);
            assert_eq!(fourth.as_ptr(), sent, "nowait {nowait}");
        }
    }

    #[tokio::test]
    async fn a_cold_file_is_read_on_the_blocking_pool_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data, file) = chunked_file(&dir, 8);
        evict(&path);
        let mut cold = stream(file, 0, data.len() as u64, true);
        assert_eq!(collect(&mut cold).await, data);
        assert!(
            cold.blocking_reads > 0,
            "the first read found nothing cached"
        );

        // Every read blocking (no RWF_NOWAIT): the same bytes, with a read ahead of each chunk.
        evict(&path);
        let mut blocking = stream(File::open(&path).unwrap(), 0, data.len() as u64, false);
        assert_eq!(collect(&mut blocking).await, data);
        assert_eq!(blocking.blocking_reads, 9);
    }

    #[tokio::test]
    async fn ranges_at_chunk_boundaries_are_exact_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data, _) = chunked_file(&dir, 4);
        let c = READ_SIZE;
        let ranges = [
            (0, c),
            (c - 1, 2),
            (c, c),
            (c, 2 * c + 1),
            (2 * c - 1, c + 2),
            (3 * c, data.len() - 3 * c),
            (data.len() - 1, 1),
        ];
        for nowait in [true, false] {
            for (start, len) in ranges {
                let file = File::open(&path).unwrap();
                let mut range = stream(file, start as u64, len as u64, nowait);
                assert_eq!(
                    collect(&mut range).await,
                    data[start..start + len],
                    "{start}+{len}, nowait {nowait}"
                );
            }
        }

        // And through the source, as a request's Range header selects them.
        let source = DirSource::new(dir.path()).unwrap();
        for (start, len) in ranges {
            let header = format!("bytes={start}-{}", start + len - 1);
            let request = RangeRequest::from_headers(Some(&header), None).unwrap();
            let object = source.open("chunked.bin", Some(&request)).await.unwrap();
            assert_eq!(object.len(), len as u64);
            assert_eq!(read_all(object).await, data[start..start + len], "{header}");
        }
    }

    #[tokio::test]
    async fn a_file_truncated_while_streaming_ends_the_stream_short_not_padded() {
        for nowait in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (path, data, file) = chunked_file(&dir, 4);
            let mut cut = stream(file, 0, data.len() as u64, nowait);
            let first = cut.try_next().await.unwrap().unwrap();
            let kept = 2 * READ_SIZE + READ_SIZE / 4;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(kept as u64)
                .unwrap();
            let mut got = first.to_vec();
            let error = loop {
                match cut.try_next().await {
                    Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                    Ok(None) => panic!("a truncated file ended as if whole"),
                    Err(e) => break e,
                }
            };
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(got, data[..kept], "nowait {nowait}");
            assert!(
                cut.try_next().await.unwrap().is_none(),
                "broken stays broken"
            );
        }
    }

    #[tokio::test]
    async fn a_consumer_that_stops_taking_chunks_stops_the_reads() {
        for (nowait, cold) in [(true, false), (true, true), (false, false)] {
            let dir = tempfile::tempdir().unwrap();
            let (path, data, file) = chunked_file(&dir, 16);
            if cold {
                evict(&path);
            }
            let mut slow = stream(file, 0, data.len() as u64, nowait);
            let mut taken = 0;
            for _ in 0..3 {
                taken += slow.try_next().await.unwrap().unwrap().len();
                // Time enough for any read ahead to finish, and for one that would follow it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let read = slow.offset as usize
                    + match &slow.ahead {
                        Some(Ahead::Ready(chunk)) => chunk.len(),
                        Some(Ahead::Reading(_)) => READ_SIZE,
                        None => 0,
                    };
                assert_eq!(slow.offset as usize, taken);
                assert!(
                    read <= taken + READ_SIZE,
                    "{read} bytes read for {taken} taken (nowait {nowait}, cold {cold})"
                );
            }
        }
    }
}
