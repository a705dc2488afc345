//! A [`TokenStore`] decorator that times every operation and counts failures, so operators see
//! the store's latency and outages (each failure is a request that failed closed) in metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use std::time::Duration;

use async_trait::async_trait;

use super::{ClaimOutcome, Lease, LinkState, NewLink, Sent, StoreError, TokenStore};
use crate::metrics::Metrics;
use crate::token::Jti;

/// Wraps a store with metrics.
pub struct ObservedStore {
    inner: Arc<dyn TokenStore>,
    metrics: Arc<Metrics>,
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn TokenStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .store_operation(operation, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl TokenStore for ObservedStore {
    async fn insert(&self, link: &NewLink<'_>) -> Result<(), StoreError> {
        self.timed("insert", self.inner.insert(link)).await
    }

    async fn peek(&self, jti: &Jti) -> Result<LinkState, StoreError> {
        self.timed("peek", self.inner.peek(jti)).await
    }

    async fn claim(&self, jti: &Jti, lease: &Lease) -> Result<ClaimOutcome, StoreError> {
        self.timed("claim", self.inner.claim(jti, lease)).await
    }

    async fn renew(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        self.timed("renew", self.inner.renew(jti, lease, sent))
            .await
    }

    async fn complete(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        self.timed("complete", self.inner.complete(jti, lease, sent))
            .await
    }

    async fn release(
        &self,
        jti: &Jti,
        lease: &Lease,
        sent: Sent,
        refund: bool,
    ) -> Result<(), StoreError> {
        self.timed("release", self.inner.release(jti, lease, sent, refund))
            .await
    }

    async fn rearm(&self, jti: &Jti, holder: &str, window: Duration) -> Result<bool, StoreError> {
        self.timed("rearm", self.inner.rearm(jti, holder, window))
            .await
    }

    async fn revoke(&self, jti: &Jti) -> Result<bool, StoreError> {
        self.timed("revoke", self.inner.revoke(jti)).await
    }

    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError> {
        self.timed("revoke_owner", self.inner.revoke_owner(owner))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }
}
