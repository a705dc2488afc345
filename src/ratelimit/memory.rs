//! The embedded rate limiter: GCRA state per key in a mutex-guarded map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Decision, Key, LimitError, RateLimiter, gcra};
use crate::units::Rate;

/// How often idle keys are swept out, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The embedded rate limiter.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// The clock's zero: arrival times are microseconds since it.
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Theoretical arrival time per key, in microseconds since `epoch`.
    tats: HashMap<Key, u64>,
    last_sweep: u64,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, key: &Key, rate: Rate) -> Result<Decision, LimitError> {
        let now = self.now();
        // Consistent even if poisoned: each update is a single insert.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_sub(inner.last_sweep) > SWEEP_EVERY.as_micros() as u64 {
            // A key whose arrival time has passed is the same as a key never seen.
            inner.tats.retain(|_, tat| *tat > now);
            inner.last_sweep = now;
        }
        let (decision, tat) = gcra(inner.tats.get(key).copied(), now, rate);
        if let Some(tat) = tat {
            inner.tats.insert(key.clone(), tat);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Scope;
    use crate::units::parse_rate;

    #[tokio::test(start_paused = true)]
    async fn keys_are_limited_independently_and_recover() {
        let limiter = MemoryLimiter::new();
        let rate = parse_rate("2/s").unwrap();
        let a = Key::ip(Scope::RequestPerIp, "192.0.2.1".parse().unwrap());
        let b = Key::ip(Scope::RequestPerIp, "192.0.2.2".parse().unwrap());
        assert_eq!(limiter.check(&a, rate).await.unwrap(), Decision::Allowed);
        assert_eq!(limiter.check(&a, rate).await.unwrap(), Decision::Allowed);
        assert_eq!(
            limiter.check(&a, rate).await.unwrap(),
            Decision::Limited {
                retry_after: Duration::from_millis(500)
            }
        );
        assert_eq!(limiter.check(&b, rate).await.unwrap(), Decision::Allowed);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(limiter.check(&a, rate).await.unwrap(), Decision::Allowed);
    }
}
