//! The one task that looks after every download while it streams. Once a tick it runs each
//! download's checks: the renewal of its claim when one is due ([`super::body`]) and its minimum
//! rate once per window ([`super::pace`]).
//!
//! A download costs the runtime no task and no timer of its own: adding its checks and removing
//! them is a lock and a map entry each. A task per check cost a spawn, a timer, and an abort,
//! and, on a runtime with idle threads (one download at a time), a wake of another thread for
//! each.
//!
//! Checks run under the registry's lock, so each must be quick: a few comparisons, or a spawn for
//! what has to wait (a renewal's round trip to the store). A check is never run after its
//! [`Watching`] is dropped. A check that panics is dropped (and logged) without taking the others
//! with it, and a ticking task that ended (its runtime shut down) is started again by the next
//! check added.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// What a check asks for after it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run it again next tick.
    Again,
    /// It is over: remove it.
    Done,
}

type Check = Box<dyn FnMut(Instant) -> Next + Send>;

/// The checks of the downloads streaming now, run once per tick by one task.
#[derive(Clone)]
pub struct Watch {
    shared: Arc<Shared>,
}

struct Shared {
    tick: Duration,
    checks: Mutex<Checks>,
    /// Whether the ticking task runs (started with the first check, on the runtime).
    started: AtomicBool,
}

#[derive(Default)]
struct Checks {
    next_id: u64,
    by_id: HashMap<u64, Check>,
}

/// One download's check, removed when this is dropped.
pub struct Watching {
    shared: Arc<Shared>,
    id: u64,
}

impl Watch {
    /// Checks run every `tick`.
    pub fn new(tick: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                tick,
                checks: Mutex::default(),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// How often checks run: a check that is due runs at most this late.
    pub fn tick(&self) -> Duration {
        self.shared.tick
    }

    /// Runs `check` every tick, from one tick from now, until it answers [`Next::Done`] or the
    /// returned [`Watching`] is dropped. Must be called on the runtime.
    pub fn add(&self, check: impl FnMut(Instant) -> Next + Send + 'static) -> Watching {
        if !self.shared.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(ticks(Arc::downgrade(&self.shared)));
        }
        let mut checks = self.shared.lock();
        let id = checks.next_id;
        checks.next_id += 1;
        checks.by_id.insert(id, Box::new(check));
        Watching {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// How many checks are registered.
    #[cfg(test)]
    fn checks(&self) -> usize {
        self.shared.lock().by_id.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Checks> {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, now: Instant) {
        self.lock().by_id.retain(
            |_, check| match catch_unwind(AssertUnwindSafe(|| check(now))) {
                Ok(next) => next == Next::Again,
                Err(_) => {
                    tracing::error!("a download's check panicked: it is dropped");
                    false
                }
            },
        );
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Taken out under the lock, dropped after it: what a check holds may take time to drop.
        let check = self.shared.lock().by_id.remove(&self.id);
        drop(check);
    }
}

/// Runs every check once per tick, for as long as anything holds the [`Watch`] or one of its
/// [`Watching`]s.
async fn ticks(shared: Weak<Shared>) {
    /// Lets the next check added start ticking again, however this task ends.
    struct Stopped(Weak<Shared>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(shared) = self.0.upgrade() {
                shared.started.store(false, Ordering::Release);
            }
        }
    }
    let _stopped = Stopped(shared.clone());
    let Some(tick) = shared.upgrade().map(|s| s.tick) else {
        return;
    };
    let mut ticks = tokio::time::interval_at(Instant::now() + tick, tick);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.run(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    /// A check that counts its runs, done after `runs`.
    fn counting(runs: usize) -> (Arc<AtomicUsize>, impl FnMut(Instant) -> Next + Send) {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        let check = move |_| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= runs { Next::Done } else { Next::Again }
        };
        (count, check)
    }

    #[tokio::test(start_paused = true)]
    async fn checks_run_once_a_tick_until_they_are_done() {
        let watch = Watch::new(TICK);
        let (count, check) = counting(3);
        let _watching = watch.add(check);
        tokio::time::sleep(TICK / 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 0, "not before the first tick");
        tokio::time::sleep(TICK).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::sleep(TICK * 5).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "not after it was done");
        assert_eq!(watch.checks(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_watching_is_never_run_again() {
        let watch = Watch::new(TICK);
        let (count, check) = counting(usize::MAX);
        let watching = watch.add(check);
        let (other, check) = counting(usize::MAX);
        let _other = watch.add(check);
        tokio::time::sleep(TICK * 2 + TICK / 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
        drop(watching);
        assert_eq!(watch.checks(), 1);
        tokio::time::sleep(TICK * 3).await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
        assert_eq!(other.load(Ordering::SeqCst), 5, "the others go on");
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticking_ends_with_the_last_holder() {
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let watch = Watch::new(TICK);
        let (count, check) = counting(usize::MAX);
        let watching = watch.add(check);
        let _another = watch.add(|_| Next::Again);
        assert_eq!(tasks(), before + 1, "one task for all checks");
        drop(watch);
        tokio::time::sleep(TICK * 2 + TICK / 2).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "a download outlives the server's state"
        );
        drop((watching, _another));
        tokio::time::sleep(TICK * 2).await;
        assert_eq!(tasks(), before, "the ticking task ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_panics_is_dropped_and_the_others_go_on() {
        let watch = Watch::new(TICK);
        let _panics = watch.add(|_| panic!("a check's bug"));
        let (count, check) = counting(usize::MAX);
        let _counts = watch.add(check);
        tokio::time::sleep(TICK * 3 + TICK / 2).await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(watch.checks(), 1);
    }

    #[test]
    fn the_ticking_starts_again_on_another_runtime() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let watch = Watch::new(TICK);
        let first = runtime();
        let (count, check) = counting(usize::MAX);
        let _watching = first.block_on(async {
            let watching = watch.add(check);
            tokio::time::sleep(TICK + TICK / 2).await;
            watching
        });
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // The runtime that ran the ticking task shuts down; the next check added starts it on
        // this one.
        drop(first);
        let second = runtime();
        let (again, check) = counting(usize::MAX);
        second.block_on(async {
            let _watching = watch.add(check);
            tokio::time::sleep(TICK * 2 + TICK / 2).await;
        });
        assert_eq!(again.load(Ordering::SeqCst), 2);
        assert_eq!(count.load(Ordering::SeqCst), 3, "the first check too");
    }
}
