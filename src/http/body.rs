//! Response bodies with a job to do when they end.
//!
//! [`DownloadBody`] streams a document and settles its link: before it hands over the chunk that
//! carries the document's last byte it completes the link in the store (so the bytes that finish
//! a download are only ever sent by the download that spent the link), and if it is dropped before
//! that (the client went away, the source broke) it releases the claim so the link can be resumed.
//! While bytes flow, a check on the server's [`Watch`] renews the claim once a `renew_every` (the
//! round trip on a task of its own, one at a time) and cuts the stream if the link is revoked.
//! Every renewal and the final release or completion report the bytes handed to the client so far
//! (a running total), so the store can spend a link once its downloads have covered the document.
//!
//! [`Logged`] writes the access log line when a response body is finished or dropped, with the
//! bytes actually sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::watch::{Next, Watch, Watching};
use super::{AccessLine, Body, BoxError};
use crate::objects::ByteStream;
use crate::store::{Lease, Sent, StoreError, TokenStore};
use crate::token::Jti;

/// How a download ended, for the owner's request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The last byte went out and the link is spent.
    Completed,
    /// A range that ends before the last byte was sent in full.
    Partial,
    /// The client went away, or the link was revoked, before the end.
    Interrupted,
    /// Our side failed (object source, store); the attempt was refunded.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Partial => "partial",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
        }
    }
}

/// Called once with the download's outcome.
pub type OnFinish = Box<dyn FnOnce(Outcome) + Send>;

/// A download's hold on its link.
pub struct HeldClaim {
    pub store: Arc<dyn TokenStore>,
    pub jti: Jti,
    pub lease: Lease,
    /// The whole document's size, reported to the store with the bytes sent.
    pub size: u64,
    /// Where the release of an unsettled claim runs, so shutdown waits for it.
    pub tasks: TaskTracker,
}

type Settling = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

/// Streams one download and settles its link.
pub struct DownloadBody {
    stream: ByteStream,
    /// Bytes still to come from `stream`.
    remaining: u64,
    /// True when the body ends with the document's last byte: ending spends the link.
    spends: bool,
    /// The final chunk, held back until the link is settled.
    held: Option<Bytes>,
    settling: Option<Settling>,
    revoked: Pin<Box<WaitForCancellationFutureOwned>>,
    guard: Guard,
}

/// Releases the claim and reports the outcome if the body is dropped unsettled.
struct Guard {
    claim: Arc<HeldClaim>,
    /// Bytes handed to the client so far, shared with the renewals that report them.
    sent: Arc<AtomicU64>,
    settled: bool,
    /// Set when the failure is ours, so the attempt is not counted against the link.
    refund: bool,
    /// The claim's renewals, until the claim is settled or let go.
    renewing: Option<Watching>,
    on_finish: Option<OnFinish>,
}

impl Guard {
    /// What this download has sent so far, plus `more` about to go out.
    fn report(&self, more: u64) -> Sent {
        sent_so_far(&self.claim, &self.sent, more)
    }

