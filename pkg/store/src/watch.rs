//! Watch: the in-process fan-out of committed events, and the per-watcher task that first
//! replays history from the log, then forwards live events.
//!
//! The writer thread calls [`Hub::publish`] right after each commit. Publishing never
//! blocks: each watcher has a bounded queue, and a watcher whose queue is full is dropped
//! and its stream ends with [`Error::WatchLagged`], telling the client to relist (as etcd
//! cancels a watcher it cannot catch up).
//!
//! No event is lost or repeated between replay and live: the watcher subscribes *before*
//! its last history read, so every commit that read did not see is in its queue, and queued
//! events at or below the last replayed revision are skipped.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::reader::ReaderPool;
use crate::types::Event;

/// The events of one commit, shared by every watcher that receives them.
pub(crate) type Batch = Arc<[Event]>;

/// Rows read per history query while replaying.
const REPLAY_CHUNK: usize = 1000;
/// Batches waiting between a watcher's task and its consumer.
const OUT_CAPACITY: usize = 16;

/// A stream of event batches, in revision order, from [`Backend::watch`].
///
/// Each item is one or more events (a commit, or a chunk of replayed history). An `Err`
/// item ends the stream: [`Error::WatchLagged`] if the consumer fell too far behind,
/// [`Error::Compacted`] if history was compacted during replay. The stream also ends
/// (`None`) when the store is closed. Dropping it cancels the watch.
///
/// [`Backend::watch`]: crate::Backend::watch
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<Vec<Event>>>,
}

impl WatchStream {
    /// Wraps a channel fed by a backend's watch task; for other backends to build streams.
    pub fn new(rx: mpsc::Receiver<Result<Vec<Event>>>) -> Self {
        WatchStream { rx }
    }

    /// The next batch, or `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<Result<Vec<Event>>> {
        self.rx.recv().await
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<Vec<Event>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Registered watchers, fed by the writer thread.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
}

struct Subscriber {
    prefix: String,
    tx: mpsc::Sender<Batch>,
    lagged: Arc<AtomicBool>,
}

/// A watcher's end of the hub.
pub(crate) struct Subscription {
    rx: mpsc::Receiver<Batch>,
    lagged: Arc<AtomicBool>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a watcher for keys under `prefix` with room for `capacity` commits.
    pub(crate) fn subscribe(&self, prefix: &str, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().push(Subscriber {
            prefix: prefix.to_owned(),
            tx,
            lagged: Arc::clone(&lagged),
        });
        Subscription { rx, lagged }
    }

    /// Number of registered watchers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Hands a commit's events to every watcher with a matching key; never blocks.
    pub(crate) fn publish(&self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        self.lock().retain(|sub| {
            if !batch
                .iter()
                .any(|event| event.kv.key.starts_with(&sub.prefix))
            {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(Arc::clone(batch)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(prefix = %sub.prefix, "cancelling a watcher that fell behind");
                    sub.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// Starts a watch: subscribes, reads the first chunk of history (so a compacted start
/// fails here rather than on the stream), then leaves the rest to a task.
pub(crate) async fn start(
    hub: &Hub,
    readers: &Arc<ReaderPool>,
    prefix: &str,
    from_revision: i64,
    capacity: usize,
) -> Result<WatchStream> {
    let subscription = hub.subscribe(prefix, capacity);
    let first = read_history(readers, prefix, from_revision).await?;
    let (tx, rx) = mpsc::channel(OUT_CAPACITY);
    let watcher = Watcher {
        readers: Arc::clone(readers),
        prefix: prefix.to_owned(),
        last: from_revision,
        subscription,
        tx,
    };
    tokio::spawn(watcher.run(first));
    Ok(WatchStream::new(rx))
}

/// Reads up to [`REPLAY_CHUNK`] events after `after`, and the revision of that read.
async fn read_history(
    readers: &Arc<ReaderPool>,
    prefix: &str,
    after: i64,
) -> Result<(Vec<Event>, i64)> {
    let prefix = prefix.to_owned();
    readers
        .read(move |snapshot| {
            Ok((
                snapshot.history(&prefix, after, REPLAY_CHUNK)?,
                snapshot.current,
            ))
        })
        .await
}

struct Watcher {
    readers: Arc<ReaderPool>,
    prefix: String,
    /// Revision of the newest event delivered (or known to be skippable).
    last: i64,
    subscription: Subscription,
    tx: mpsc::Sender<Result<Vec<Event>>>,
}

impl Watcher {
    async fn run(mut self, first: (Vec<Event>, i64)) {
        if self.replay(first).await.is_some() {
            self.forward_live().await;
        }
    }

    /// Sends stored history until a read comes back short; `None` if the watch ended.
    async fn replay(&mut self, (mut events, mut read_at): (Vec<Event>, i64)) -> Option<()> {
        loop {
            let complete = events.len() < REPLAY_CHUNK;
            if let Some(last) = events.last() {
                self.last = last.revision();
                self.tx.send(Ok(events)).await.ok()?;
            }
            if complete {
                // Everything up to `read_at` matching the prefix has been sent.
                self.last = self.last.max(read_at);
                return Some(());
            }
            match read_history(&self.readers, &self.prefix, self.last).await {
                Ok((next, at)) => (events, read_at) = (next, at),
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return None;
                }
            }
        }
    }

    async fn forward_live(mut self) {
        loop {
            let batch = tokio::select! {
                batch = self.subscription.rx.recv() => batch,
                () = self.tx.closed() => return,
            };
            let Some(batch) = batch else {
                if self.subscription.lagged.load(Ordering::Acquire) {
                    let _ = self
                        .tx
                        .send(Err(Error::WatchLagged {
                            prefix: self.prefix,
                        }))
                        .await;
                }
                return;
            };
            let events: Vec<Event> = batch
                .iter()
                .filter(|e| e.revision() > self.last && e.kv.key.starts_with(&self.prefix))
                .cloned()
                .collect();
            if let Some(last) = events.last() {
                self.last = last.revision();
                if self.tx.send(Ok(events)).await.is_err() {
                    return;
                }
            }
        }
    }
}
