//! What a download holds while it streams, and the floor under its speed.
//!
//! [`Paced`] wraps a download's body. It keeps the download's [`DownloadSlot`] (its place in the
//! concurrent download caps) until the body is dropped, and a check on the server's [`Watch`]
//! makes sure, once per window, that the body handed out at least `min_rate × window` bytes since
//! the last check. A client that takes a few bytes every 25 s keeps every write progressing, so
//! the connection's write deadline never fires; this floor does. A window in which docgate was
//! itself waiting for the object source (or the store) at the check is not held against the
//! client.
//!
//! When the floor is missed the connection is cut through its [`Cutter`] (hyper may not be
//! polling the body at all while the client's window is full; on HTTP/2 the whole connection
//! goes, as with the write deadline), and the body fails if polled. The
//! dropped download body releases its claim as a started attempt (the client's doing, not ours)
//! and frees its object stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::BoxError;
use super::admission::DownloadSlot;
use super::conn::Cutter;
use super::watch::{Next, Watch, Watching};

/// The least a download must move: `min_rate` bytes per second, averaged over `window`.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub min_rate: u64,
    pub window: Duration,
}

/// What the body and its watchdog share.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes handed to hyper so far.
    sent: AtomicU64,
    /// True while the inner body is pending: docgate waits for its own backends, not the client.
    waiting: AtomicBool,
    /// Set by the check when the floor was missed.
    cut: AtomicBool,
}

/// A download body under its slot and pacing.
pub struct Paced<B> {
    inner: B,
    progress: Arc<Progress>,
    _watching: Option<Watching>,
    _slot: DownloadSlot,
}

impl<B> Paced<B> {
    /// Wraps `inner`, holding `slot` until dropped; with `pacing`, checked on `watch`, a download
    /// slower than its floor is cut, through `cutter` when the connection gave one.
    pub fn new(
        inner: B,
        slot: DownloadSlot,
        pacing: Option<(&Watch, Pacing)>,
        cutter: Option<Cutter>,
    ) -> Self {
        let progress = Arc::new(Progress::default());
        let watching =
            pacing.map(|(watch, pacing)| watch.add(floor(progress.clone(), pacing, cutter)));
        Self {
            inner,
            progress,
            _watching: watching,
            _slot: slot,
        }
    }
}

impl<B> HttpBody for Paced<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.progress.cut.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err("the client read the download too slowly".into())));
        }
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        this.progress
            .waiting
            .store(poll.is_pending(), Ordering::Release);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            this.progress
                .sent
                .fetch_add(data.len() as u64, Ordering::AcqRel);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The check of the floor, due once per window (a window measured from the last check, which
/// runs up to a tick late), until it is missed.
fn floor(
    progress: Arc<Progress>,
    pacing: Pacing,
    cutter: Option<Cutter>,
) -> impl FnMut(tokio::time::Instant) -> Next + Send + 'static {
    let floor = u64::try_from(u128::from(pacing.min_rate) * pacing.window.as_millis() / 1000)
        .unwrap_or(u64::MAX);
    let mut due = tokio::time::Instant::now() + pacing.window;
    let mut last = 0u64;
    move |now| {
        if now < due {
            return Next::Again;
        }
        due = now + pacing.window;
        let sent = progress.sent.load(Ordering::Acquire);
        let moved = sent.saturating_sub(last);
        last = sent;
        if moved >= floor || progress.waiting.load(Ordering::Acquire) {
            return Next::Again;
        }
        tracing::info!(
            moved,
            floor,
            window_s = pacing.window.as_secs_f64(),
            "download below its minimum rate: cutting it"
        );
        progress.cut.store(true, Ordering::Release);
        if let Some(cutter) = &cutter {
            cutter.cut();
        }
        Next::Done
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use futures_util::{Stream, StreamExt};
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::http::admission::Downloads;

    type Frames = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BoxError>> + Send>>;

    const PACING: Pacing = Pacing {
        min_rate: 1000,
        window: Duration::from_secs(1),
    };

    fn paced(frames: Frames) -> Paced<StreamBody<Frames>> {
        let slot = Downloads::new(1, 1)
            .admit("192.0.2.1".parse().unwrap())
            .unwrap();
        let watch = Watch::new(Duration::from_millis(100));
        Paced::new(StreamBody::new(frames), slot, Some((&watch, PACING)), None)
    }

    fn chunks(n: usize) -> Frames {
        futures_util::stream::iter((0..n).map(|_| Ok(Frame::data(Bytes::from(vec![1u8; 600])))))
            .boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_taking_less_than_the_floor_is_cut() {
        let mut body = paced(chunks(100));
        // 600 bytes a second against a floor of 1000.
        for _ in 0..3 {
            body.frame().await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(999)).await;
        }
        let cut = loop {
            match body.frame().await {
                Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(999)).await,
                Some(Err(e)) => break e,
                None => panic!("never cut"),
            }
        };
        assert_eq!(cut.to_string(), "the client read the download too slowly");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_at_the_floor_and_a_slow_source_are_not_cut() {
        // Two chunks a second: 1200 bytes, over the floor.
        let mut body = paced(chunks(20));
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            got += frame.unwrap().into_data().unwrap().len();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(got, 20 * 600);

        // The source takes 5 s per chunk: docgate waits on its own backend, not on the client.
        let slow = futures_util::stream::iter(0..3)
            .then(|_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Frame::data(Bytes::from_static(b"late")))
            })
            .boxed();
        let body = paced(slow).collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 12);
    }
}
