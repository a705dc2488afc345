//! Answers that take as long whether or not a mail was sent: the link request's timing.
//!
//! A link request for an address (or domain) over its budget answers the same `202` as one that
//! is mailed, but the mailed one does work the other skips: minting in the token store, asking
//! the object store for the size, queueing or sending the mail. Answered at once, the skipped
//! work would show in the response time, and anyone could tell which addresses get mail.
//!
//! [`Pacing`] keeps the durations of the last [`SAMPLES`] mailed requests of this process (from
//! the first budget check to the end of everything the request does: the mail handed over and the
//! owner's request log written) and makes an unmailed request wait, from its own first budget
//! check and after its own request log write, until one of them drawn at random has passed. The
//! request's [`Timing`] carries its start to [`Pacing::settle`], which its handler calls last. The unmailed answers then follow the
//! mailed ones' distribution, whatever makes them slow (Redis, the object store, direct SMTP),
//! and the mailed path itself waits for nothing. Before the process has mailed anything there is
//! nothing to copy: an unmailed request then makes the mailed path's round trips itself, without
//! their effects ([`crate::link`]), since with budgets shared through Redis a fresh replica
//! may meet addresses other replicas spent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many recent mailed requests are kept: enough to follow their spread, few enough to follow
/// a change (a slower SMTP server) within minutes.
pub const SAMPLES: usize = 128;

/// How far ahead of its deadline a wait stops sleeping and yields instead: tokio's timer fires on
/// millisecond ticks at or after a deadline, which alone would add about a millisecond to every
/// copied duration, as much as the mailed path takes on a fast store.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// A link request past the service-wide mail ceiling: when its budget checks began, and whether
/// it mailed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    started: Instant,
    mailed: bool,
}

impl Timing {
    /// A request that mailed a link, its budget checks begun at `started`.
    pub fn mailed(started: Instant) -> Self {
        Self {
            started,
            mailed: true,
        }
    }

    /// A request over a budget, answered alike without a mail.
    pub fn unmailed(started: Instant) -> Self {
        Self {
            started,
            mailed: false,
        }
    }
}

/// The recent durations of the mailed path.
#[derive(Debug, Default)]
pub struct Pacing {
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Up to [`SAMPLES`] durations, oldest overwritten first.
    durations: Vec<Duration>,
    next: usize,
}

impl Pacing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends a request's timed part, once it has done everything but answer: a mailed request's
    /// duration is remembered; an unmailed one waits until a drawn mailed duration has passed.
    pub async fn settle(&self, timing: Timing) {
        if timing.mailed {
            self.record(timing.started.elapsed());
        } else {
            self.wait_like_mailed(timing.started).await;
        }
    }

    /// Remembers how long one mailed request took.
    pub fn record(&self, took: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.durations.len() < SAMPLES {
            recent.durations.push(took);
        } else {
            let at = recent.next;
            recent.durations[at] = took;
        }
        recent.next = (recent.next + 1) % SAMPLES;
    }

    /// One of the recent mailed durations, drawn uniformly; `None` before the first.
    pub fn draw(&self) -> Option<Duration> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let len = u64::try_from(recent.durations.len())
            .ok()
            .filter(|&n| n > 0)?;
        let index = usize::try_from(random() % len).ok()?;
        recent.durations.get(index).copied()
    }

    /// Waits until a drawn mailed duration has passed since `started`: asleep until shortly
    /// before, then yielding to other tasks until the moment passes, so the wait ends within
    /// microseconds of it rather than on the timer's next tick. Every request that waits here
    /// first passed the service-wide mail ceiling, which bounds the yielding.
    pub async fn wait_like_mailed(&self, started: Instant) {
        let Some(took) = self.draw() else {
            return;
        };
        let deadline = started + took;
        if let Some(wake) = deadline.checked_sub(TIMER_SLACK) {
            tokio::time::sleep_until(wake.into()).await;
        }
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }
}

/// A random number from the OS; the clock's nanoseconds should the OS fail (a draw need not be
/// secret, only not chosen by the client).
fn random() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_only_recent_durations() {
        let pacing = Pacing::new();
        assert_eq!(pacing.draw(), None);
        pacing.record(Duration::from_millis(7));
        assert_eq!(pacing.draw(), Some(Duration::from_millis(7)));
        // The oldest are overwritten: after SAMPLES more, 7 ms is gone.
        for i in 0..SAMPLES {
            pacing.record(Duration::from_millis(100 + i as u64));
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let took = pacing.draw().unwrap();
            assert!(took >= Duration::from_millis(100), "{took:?}");
            assert!(took < Duration::from_millis(100 + SAMPLES as u64));
            seen.insert(took);
        }
        assert!(seen.len() > SAMPLES / 2, "draws spread over the samples");
    }

    #[tokio::test]
    async fn waits_from_the_start_it_is_given() {
        let pacing = Pacing::new();
        pacing.record(Duration::from_millis(120));
        let started = Instant::now();
        pacing.wait_like_mailed(started).await;
        assert!(started.elapsed() >= Duration::from_millis(120));
    }
}
