//! One in-memory cache per resource, fed by a single store watch.
//!
//! Each cache holds the current objects (for lists at `resourceVersion=0`)
//! and a window of recent events (for watches that resume from a
//! resourceVersion). Watchers subscribe to a broadcast of events already
//! serialised once, so N watchers cost one store watch and one encoding per
//! event. A watcher that cannot keep up is ended; its client re-watches.

use crate::objects;
use bytes::Bytes;
use kite_api::selector::FieldSet;
use kite_store::{Backend, EventKind};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events kept for watches that resume from an older resourceVersion.
pub const HISTORY: usize = 10_000;
/// Events buffered per watcher before it is considered too slow.
const LIVE_BUFFER: usize = 4_096;

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared.
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted.
    Deleted,
}

impl EventType {
    /// The `type` field of the watch event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// An object as the cache holds it: serialised once (with its resourceVersion),
/// plus the few fields that list and watch filters read. Memory per object is
/// about its JSON size; the parsed form is rebuilt on demand.
#[derive(Debug)]
pub struct CachedObject {
    /// The store key.
    pub key: String,
    /// The object serialised as JSON, resourceVersion included.
    pub json: Bytes,
    /// Its mod revision.
    pub revision: i64,
    namespace: String,
    name: String,
    labels: Map<String, Value>,
    fields: FieldSet,
}

impl CachedObject {
    fn new(key: String, value: &Value, revision: i64, kind: &(String, String)) -> Self {
        let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        Self {
            key,
            json,
            revision,
            namespace: objects::namespace(value).to_string(),
            name: objects::name(value).to_string(),
            labels: objects::labels(value),
            fields: kite_api::selector::field_set(&kind.0, &kind.1, value),
        }
    }

    /// The object, parsed.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object's labels.
    pub fn labels(&self) -> &Map<String, Value> {
        &self.labels
    }

    /// The object's selectable fields (`metadata.name`, `spec.nodeName`, ...).
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }
}

/// One change, as every watcher of the resource receives it.
#[derive(Clone, Debug)]
pub struct CachedEvent {
    /// What happened.
    pub kind: EventType,
    /// The revision of the change.
    pub revision: i64,
    /// The object after the change (for deletes: its last state at the delete revision).
    pub object: Arc<CachedObject>,
    /// The object before the change, for selector transitions.
    pub prev: Option<Arc<CachedObject>>,
}

#[derive(Debug, Default)]
struct State {
    /// Newest revision applied.
    revision: i64,
    /// Watches may resume from any revision >= this one.
    oldest: i64,
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<CachedEvent>,
    ready: bool,
}

/// The cache of one resource.
#[derive(Debug)]
pub struct WatchCache {
    prefix: String,
    /// Group and kind of the objects, for their selectable fields.
    kind: (String, String),
    state: RwLock<State>,
    live: broadcast::Sender<CachedEvent>,
    ready: tokio::sync::watch::Sender<bool>,
    /// The newest revision applied, for reads waiting to be consistent.
    progress: tokio::sync::watch::Sender<i64>,
}

/// What a new watcher starts from.
pub enum Start {
    /// The current objects as ADDED events, then live events.
    Snapshot(Vec<Arc<CachedObject>>, i64),
    /// Stored events after the requested revision, then live events.
    History(Vec<CachedEvent>),
}

/// Why a watch cannot start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    /// The requested revision is older than the cache's window.
    TooOld {
        /// The revision asked for.
        requested: i64,
        /// The oldest revision the cache can resume from.
        oldest: i64,
    },
}

