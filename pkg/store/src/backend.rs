//! The datastore contract: what the apiserver needs from kine-on-SQLite, etcd or PostgreSQL.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::types::{DeleteOutcome, KeyValue, ListResult, UpdateOutcome};
use crate::watch::WatchStream;

/// A revisioned key-value store with watch.
///
/// Revisions are global and only grow: every successful write gets the next one. A read
/// asked at `revision` 0 is served at the newest revision; any other revision must lie
/// between the compact revision and the current one ([`Error::Compacted`],
/// [`Error::FutureRevision`] otherwise), and reading it returns the state exactly as it was
/// then.
///
/// [`Error::Compacted`]: crate::Error::Compacted
/// [`Error::FutureRevision`]: crate::Error::FutureRevision
#[async_trait]
pub trait Backend: Send + Sync {
    /// The revision of the newest write (0 for an empty store).
    async fn current_revision(&self) -> Result<i64>;

    /// The oldest revision that can still be read or watched from (0 if never compacted).
    async fn compact_revision(&self) -> Result<i64>;

    /// Creates `key`; fails with [`Error::KeyExists`](crate::Error::KeyExists) if it holds
    /// a live value. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes, lease: i64) -> Result<i64>;

    /// Replaces `key`'s value if its mod revision is `expected_mod_revision`.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        lease: i64,
    ) -> Result<UpdateOutcome>;

    /// Deletes `key`, only if its mod revision is `expected_mod_revision` when one is given.
    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<DeleteOutcome>;

    /// Reads `key` at `revision`; returns the revision the read was served at and the value.
    async fn get(&self, key: &str, revision: i64) -> Result<(i64, Option<KeyValue>)>;

    /// Lists live keys starting with `prefix` and sorting after `start_after`, in key order,
    /// at most `limit` of them (0 for no limit), at `revision`. To read the next page, pass
    /// the last key as `start_after` and the returned revision as `revision`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult>;

    /// Counts live keys starting with `prefix` at `revision`; returns the revision the
    /// count was served at and the count.
    async fn count(&self, prefix: &str, revision: i64) -> Result<(i64, i64)>;

    /// Streams every change to keys starting with `prefix` with a revision greater than
    /// `from_revision`: first the stored history, then live changes as they commit. Fails
    /// with [`Error::Compacted`](crate::Error::Compacted) if that history is gone.
    async fn watch(&self, prefix: &str, from_revision: i64) -> Result<WatchStream>;

    /// The current revision, and the revision of the newest write (create, update or
    /// delete) to any key under `prefix` still on record. A cache that has applied
    /// every event up to the second holds the prefix exactly as it is at the first.
    async fn latest_revision(&self, prefix: &str) -> Result<(i64, i64)> {
        let _ = prefix;
        let current = self.current_revision().await?;
        Ok((current, current))
    }

    /// Forgets history older than `revision`: reads and watches below it fail afterwards.
    /// Returns the new compact revision.
    async fn compact(&self, revision: i64) -> Result<i64>;
}
