//! The two systems under test behind one set of operations. Errors abort the benchmark:
//! a failing store has no meaningful numbers.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kite_store::{Backend, Config, SqliteBackend, UpdateOutcome};
use tokio::sync::mpsc;

use crate::fail;

/// A store the benchmark drives.
#[derive(Clone)]
pub(crate) enum Target {
    Kite(SqliteBackend),
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::Client>),
}

impl Target {
    pub(crate) fn kite(path: &Path) -> Self {
        match SqliteBackend::open(path, Config::default()) {
            Ok(store) => Target::Kite(store),
            Err(e) => fail(&format!("opening kite-store: {e}")),
        }
    }

    /// Creates `key` (fails the benchmark if it exists).
    pub(crate) async fn create(&self, key: &str, value: Bytes) {
        match self {
            Target::Kite(store) => {
                store
                    .create(key, value, 0)
                    .await
                    .unwrap_or_else(|e| fail(&format!("create: {e}")));
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(client) => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                let txn = Txn::new()
                    .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value.to_vec(), None)]);
                let response = client
                    .kv_client()
                    .txn(txn)
                    .await
                    .unwrap_or_else(|e| fail(&format!("create: {e}")));
                if !response.succeeded() {
                    fail(&format!("create: {key} exists"));
                }
            }
        }
    }

    /// The key's mod revision and value.
    pub(crate) async fn get(&self, key: &str) -> Option<(i64, Bytes)> {
        match self {
            Target::Kite(store) => {
                let (_, kv) = store
                    .get(key, 0)
                    .await
                    .unwrap_or_else(|e| fail(&format!("get: {e}")));
                kv.map(|kv| (kv.mod_revision, kv.value))
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(client) => {
                let response = client
                    .kv_client()
                    .get(key, None)
                    .await
                    .unwrap_or_else(|e| fail(&format!("get: {e}")));
                response
                    .kvs()
                    .first()
                    .map(|kv| (kv.mod_revision(), Bytes::copy_from_slice(kv.value())))
            }
        }
    }

    /// Writes `value` if the key's mod revision is `expected`: `Ok(new revision)`, or
    /// `Err(current mod revision)` on conflict.
    pub(crate) async fn compare_and_swap(
        &self,
        key: &str,
        value: Bytes,
        expected: i64,
    ) -> Result<i64, i64> {
        match self {
            Target::Kite(store) => {
                match store
                    .update(key, value, expected, 0)
                    .await
                    .unwrap_or_else(|e| fail(&format!("update: {e}")))
                {
                    UpdateOutcome::Updated { revision } => Ok(revision),
                    UpdateOutcome::Conflict { current, .. } => {
                        Err(current.map_or(0, |kv| kv.mod_revision))
                    }
                }
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(client) => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
                let txn = Txn::new()
                    .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
                    .and_then([TxnOp::put(key, value.to_vec(), None)])
                    .or_else([TxnOp::get(key, None)]);
                let response = client
                    .kv_client()
                    .txn(txn)
                    .await
                    .unwrap_or_else(|e| fail(&format!("update: {e}")));
                if response.succeeded() {
                    return Ok(response.header().map_or(0, |h| h.revision()));
                }
                let current = response.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
                    _ => None,
                });
                Err(current.unwrap_or(0))
            }
        }
    }

    /// Lists every key under `prefix`; returns how many there were.
    pub(crate) async fn list(&self, prefix: &str) -> usize {
        match self {
            Target::Kite(store) => {
                let page = store
                    .list(prefix, None, 0, 0)
                    .await
                    .unwrap_or_else(|e| fail(&format!("list: {e}")));
                page.kvs.len()
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(client) => {
                let options = etcd_client::GetOptions::new().with_prefix();
                let mut kv = client.kv_client().max_decoding_message_size(256 << 20);
                let response = kv
                    .get(prefix, Some(options))
                    .await
                    .unwrap_or_else(|e| fail(&format!("list: {e}")));
                response.kvs().len()
            }
        }
    }

    /// Starts watching `prefix` for new writes; each received event's value is an 8-byte
    /// send time (nanoseconds since `epoch`); the returned channel yields delivery latencies.
    /// Returns once the watch is established.
    pub(crate) async fn watch(
        &self,
        prefix: &str,
        epoch: Instant,
    ) -> mpsc::UnboundedReceiver<Duration> {
        let (tx, rx) = mpsc::unbounded_channel();
        let latency = move |value: &[u8]| {
            let sent = u64::from_le_bytes(
                value
                    .try_into()
                    .unwrap_or_else(|_| fail("watch: bad value")),
            );
            epoch.elapsed().saturating_sub(Duration::from_nanos(sent))
        };
        match self {
            Target::Kite(store) => {
                let from = store
                    .current_revision()
                    .await
                    .unwrap_or_else(|e| fail(&format!("watch: {e}")));
                let mut stream = store
                    .watch(prefix, from)
                    .await
                    .unwrap_or_else(|e| fail(&format!("watch: {e}")));
                tokio::spawn(async move {
                    while let Some(batch) = stream.recv().await {
                        for event in batch.unwrap_or_else(|e| fail(&format!("watch: {e}"))) {
                            if tx.send(latency(&event.kv.value)).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(client) => {
                let options = etcd_client::WatchOptions::new().with_prefix();
                let mut stream = client
                    .watch_client()
                    .watch(prefix, Some(options))
                    .await
                    .unwrap_or_else(|e| fail(&format!("watch: {e}")));
                // The first response confirms the watch was created.
                let created = stream
                    .message()
                    .await
                    .unwrap_or_else(|e| fail(&format!("watch: {e}")));
                if !created.is_some_and(|r| r.created()) {
                    fail("watch: not created");
                }
                tokio::spawn(async move {
                    while let Ok(Some(response)) = stream.message().await {
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            if tx.send(latency(kv.value())).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        }
        rx
    }
}