    fn finish(&mut self, outcome: Outcome) {
        self.settled = true;
        if let Some(report) = self.on_finish.take() {
            report(outcome);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.renewing = None;
        if self.settled {
            return;
        }
        let claim = self.claim.clone();
        let refund = self.refund;
        let sent = self.report(0);
        if tokio::runtime::Handle::try_current().is_ok() {
            self.claim.tasks.spawn(async move {
                let released = claim.store.release(&claim.jti, &claim.lease, sent, refund);
                if let Err(e) = released.await {
                    // The lease expires on its own; the link is usable again after it.
                    tracing::warn!(cause = %e, "could not release a download's claim");
                }
            });
        }
        self.finish(if refund {
            Outcome::Failed
        } else {
            Outcome::Interrupted
        });
    }
}

impl DownloadBody {
    /// Streams `len` bytes of `stream` for the download holding `claim`, renewed on `watch`
    /// once a `renew_every`. `spends` when they end with the document's last byte.
    pub fn new(
        stream: ByteStream,
        len: u64,
        spends: bool,
        claim: HeldClaim,
        watch: &Watch,
        renew_every: Duration,
        on_finish: OnFinish,
    ) -> Self {
        let claim = Arc::new(claim);
        let sent = Arc::new(AtomicU64::new(0));
        let revoked = CancellationToken::new();
        // Due half a tick early, so that a tick as long as the interval renews every tick.
        let early = watch.tick() / 2;
        let renewal = Renewal {
            claim: claim.clone(),
            bytes: sent.clone(),
            revoked: revoked.clone(),
            // The longest from one renewal to the next (`app::RENEWAL_GAP`).
            gap: renew_every + early,
            renewed: Arc::new(std::sync::Mutex::new(Renewed {
                at: tokio::time::Instant::now(),
                failure: None,
            })),
        };
        let mut due = tokio::time::Instant::now() + renew_every - early;
        let mut running: Option<AbortOnDropHandle<()>> = None;
        let renewing = watch.add(move |now| {
            if renewal.revoked.is_cancelled() {
                return Next::Done;
            }
            // Checked every tick, a renewal under way or not: the lease may lapse before the
            // next renewal could land.
            if renewal.lapsing() {
                return Next::Done;
            }
            // One renewal at a time; the next one `renew_every` after this one was sent.
            if now < due || running.as_ref().is_some_and(|r| !r.is_finished()) {
                return Next::Again;
            }
            due = now + renew_every - early;
            running = Some(AbortOnDropHandle::new(tokio::spawn(renewal.clone().run())));
            Next::Again
        });
        Self {
            stream,
            remaining: len,
            spends,
            held: None,
            settling: None,
            revoked: Box::pin(revoked.cancelled_owned()),
            guard: Guard {
                claim,
                sent,
                settled: false,
                refund: false,
                renewing: Some(renewing),
                on_finish: Some(on_finish),
            },
        }
    }

    /// The held final chunk, counted as sent.
    fn take_held(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        let chunk = self.held.take()?;
        self.guard
            .sent
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Some(Ok(Frame::data(chunk)))
    }

