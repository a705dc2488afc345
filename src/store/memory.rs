//! The embedded token store: link records in a mutex-guarded map, expiring with their TTL.
//!
//! State lives only as long as the process: a restart forgets every link (the embedded mode also
//! makes a fresh signing key per start, so such links would not verify anyway). Time is
//! `tokio::time::Instant`, so tests drive expiry with a paused clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{ClaimOutcome, Lease, LinkState, NewLink, Sent, StoreError, TokenStore};
use crate::token::Jti;

/// How often expired records are swept out, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The embedded token store.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Usable or in-flight links, by `jti`.
    links: HashMap<String, Record>,
    /// Spent links, by `jti`, kept until they would have expired so a late click hears "used"
    /// rather than "revoked".
    spent: HashMap<String, Spent>,
    /// When expired entries were last removed.
    last_sweep: Instant,
}

#[derive(Debug)]
struct Record {
    expires: Instant,
    started: u32,
    attempts: u32,
    /// The holder and deadline of the current download, if one is streaming.
    lease: Option<(String, Instant)>,
    /// Whom the link was made for.
    owner: Option<String>,
    /// Usable again after a completed download (see [`TokenStore::rearm`]), and how long the
    /// first completion's spent record was to be kept.
    rearmed: Option<Instant>,
    /// The one network that may claim it, for a re-armed link.
    only: Option<String>,
    /// Bytes sent by the downloads that have ended (refunded ones excepted).
    delivered: u64,
    /// The running total last reported by the current (or last, unreleased) lease.
    lease_sent: u64,
    /// The document's size, as the downloads reported it; 0 until one did.
    size: u64,
}

#[derive(Debug)]
struct Spent {
    until: Instant,
    /// For a completed download: who completed it, and when.
    completed: Option<(String, Instant)>,
    /// Its second fetch is used up, or was revoked.
    rearmed: bool,
    /// Whom the link was made for.
    owner: Option<String>,
}

impl Record {
    fn live_lease(&self, now: Instant) -> Option<&str> {
        match &self.lease {
            Some((id, deadline)) if *deadline > now => Some(id),
            _ => None,
        }
    }

    fn holds(&self, lease: &Lease, now: Instant) -> bool {
        self.live_lease(now) == Some(lease.id.as_str())
    }

    /// Records a report of the current lease's running total.
    fn report(&mut self, sent: Sent) {
        self.lease_sent = self.lease_sent.max(sent.bytes);
        if sent.size > 0 {
            self.size = sent.size;
        }
    }

    /// Whether the bytes sent in all cover the document.
    fn covered(&self) -> bool {
        self.size > 0 && self.delivered.saturating_add(self.lease_sent) >= self.size
    }
}

