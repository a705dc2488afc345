//! Deadlines on one accepted connection, below hyper: [`Guarded`] wraps the socket.
//!
//! hyper bounds how long a client may take to send a request head, but nothing bounds a client
//! that stops *reading*: its download's writes stay pending, and with them the link's claim in
//! the token store. Nor does anything close an HTTP/2 connection that says nothing at all.
//! [`Guarded`] fails the connection's I/O with `TimedOut` when
//!
//! - a write has been pending (the client's receive window is full) for the write timeout, or
//! - no byte has moved in either direction for the idle timeout.
//!
//! - or its [`Cutter`] has been used: a download on it moved too slowly (see [`super::pace`]),
//!   which the two deadlines alone do not catch, since each write of a slow reader progresses.
//!
//! hyper then drops the connection and every response body on it, which releases their claims:
//! the links stay usable. A connection cut for its client's slowness (not an idle one) is
//! [`Reset`]: closed with a TCP reset, so the kernel drops what is still queued for the client at
//! once instead of trickling it out to the reader that was cut. The deadlines are checked lazily: I/O only records the time of the last
//! progress, and a single timer per connection re-arms itself when it fires early.
//!
//! Writes are also sliced: after [`WRITE_SLICE`] bytes written without the socket ever making it
//! wait (a fast client on a fast link), the connection yields to the runtime's other tasks once
//! before writing more. Without it one download to a fast reader wrote up to tokio's budget of
//! 128 writes (8 MiB) per turn, and at a thousand such downloads every other task (Redis replies,
//! new connections, timers) waited seconds for its turn: claims and request log entries timed
//! out, downloads failed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The most bytes one connection writes before it lets the runtime's other tasks run: four
/// chunks. Small enough that a thousand busy downloads take turns within tens of milliseconds,
/// large enough that the turn's overhead (a reschedule) stays a few percent of the copying.
pub const WRITE_SLICE: usize = 4 * crate::objects::CHUNK_SIZE;

/// The two deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// How long a write may stay pending.
    pub write: Duration,
    /// How long a connection may stay silent in both directions.
    pub idle: Duration,
}

/// Cuts one connection from outside its I/O: handed to the connection's requests (as a request
/// extension), so a response body that finds its client too slow can end the connection even
/// while hyper is not polling that body.
#[derive(Debug, Clone, Default)]
pub struct Cutter(Arc<CutState>);

#[derive(Debug, Default)]
struct CutState {
    cut: AtomicBool,
    /// The connection task, woken by a cut.
    waker: Mutex<Option<Waker>>,
}

impl Cutter {
    /// Fails the connection's I/O from now on, and wakes it so it finds out.
    pub fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::Acquire)
    }

    fn register(&self, waker: &Waker) {
        let mut slot = self.0.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// `Err` once cut.
    fn check(&self) -> io::Result<()> {
        if self.is_cut() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "a download on the connection was too slow",
            ));
        }
        Ok(())
    }
}

/// A socket that can be set to close with a reset, discarding what is still queued.
pub trait Reset {
    fn reset_on_close(&self);
}

impl Reset for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        if let Err(e) = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(cause = %e, "SO_LINGER not set");
        }
    }
}

impl Reset for tokio::io::DuplexStream {
    fn reset_on_close(&self) {}
}

/// A socket whose I/O fails with `TimedOut` when a [`Deadlines`] passes or its [`Cutter`] cuts.
#[derive(Debug)]
pub struct Guarded<T> {
    inner: T,
    deadlines: Deadlines,
    cutter: Cutter,
    /// When a byte last moved either way.
    last_progress: Instant,
    /// Since when a write has been pending, if one is.
    write_blocked_since: Option<Instant>,
    /// Bytes written since the connection's task last let others run.
    unyielded: usize,
    timer: Pin<Box<Sleep>>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, deadlines: Deadlines) -> Self {
        let now = Instant::now();
        Self {
            inner,
            deadlines,
            last_progress: now,
            write_blocked_since: None,
            unyielded: 0,
            timer: Box::pin(tokio::time::sleep_until(now + deadlines.idle)),
            cutter: Cutter::default(),
        }
    }

    /// The handle that cuts this connection.
    pub fn cutter(&self) -> Cutter {
        self.cutter.clone()
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }
}

impl<T: Reset> Guarded<T> {
    /// `Err` once the connection has been cut, which also resets it.
    fn cut(&self) -> io::Result<()> {
        self.cutter
            .check()
            .inspect_err(|_| self.inner.reset_on_close())
    }