impl WatchCache {
    /// Starts a cache for the keys under `prefix`, filling it from `store` in the background.
    pub fn start(store: Arc<dyn Backend>, prefix: String, group: &str, kind: &str) -> Arc<Self> {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let (ready, _) = tokio::sync::watch::channel(false);
        let (progress, _) = tokio::sync::watch::channel(0);
        let cache = Arc::new(Self {
            prefix,
            kind: (group.to_string(), kind.to_string()),
            state: RwLock::new(State::default()),
            live,
            ready,
            progress,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                match cache.fill_and_follow(&*store).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(prefix = %cache.prefix, %error, "watch cache lost its store watch; reloading");
                        drop(cache);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        cache
    }

    /// Lists everything, then applies store events until the store ends or fails.
    async fn fill_and_follow(
        self: &Arc<Self>,
        store: &dyn Backend,
    ) -> Result<(), kite_store::Error> {
        let revision = store.current_revision().await?;
        let mut objects = BTreeMap::new();
        let mut start_after: Option<String> = None;
        loop {
            let page = store
                .list(&self.prefix, start_after.as_deref(), 1000, revision)
                .await?;
            for kv in &page.kvs {
                match objects::decode(&kv.value, kv.mod_revision) {
                    Ok(value) => {
                        objects.insert(
                            kv.key.clone(),
                            Arc::new(CachedObject::new(
                                kv.key.clone(),
                                &value,
                                kv.mod_revision,
                                &self.kind,
                            )),
                        );
                    }
                    Err(error) => {
                        tracing::error!(key = %kv.key, %error, "undecodable object in the store; skipped")
                    }
                }
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more || start_after.is_none() {
                break;
            }
        }
        let mut watch = store.watch(&self.prefix, revision).await?;
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            // A reload starts a new window: older resumes must relist.
            state.objects = objects;
            state.revision = revision;
            state.oldest = revision;
            state.history.clear();
            state.ready = true;
        }
        self.progress.send_replace(revision);
        self.ready.send_replace(true);
        while let Some(batch) = watch.recv().await {
            for event in batch? {
                self.apply(event);
            }
        }
        Ok(())
    }

    fn apply(&self, event: kite_store::Event) {
        let revision = event.kv.mod_revision;
        let key = event.kv.key.clone();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let prev = state.objects.get(&key).cloned();
        let cached = match event.kind {
            EventKind::Put => {
                let value = match objects::decode(&event.kv.value, revision) {
                    Ok(value) => value,
                    Err(error) => {
                        tracing::error!(%key, %error, "undecodable object in the store; skipped");
                        return;
                    }
                };
                let object = Arc::new(CachedObject::new(key.clone(), &value, revision, &self.kind));
                state.objects.insert(key, object.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                CachedEvent {
                    kind,
                    revision,
                    object,
                    prev,
                }
            }
            EventKind::Delete => {
                state.objects.remove(&key);
                // The deleted object is reported in its last state, at the delete revision.
                let last = prev.as_ref().map(|p| p.value()).or_else(|| {
                    event
                        .prev_kv
                        .as_ref()
                        .and_then(|kv| objects::decode(&kv.value, revision).ok())
                });
                let Some(mut value) = last else { return };
                objects::set_resource_version(&mut value, revision);
                let object = Arc::new(CachedObject::new(key, &value, revision, &self.kind));
                CachedEvent {
                    kind: EventType::Deleted,
                    revision,
                    object,
                    prev,
                }
            }
        };
        state.revision = revision;
        state.history.push_back(cached.clone());
        if state.history.len() > HISTORY
            && let Some(dropped) = state.history.pop_front()
        {
            state.oldest = dropped.revision;
        }
        // Sent under the lock so a watcher subscribing under the read lock sees no gap.
        let _ = self.live.send(cached);
        self.progress.send_replace(revision);
    }

    /// Drops the events at or below the store's compact revision: the store
    /// can no longer replay them, so a watch resuming from there gets the same
    /// 410 Expired from the cache as from the store, and the memory is freed.
    pub fn forget_compacted(&self, compact_revision: i64) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if compact_revision <= state.oldest {
            return;
        }
        while state
            .history
            .front()
            .is_some_and(|e| e.revision <= compact_revision)
        {
            state.history.pop_front();
        }
        state.oldest = compact_revision.min(state.revision);
    }

    /// Waits until the initial fill is done.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Waits until the cache has applied `revision` (true), or `limit` passes (false).
    pub async fn wait_for_revision(&self, revision: i64, limit: Duration) -> bool {
        let mut progress = self.progress.subscribe();
        matches!(
            tokio::time::timeout(limit, progress.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> i64 {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revision
    }

    /// The object at `key` as the cache last saw it (none before the first
    /// load): a hint that may lag the store, for writes that compare and swap.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if !state.ready {
            return None;
        }
        state.objects.get(key).cloned()
    }

    /// The current objects whose key starts with `prefix`, in key order, and the cache revision.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, i64) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let objects = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (objects, state.revision)
    }

    /// Registers a watcher from `from_revision` (0: a snapshot of the current objects).
    pub fn subscribe(
        &self,
        from_revision: i64,
    ) -> Result<(Start, broadcast::Receiver<CachedEvent>), StartError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let receiver = self.live.subscribe();
        if from_revision == 0 {
            let objects = state.objects.values().cloned().collect();
            return Ok((Start::Snapshot(objects, state.revision), receiver));
        }
        if from_revision < state.oldest {
            return Err(StartError::TooOld {
                requested: from_revision,
                oldest: state.oldest,
            });
        }
        let events = state
            .history
            .iter()
            .filter(|e| e.revision > from_revision)
            .cloned()
            .collect();
        Ok((Start::History(events), receiver))
    }

    /// Number of cached objects (for metrics).
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .objects
            .len()
    }

    /// Whether the cache holds no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of live watchers.
    pub fn watchers(&self) -> usize {
        self.live.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compacted_history_is_forgotten_and_resuming_there_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Backend> = Arc::new(
            kite_store::SqliteBackend::open(
                &dir.path().join("state.db"),
                kite_store::Config {
                    compaction_interval: None,
                    ..Default::default()
                },
            )
            .expect("store"),
        );
        let cm = |name: &str| {
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"}
                }))
                .expect("json"),
            )
        };
        let prefix = "/registry/configmaps/".to_string();
        let cache = WatchCache::start(store.clone(), prefix.clone(), "", "ConfigMap");
        cache.wait_ready().await;
        let mut revisions = Vec::new();
        for name in ["a", "b", "c"] {
            let key = format!("{prefix}default/{name}");
            revisions.push(store.create(&key, cm(name), 0).await.expect("create"));
        }
        assert!(
            cache
                .wait_for_revision(revisions[2], Duration::from_secs(5))
                .await
        );
        assert!(cache.subscribe(revisions[0]).is_ok());

        store.compact(revisions[1]).await.expect("compact");
        cache.forget_compacted(revisions[1]);
        assert_eq!(
            cache.subscribe(revisions[0]).err(),
            Some(StartError::TooOld {
                requested: revisions[0],
                oldest: revisions[1],
            })
        );
        let Ok((Start::History(events), _)) = cache.subscribe(revisions[1]) else {
            panic!("resuming at the compact revision works");
        };
        assert_eq!(
            events.iter().map(|e| e.revision).collect::<Vec<_>>(),
            vec![revisions[2]]
        );
        // An older compaction than what the cache already forgot changes nothing.
        cache.forget_compacted(revisions[0]);
        assert!(cache.subscribe(revisions[1]).is_ok());
    }
}
