//! An [`ObjectSource`] decorator that measures how long the source takes to deliver the first
//! byte of an object (for S3: the request, the response headers and the first body chunk).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{Object, ObjectError, ObjectMeta, ObjectSource};
use crate::metrics::Metrics;
use crate::range::RangeRequest;

/// Wraps a source with metrics.
pub struct ObservedObjects {
    inner: Arc<dyn ObjectSource>,
    metrics: Arc<Metrics>,
}

impl ObservedObjects {
    pub fn new(inner: Arc<dyn ObjectSource>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl ObjectSource for ObservedObjects {
    async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
        self.inner.head(key).await
    }

    async fn open(&self, key: &str, range: Option<&RangeRequest>) -> Result<Object, ObjectError> {
        let started = Instant::now();
        let mut object = self.inner.open(key, range).await?;
        let metrics = self.metrics.clone();
        let mut first = true;
        object.body = object
            .body
            .inspect(move |_| {
                if std::mem::take(&mut first) {
                    metrics
                        .object_first_byte
                        .observe(started.elapsed().as_secs_f64());
                }
            })
            .boxed();
        Ok(object)
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        self.inner.ping().await
    }
}