    /// The earliest deadline now in force.
    fn deadline(&self) -> Instant {
        let idle = self.last_progress + self.deadlines.idle;
        match self.write_blocked_since {
            Some(since) => idle.min(since + self.deadlines.write),
            None => idle,
        }
    }

    /// Called when I/O is pending: `Err` once a deadline has passed, else the timer is armed to
    /// wake this task at the next one.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.cutter.register(cx.waker());
        self.cut()?;
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                let what = if self
                    .write_blocked_since
                    .is_some_and(|since| Instant::now() >= since + self.deadlines.write)
                {
                    self.inner.reset_on_close();
                    "the client stopped reading"
                } else {
                    "the connection was idle"
                };
                return Err(io::Error::new(io::ErrorKind::TimedOut, what));
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
    }
}

impl<T: Reset> Guarded<T> {
    /// Before a write: `Pending` (the task woken at once, so it runs again after the others
    /// waiting) when this connection has written a whole [`WRITE_SLICE`] in its turn.
    fn take_turns(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.unyielded >= WRITE_SLICE {
            self.unyielded = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// Accounts for one write attempt: progress, or a pending write that may have timed out.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(result) => {
                self.write_blocked_since = None;
                self.progressed();
                if let Ok(n) = result {
                    self.unyielded += n;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                // Waiting for the socket lets the others run anyway.
                self.unyielded = 0;
                self.write_blocked_since.get_or_insert_with(Instant::now);
                self.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Reset + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.cut()?;
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                self.check(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Reset + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.cut()?;
        std::task::ready!(self.take_turns(cx));
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.cut()?;
        std::task::ready!(self.take_turns(cx));
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DEADLINES: Deadlines = Deadlines {
        write: Duration::from_secs(5),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(near, DEADLINES);
        let started = Instant::now();
        let chunk = vec![0u8; 4096];
        let err = loop {
            if let Err(e) = guarded.write(&chunk).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "the client stopped reading");
        assert_eq!(started.elapsed(), DEADLINES.write);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (near, mut far) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while let Ok(n) = far.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                total += n;
                // Slower than the writer, but never stalled as long as the write deadline.
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            total
        });
        let mut guarded = Guarded::new(near, DEADLINES);
        for _ in 0..8 {
            guarded.write_all(&[7u8; 1024]).await.unwrap();
        }
        guarded.shutdown().await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), 8 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_wakes_a_blocked_connection_and_fails_its_io() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(near, DEADLINES);
        let cutter = guarded.cutter();
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            cutter.cut();
        });
        let err = loop {
            if let Err(e) = guarded.write(&[0u8; 4096]).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "a download on the connection was too slow");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        let mut buf = [0u8; 4];
        assert!(guarded.read(&mut buf).await.is_err(), "reads fail too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_when_idle() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(near, DEADLINES);
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "the connection was idle");
        assert_eq!(started.elapsed(), DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_in_either_direction_keeps_a_connection_alive() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut guarded = Guarded::new(near, DEADLINES);
        let talker = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                far.write_all(b"ping").await.unwrap();
            }
            far
        });
        let started = Instant::now();
        let mut buf = [0u8; 4];
        for _ in 0..5 {
            guarded.read_exact(&mut buf).await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(250));
        let _far = talker.await.unwrap();
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(310));
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_connection_writing_to_a_fast_reader_takes_turns() {
        let (near, _far) = tokio::io::duplex(4 * WRITE_SLICE);
        let mut guarded = Guarded::new(near, DEADLINES);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let chunk = vec![0u8; 16 * 1024];
        let mut write = |guarded: &mut Guarded<_>| Pin::new(guarded).poll_write(&mut cx, &chunk);

        // The reader has room for everything: the socket never makes the writer wait.
        let mut written = 0;
        while let Poll::Ready(result) = write(&mut guarded) {
            written += result.unwrap();
            assert!(
                written <= WRITE_SLICE,
                "no turn given after {written} bytes"
            );
        }
        assert_eq!(written, WRITE_SLICE, "a whole slice, then a turn");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken to write again");
        assert!(
            guarded.write_blocked_since.is_none(),
            "a turn given is not a client that stopped reading"
        );
        // Its next turn writes again.
        assert!(matches!(write(&mut guarded), Poll::Ready(Ok(n)) if n == chunk.len()));
    }
}
