//! A datastore wrapper that times every call for `etcd_request_duration_seconds`.

use super::Metrics;
use async_trait::async_trait;
use bytes::Bytes;
use kite_store::{
    Backend, DeleteOutcome, KeyValue, ListResult, Result, UpdateOutcome, WatchStream,
};
use std::sync::Arc;
use std::time::Instant;

/// `inner`, timed into `metrics`.
pub struct Metered {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        key: &str,
        call: impl Future<Output = T>,
    ) -> T {
        let started = Instant::now();
        let out = call.await;
        self.metrics.store_call(operation, key, started.elapsed());
        out
    }
}

#[async_trait]
impl Backend for Metered {
    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn compact_revision(&self) -> Result<i64> {
        self.inner.compact_revision().await
    }

    async fn create(&self, key: &str, value: Bytes, lease: i64) -> Result<i64> {
        self.timed("create", key, self.inner.create(key, value, lease))
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: i64,
        lease: i64,
    ) -> Result<UpdateOutcome> {
        self.timed(
            "update",
            key,
            self.inner.update(key, value, expected, lease),
        )
        .await
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<DeleteOutcome> {
        self.timed("delete", key, self.inner.delete(key, expected))
            .await
    }

    async fn get(&self, key: &str, revision: i64) -> Result<(i64, Option<KeyValue>)> {
        self.timed("get", key, self.inner.get(key, revision)).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        self.timed(
            "list",
            prefix,
            self.inner.list(prefix, start_after, limit, revision),
        )
        .await
    }

    async fn count(&self, prefix: &str, revision: i64) -> Result<(i64, i64)> {
        self.timed("count", prefix, self.inner.count(prefix, revision))
            .await
    }

    async fn latest_revision(&self, prefix: &str) -> Result<(i64, i64)> {
        self.timed("latest", prefix, self.inner.latest_revision(prefix))
            .await
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<WatchStream> {
        self.inner.watch(prefix, from_revision).await
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        self.inner.compact(revision).await
    }
}