    fn start_settling(&mut self) {
        // The claim is being settled: renewing it any more can only race the settlement (a
        // renewal under way is aborted with its check).
        self.guard.renewing = None;
        let claim = self.guard.claim.clone();
        // Everything this download sends, the held chunk included.
        let sent = self
            .guard
            .report(self.held.as_ref().map_or(0, |c| c.len() as u64));
        self.settling = Some(if self.spends {
            Box::pin(async move { claim.store.complete(&claim.jti, &claim.lease, sent).await })
        } else {
            Box::pin(async move {
                claim
                    .store
                    .release(&claim.jti, &claim.lease, sent, false)
                    .await
                    .map(|()| true)
            })
        });
    }
}

impl HttpBody for DownloadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.guard.settled {
            return Poll::Ready(this.take_held());
        }
        // Once settling has begun, its answer is authoritative: a completion deletes the link's
        // record, and a lease renewal that lands after it would read that as a revocation.
        if this.settling.is_none() && this.revoked.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err("the link was revoked during the download".into())));
        }
        loop {
            if let Some(settling) = this.settling.as_mut() {
                let result = ready!(settling.as_mut().poll(cx));
                this.settling = None;
                return match result {
                    Ok(true) => {
                        this.guard.finish(if this.spends {
                            Outcome::Completed
                        } else {
                            Outcome::Partial
                        });
                        Poll::Ready(this.take_held())
                    }
                    // Revoked, or the lease lapsed and another download took the link: the
                    // last bytes belong to nobody now.
                    Ok(false) => Poll::Ready(Some(Err("the download lost its claim".into()))),
                    Err(e) => {
                        this.guard.refund = true;
                        Poll::Ready(Some(Err(e.into())))
                    }
                };
            }
            if this.remaining == 0 {
                this.start_settling();
                continue;
            }
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(mut chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    if chunk.len() as u64 > this.remaining {
                        chunk.truncate(this.remaining as usize);
                    }
                    this.remaining -= chunk.len() as u64;
                    if this.remaining == 0 {
                        this.held = Some(chunk);
                        continue;
                    }
                    this.guard
                        .sent
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Some(Err(e)) => {
                    this.guard.refund = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    this.guard.refund = true;
                    return Poll::Ready(Some(Err("the object ended before its length".into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.guard.settled && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining + self.held.as_ref().map_or(0, |c| c.len() as u64))
    }
}

/// What a download holding `claim` has sent so far (`counter`), plus `more` about to go out.
fn sent_so_far(claim: &HeldClaim, counter: &AtomicU64, more: u64) -> Sent {
    Sent::new(
        counter.load(Ordering::Relaxed).saturating_add(more),
        claim.size,
    )
}

/// One renewal of a download's claim, reporting the bytes sent so far.
#[derive(Clone)]
struct Renewal {
    claim: Arc<HeldClaim>,
    bytes: Arc<AtomicU64>,
    /// Cancelled when the claim is gone, or when the store has been unreachable for so long that
    /// the lease may lapse before the next renewal.
    revoked: CancellationToken,
    /// The longest from one renewal to the next.
    gap: Duration,
    renewed: Arc<std::sync::Mutex<Renewed>>,
}

/// What the renewals of one download learned so far.
struct Renewed {
    /// When the last renewal that succeeded was sent (the claim's, at first): the lease runs
    /// from no earlier than this.
    at: tokio::time::Instant,
    /// The store's last failure to renew, for the line that stops the download.
    failure: Option<StoreError>,
}

impl Renewal {
    fn renewed(&self) -> std::sync::MutexGuard<'_, Renewed> {
        self.renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True, and the download stopped, when the lease may lapse before another renewal could
    /// land: the store has not renewed it for so long.
    fn lapsing(&self) -> bool {
        let failure = {
            let mut renewed = self.renewed();
            if renewed.at.elapsed() + self.gap < self.claim.lease.ttl {
                return false;
            }
            renewed.failure.take()
        };
        match failure {
            Some(e) => {
                tracing::warn!(cause = %e, "claim cannot be renewed: stopping the download");
            }
            None => tracing::warn!("claim not renewed in time: stopping the download"),
        }
        self.revoked.cancel();
        true
    }

    async fn run(self) {
        let report = sent_so_far(&self.claim, &self.bytes, 0);
        let claim = &self.claim;
        let asked = tokio::time::Instant::now();
        match claim.store.renew(&claim.jti, &claim.lease, report).await {
            Ok(true) => self.renewed().at = asked,
            Ok(false) => {
                tracing::info!("link revoked or claim lost during a download: stopping it");
                self.revoked.cancel();
            }
            Err(e) => {
                self.renewed().failure = Some(e);
                self.lapsing();
            }
        }
    }
}

/// A body that logs its request's access line when it ends or is dropped.
pub struct Logged {
    inner: Body,
    sent: u64,
    ended: bool,
    line: AccessLine,
}

impl Logged {
    pub fn new(inner: Body, line: AccessLine) -> Self {
        Self {
            inner,
            sent: 0,
            ended: false,
            line,
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            None => this.ended = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let complete = self.ended || self.inner.is_end_stream();
        let line = &self.line;
        line.metrics.responded(line.family, line.status, self.sent);
        tracing::info!(
            method = %line.method,
            route = %line.route,
            status = line.status,
            bytes = self.sent,
            complete,
            duration_ms = line.started.elapsed().as_secs_f64() * 1000.0,
            client_ip = %line.client,
            link = line.link.as_ref().map(Jti::short),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use http_body_util::BodyExt;

    use super::*;
    use crate::store::{ClaimOutcome, LinkState, NewLink};
    use crate::token::Jti;

    /// A store whose completion is slow and whose record is gone as soon as completion begins,
    /// as in Redis, where the completion script deletes the key.
    #[derive(Default)]
    struct SlowCompletion {
        completing: AtomicBool,
    }

    #[async_trait]
    impl TokenStore for SlowCompletion {
        async fn insert(&self, _: &NewLink<'_>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn peek(&self, _: &Jti) -> Result<LinkState, StoreError> {
            Ok(LinkState::InFlight)
        }
        async fn claim(&self, _: &Jti, _: &Lease) -> Result<ClaimOutcome, StoreError> {
            Ok(ClaimOutcome::Granted { attempt: 1 })
        }
        async fn renew(&self, _: &Jti, _: &Lease, _: Sent) -> Result<bool, StoreError> {
            Ok(!self.completing.load(Ordering::SeqCst))
        }
        async fn complete(&self, _: &Jti, _: &Lease, _: Sent) -> Result<bool, StoreError> {
            self.completing.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(true)
        }
        async fn release(&self, _: &Jti, _: &Lease, _: Sent, _: bool) -> Result<(), StoreError> {
            Ok(())
        }
        async fn rearm(&self, _: &Jti, _: &str, _: Duration) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn revoke(&self, _: &Jti) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn revoke_owner(&self, _: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_renewal_racing_the_completion_does_not_cut_the_last_chunk() {
        let chunks: Vec<std::io::Result<Bytes>> =
            (0..3u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
        let outcome = Arc::new(std::sync::Mutex::new(None));
        let seen = outcome.clone();
        let body = DownloadBody::new(
            Box::pin(futures_util::stream::iter(chunks)),
            3000,
            true,
            HeldClaim {
                store: Arc::new(SlowCompletion::default()),
                jti: Jti::from("jti"),
                lease: Lease::new(Duration::from_secs(10)),
                size: 3000,
                tasks: TaskTracker::new(),
            },
            &Watch::new(Duration::from_millis(5)),
            Duration::from_millis(5),
            Box::new(move |o| *seen.lock().unwrap() = Some(o)),
        );
        let bytes = body.collect().await.expect("the whole body").to_bytes();
        assert_eq!(bytes.len(), 3000);
        assert_eq!(bytes[2999], 2);
        assert_eq!(*outcome.lock().unwrap(), Some(Outcome::Completed));
    }

    /// A store that remembers every byte report it gets; with `unanswered`, a renewal is sent
    /// (and remembered) but never answered, as on a store that stopped answering.
    #[derive(Default)]
    struct Reports(std::sync::Mutex<Vec<(&'static str, Sent)>>, AtomicBool);

    impl Reports {
        fn of(&self, operation: &str) -> Vec<Sent> {
            let reports = self.0.lock().unwrap();
            reports
                .iter()
                .filter(|(op, _)| *op == operation)
                .map(|(_, sent)| *sent)
                .collect()
        }
    }

    #[async_trait]
    impl TokenStore for Reports {
        async fn insert(&self, _: &NewLink<'_>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn peek(&self, _: &Jti) -> Result<LinkState, StoreError> {
            Ok(LinkState::InFlight)
        }
        async fn claim(&self, _: &Jti, _: &Lease) -> Result<ClaimOutcome, StoreError> {
            Ok(ClaimOutcome::Granted { attempt: 1 })
        }
        async fn renew(&self, _: &Jti, _: &Lease, sent: Sent) -> Result<bool, StoreError> {
            self.0.lock().unwrap().push(("renew", sent));
            if self.1.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok(true)
        }
        async fn complete(&self, _: &Jti, _: &Lease, sent: Sent) -> Result<bool, StoreError> {
            self.0.lock().unwrap().push(("complete", sent));
            Ok(true)
        }
        async fn release(&self, _: &Jti, _: &Lease, sent: Sent, _: bool) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(("release", sent));
            Ok(())
        }
        async fn rearm(&self, _: &Jti, _: &str, _: Duration) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn revoke(&self, _: &Jti) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn revoke_owner(&self, _: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn reported_body(
        store: Arc<Reports>,
        chunks: ByteStream,
        len: u64,
        spends: bool,
    ) -> DownloadBody {
        DownloadBody::new(
            chunks,
            len,
            spends,
            HeldClaim {
                store,
                jti: Jti::from("jti"),
                lease: Lease::new(Duration::from_secs(10)),
                size: 3000,
                tasks: TaskTracker::new(),
            },
            &Watch::new(Duration::from_millis(5)),
            Duration::from_millis(5),
            Box::new(|_| {}),
        )
    }

    #[tokio::test]
    async fn renewals_and_the_release_report_the_bytes_sent_so_far() {
        let store = Arc::new(Reports::default());
        // Two chunks, then a source that stalls: the client has 2000 bytes when it gives up.
        let chunks: Vec<std::io::Result<Bytes>> =
            (0..2u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
        let chunks = futures_util::StreamExt::chain(
            futures_util::stream::iter(chunks),
            futures_util::stream::pending(),
        );
        let mut body = reported_body(store.clone(), Box::pin(chunks), 3000, true);
        for _ in 0..2 {
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap().len(), 1000);
        }
        let mut renewed = Vec::new();
        for _ in 0..200 {
            renewed = store.of("renew");
            if !renewed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(renewed.last(), Some(&Sent::new(2000, 3000)));
        drop(body);
        for _ in 0..200 {
            if !store.of("release").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(store.of("release"), [Sent::new(2000, 3000)]);
        assert!(store.of("complete").is_empty());
    }

    /// A download of 3000 bytes whose source gives 1000 and stalls, renewed every `every` on a
    /// watch that ticks as often, under a lease of `lease`; its first chunk already taken.
    async fn stalled(store: Arc<Reports>, every: Duration, lease: Duration) -> DownloadBody {
        let chunks = futures_util::StreamExt::chain(
            futures_util::stream::iter([Ok(Bytes::from(vec![7u8; 1000]))]),
            futures_util::stream::pending(),
        );
        let mut body = DownloadBody::new(
            Box::pin(chunks),
            3000,
            true,
            HeldClaim {
                store,
                jti: Jti::from("jti"),
                lease: Lease::new(lease),
                size: 3000,
                tasks: TaskTracker::new(),
            },
            &Watch::new(every),
            every,
            Box::new(|_| {}),
        );
        body.frame().await.unwrap().unwrap();
        body
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_is_renewed_every_interval_on_a_tick_as_long() {
        let store = Arc::new(Reports::default());
        let every = Duration::from_secs(1);
        let body = stalled(store.clone(), every, Duration::from_secs(10)).await;
        // The source stalls: renewals go on, one a tick, none twice in a tick.
        tokio::time::sleep(every * 5 + every / 2).await;
        assert_eq!(store.of("renew"), [Sent::new(1000, 3000); 5]);
        // Settled or dropped: no more.
        drop(body);
        tokio::time::sleep(every * 3).await;
        assert_eq!(store.of("renew").len(), 5);
        assert_eq!(store.of("release"), [Sent::new(1000, 3000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_download_whose_renewals_go_unanswered_stops_before_its_lease_lapses() {
        let store = Arc::new(Reports::default());
        store.1.store(true, Ordering::SeqCst);
        let every = Duration::from_secs(1);
        let lease = Duration::from_secs(10);
        let mut body = stalled(store.clone(), every, lease).await;
        let started = tokio::time::Instant::now();
        let error = match tokio::time::timeout(lease * 2, body.frame()).await {
            Ok(Some(Err(e))) => e,
            Ok(other) => panic!("the download went on: {other:?}"),
            Err(_) => panic!("the download outlived its lease"),
        };
        assert_eq!(
            error.to_string(),
            "the link was revoked during the download"
        );
        // The one renewal sent never answered; the download stopped at the first tick with less
        // than `RENEWAL_GAP` of the lease left, not after the lease had lapsed.
        let stopped = started.elapsed();
        let last_safe = lease - crate::app::RENEWAL_GAP;
        assert!(
            stopped >= last_safe && stopped <= last_safe + every,
            "stopped after {stopped:?}"
        );
        assert_eq!(store.of("renew").len(), 1, "one renewal at a time");
    }

    #[tokio::test]
    async fn the_settlement_reports_everything_the_body_sends() {
        let chunks = || {
            let chunks: Vec<std::io::Result<Bytes>> =
                (0..3u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
            Box::pin(futures_util::stream::iter(chunks))
        };
        let store = Arc::new(Reports::default());
        let body = reported_body(store.clone(), chunks(), 3000, true);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 3000);
        assert_eq!(store.of("complete"), [Sent::new(3000, 3000)]);

        // A range that stops short of the end: released with all of its bytes.
        let store = Arc::new(Reports::default());
        let body = reported_body(store.clone(), chunks(), 2500, false);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 2500);
        assert_eq!(store.of("release"), [Sent::new(2500, 3000)]);
    }
}