impl Spent {
    /// Takes away a completed link's second fetch; `true` if it still had one.
    fn disarm(&mut self) -> bool {
        let armed = self.completed.is_some() && !self.rearmed;
        self.rearmed = true;
        armed
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                links: HashMap::new(),
                spent: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// How many links are usable or in flight (for tests and diagnostics).
    pub fn live_links(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .links
            .values()
            .filter(|r| r.expires > now)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave a record half-written (every update is a
        // plain field assignment), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// The live record for `jti`, dropping it if it has expired.
    fn record(&mut self, jti: &str, now: Instant) -> Option<&mut Record> {
        if self.links.get(jti).is_some_and(|r| r.expires <= now) {
            self.links.remove(jti);
        }
        self.links.get_mut(jti)
    }

    fn state(&mut self, jti: &str, now: Instant) -> LinkState {
        let spent = self.spent.get(jti).is_some_and(|s| s.until > now);
        match self.record(jti, now) {
            Some(r) if r.live_lease(now).is_some() => LinkState::InFlight,
            Some(r) if r.started >= r.attempts || r.covered() => LinkState::Used,
            Some(r) => LinkState::Ready { started: r.started },
            None if spent => LinkState::Used,
            None => LinkState::Revoked,
        }
    }

    /// Spends a link; `completed_by` names the network whose download completed it.
    fn spend(&mut self, jti: &str, completed_by: Option<(&str, Instant)>) {
        if let Some(record) = self.links.remove(jti) {
            let spent = Spent {
                until: record
                    .rearmed
                    .map_or(record.expires, |u| u.max(record.expires)),
                completed: completed_by
                    .filter(|(holder, _)| !holder.is_empty())
                    .map(|(holder, at)| (holder.to_owned(), at)),
                rearmed: record.rearmed.is_some(),
                owner: record.owner,
            };
            self.spent.insert(jti.to_owned(), spent);
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.links.retain(|_, r| r.expires > now);
        self.spent.retain(|_, s| s.until > now);
        self.last_sweep = now;
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert(&self, link: &NewLink<'_>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.sweep(now);
        inner.links.insert(
            link.jti.as_str().to_owned(),
            Record {
                expires: now + link.ttl,
                started: 0,
                attempts: link.attempts,
                lease: None,
                owner: link.owner.map(str::to_owned),
                rearmed: None,
                only: None,
                delivered: 0,
                lease_sent: 0,
                size: 0,
            },
        );
        Ok(())
    }

    async fn peek(&self, jti: &Jti) -> Result<LinkState, StoreError> {
        let jti = jti.as_str();
        Ok(self.lock().state(jti, Instant::now()))
    }

    async fn claim(&self, jti: &Jti, lease: &Lease) -> Result<ClaimOutcome, StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state(jti, now) {
            LinkState::Ready { .. } => {}
            other => return Ok(ClaimOutcome::Refused(other)),
        }
        let Some(record) = inner.record(jti, now) else {
            return Ok(ClaimOutcome::Refused(LinkState::Revoked));
        };
        if record
            .only
            .as_ref()
            .is_some_and(|only| *only != lease.holder)
        {
            return Ok(ClaimOutcome::Refused(LinkState::Used));
        }
        // What an expired lease last reported counts: its holder died after sending that much.
        record.delivered = record.delivered.saturating_add(record.lease_sent);
        record.lease_sent = 0;
        record.started += 1;
        let deadline = now + lease.ttl;
        record.lease = Some((lease.id.clone(), deadline));
        record.expires = record.expires.max(deadline);
        Ok(ClaimOutcome::Granted {
            attempt: record.started,
        })
    }

    async fn renew(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.record(jti, now) {
            Some(record) if record.holds(lease, now) => {
                record.report(sent);
                let deadline = now + lease.ttl;
                record.lease = Some((lease.id.clone(), deadline));
                record.expires = record.expires.max(deadline);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn complete(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.record(jti, now) {
            Some(record) if record.holds(lease, now) => {
                record.report(sent);
                // A second fetch only while the link has delivered no more than the document.
                let within = record.size == 0
                    || record.delivered.saturating_add(record.lease_sent) <= record.size;
                let holder = if lease.arms && within {
                    lease.holder.as_str()
                } else {
                    ""
                };
                inner.spend(jti, Some((holder, now)));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(
        &self,
        jti: &Jti,
        lease: &Lease,
        sent: Sent,
        refund: bool,
    ) -> Result<(), StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        let spent = match inner.record(jti, now) {
            Some(record) if record.holds(lease, now) => {
                record.lease = None;
                if refund {
                    record.started = record.started.saturating_sub(1);
                } else {
                    record.report(sent);
                    record.delivered = record.delivered.saturating_add(record.lease_sent);
                }
                record.lease_sent = 0;
                record.started >= record.attempts || record.rearmed.is_some() || record.covered()
            }
            _ => false,
        };
        if spent {
            inner.spend(jti, None);
        }
        Ok(())
    }

    async fn rearm(&self, jti: &Jti, holder: &str, window: Duration) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        if holder.is_empty() || inner.record(jti, now).is_some() {
            return Ok(false);
        }
        let Some(spent) = inner.spent.get_mut(jti) else {
            return Ok(false);
        };
        let eligible = !spent.rearmed
            && spent.until > now
            && spent
                .completed
                .as_ref()
                .is_some_and(|(by, at)| by == holder && now.duration_since(*at) < window);
        if !eligible {
            return Ok(false);
        }
        let expires = spent.completed.as_ref().map_or(now, |(_, at)| *at + window);
        let until = spent.until;
        let owner = spent.owner.clone();
        // Kept (marked) so that if the re-armed link expires unused, a click still hears "used".
        spent.rearmed = true;
        inner.links.insert(
            jti.to_owned(),
            Record {
                expires,
                started: 0,
                attempts: 1,
                lease: None,
                owner,
                rearmed: Some(until),
                only: Some(holder.to_owned()),
                // Its own budget: one more download, of at most the document.
                delivered: 0,
                lease_sent: 0,
                size: 0,
            },
        );
        Ok(true)
    }

    async fn revoke(&self, jti: &Jti) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let now = Instant::now();
        let mut inner = self.lock();
        let live = inner.record(jti, now).is_some();
        inner.links.remove(jti);
        let disarmed = inner.spent.get_mut(jti).is_some_and(Spent::disarm);
        Ok(live || disarmed)
    }

    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let before = inner.links.len();
        inner
            .links
            .retain(|_, r| r.expires <= now || r.owner.as_deref() != Some(owner));
        for spent in inner.spent.values_mut() {
            if spent.owner.as_deref() == Some(owner) {
                spent.disarm();
            }
        }
        Ok((before - inner.links.len()) as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);

    fn link(jti: &Jti) -> NewLink<'_> {
        NewLink {
            jti,
            doc: "resume",
            ttl: TTL,
            attempts: 3,
            owner: None,
        }
    }

    fn lease() -> Lease {
        Lease::new(Duration::from_secs(10))
    }

    #[tokio::test(start_paused = true)]
    async fn a_completed_download_spends_the_link() {
        let store = MemoryStore::new();
        store.insert(&link(&"a".into())).await.unwrap();
        assert_eq!(
            store.peek(&"a".into()).await.unwrap(),
            LinkState::Ready { started: 0 }
        );
        let l = lease();
        assert_eq!(
            store.claim(&"a".into(), &l).await.unwrap(),
            ClaimOutcome::Granted { attempt: 1 }
        );
        assert_eq!(store.peek(&"a".into()).await.unwrap(), LinkState::InFlight);
        assert_eq!(
            store.claim(&"a".into(), &lease()).await.unwrap(),
            ClaimOutcome::Refused(LinkState::InFlight)
        );
        assert!(
            store
                .complete(&"a".into(), &l, Sent::default())
                .await
                .unwrap()
        );
        assert_eq!(store.peek(&"a".into()).await.unwrap(), LinkState::Used);
        assert_eq!(
            store.claim(&"a".into(), &lease()).await.unwrap(),
            ClaimOutcome::Refused(LinkState::Used)
        );
        assert_eq!(store.live_links(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cut_off_downloads_count_until_the_attempts_run_out() {
        let store = MemoryStore::new();
        store.insert(&link(&"a".into())).await.unwrap();
        for attempt in 1..=3 {
            let l = lease();
            assert_eq!(
                store.claim(&"a".into(), &l).await.unwrap(),
                ClaimOutcome::Granted { attempt }
            );
            store
                .release(&"a".into(), &l, Sent::default(), false)
                .await
                .unwrap();
        }
        assert_eq!(store.peek(&"a".into()).await.unwrap(), LinkState::Used);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refund_does_not_count() {
        let store = MemoryStore::new();
        store.insert(&link(&"a".into())).await.unwrap();
        for _ in 0..5 {
            let l = lease();
            assert_eq!(
                store.claim(&"a".into(), &l).await.unwrap(),
                ClaimOutcome::Granted { attempt: 1 }
            );
            store
                .release(&"a".into(), &l, Sent::default(), true)
                .await
                .unwrap();
        }
        assert_eq!(
            store.peek(&"a".into()).await.unwrap(),
            LinkState::Ready { started: 0 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_holders_lease_expires() {
        let store = MemoryStore::new();
        store.insert(&link(&"a".into())).await.unwrap();
        let first = lease();
        store.claim(&"a".into(), &first).await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        let second = lease();
        assert_eq!(
            store.claim(&"a".into(), &second).await.unwrap(),
            ClaimOutcome::Granted { attempt: 2 }
        );
        assert!(
            !store
                .renew(&"a".into(), &first, Sent::default())
                .await
                .unwrap()
        );
        assert!(
            !store
                .complete(&"a".into(), &first, Sent::default())
                .await
                .unwrap()
        );
        assert!(
            store
                .renew(&"a".into(), &second, Sent::default())
                .await
                .unwrap()
        );
        assert!(
            store
                .complete(&"a".into(), &second, Sent::default())
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn links_expire_with_their_ttl_but_not_mid_download() {
        let store = MemoryStore::new();
        store.insert(&link(&"a".into())).await.unwrap();
        store.insert(&link(&"b".into())).await.unwrap();
        tokio::time::advance(TTL - Duration::from_secs(5)).await;
        let l = lease();
        store.claim(&"b".into(), &l).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(store.peek(&"a".into()).await.unwrap(), LinkState::Revoked);
        assert!(
            store.renew(&"b".into(), &l, Sent::default()).await.unwrap(),
            "the lease keeps b alive"
        );
        assert!(
            store
                .complete(&"b".into(), &l, Sent::default())
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_links_are_revoked() {
        let store = MemoryStore::new();
        assert_eq!(store.peek(&"x".into()).await.unwrap(), LinkState::Revoked);
        assert_eq!(
            store.claim(&"x".into(), &lease()).await.unwrap(),
            ClaimOutcome::Refused(LinkState::Revoked)
        );
    }

    #[tokio::test]
    async fn racing_claims_have_one_winner() {
        let store = std::sync::Arc::new(MemoryStore::new());
        store.insert(&link(&"a".into())).await.unwrap();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim(&"a".into(), &lease()).await.unwrap() })
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), ClaimOutcome::Granted { .. }) {
                granted += 1;
            }
        }
        assert_eq!(granted, 1);
    }
}
