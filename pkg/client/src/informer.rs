//! Informers: a cache of one kind fed by a watch, calling handlers on every change.
//!
//! The cache is updated *before* handlers run, so a controller woken by a change
//! always reads a cache that contains it; deletions are reported too (a
//! ReplicaSet must hear that its pod went away). After every (re)list the
//! handlers see the difference between the old and new contents, so nothing is
//! missed across a 410 Gone and relist.

use crate::key_of;
use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::watch;

/// One change to a cached object.
#[derive(Debug)]
pub enum Change<K> {
    /// The object is new to the cache.
    Added(Arc<K>),
    /// The object changed (or was seen again on a relist).
    Updated {
        /// What the cache held before.
        old: Arc<K>,
        /// What it holds now.
        new: Arc<K>,
    },
    /// The object is gone.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now (or was last, if deleted).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Added(obj) | Change::Deleted(obj) => obj,
            Change::Updated { new, .. } => new,
        }
    }
}

type Handler<K> = Arc<dyn Fn(&Change<K>) + Send + Sync>;
type Cache<K> = Arc<RwLock<HashMap<String, Arc<K>>>>;

/// A watched cache of one kind; clones share it.
pub struct Informer<K> {
    api: Api<K>,
    config: watcher::Config,
    cache: Cache<K>,
    handlers: Arc<RwLock<Vec<Handler<K>>>>,
    synced: watch::Sender<bool>,
}

impl<K: Clone> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
            handlers: self.handlers.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over everything `api` lists.
    pub fn new(api: Api<K>) -> Self {
        Self::with_config(api, watcher::Config::default())
    }

    /// An informer over what `api` lists with `config` (selectors, page size).
    pub fn with_config(api: Api<K>, config: watcher::Config) -> Self {
        Self {
            api,
            config,
            cache: Arc::default(),
            handlers: Arc::default(),
            synced: watch::channel(false).0,
        }
    }

    /// Calls `handler` after every change; register before [`Informer::run`].
    pub fn on_change(&self, handler: impl Fn(&Change<K>) + Send + Sync + 'static) {
        self.handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(handler));
    }

    /// The cached object with `key` (`namespace/name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The cached objects `keep` accepts.
    pub fn filter(&self, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|o| keep(o))
            .cloned()
            .collect()
    }

    /// Waits until the first list has filled the cache.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Watches until the future is dropped, keeping the cache current.
    pub async fn run(self) {
        let stream = watcher(self.api.clone(), self.config.clone()).default_backoff();
        futures::pin_mut!(stream);
        let mut buffer: HashMap<String, Arc<K>> = HashMap::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(kind = %K::kind(&()), %error, "watch failed; retrying");
                    continue;
                }
            };
            let changes = match event {
                watcher::Event::Init => {
                    buffer.clear();
                    continue;
                }
                watcher::Event::InitApply(obj) => {
                    let obj = trimmed(obj);
                    buffer.insert(key_of(obj.meta()), Arc::new(obj));
                    continue;
                }
                watcher::Event::InitDone => {
                    let fresh = std::mem::take(&mut buffer);
                    let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
                    let old = std::mem::replace(&mut *cache, fresh);
                    let mut changes = Vec::new();
                    for (key, new) in cache.iter() {
                        changes.push(match old.get(key) {
                            Some(old) => Change::Updated {
                                old: old.clone(),
                                new: new.clone(),
                            },
                            None => Change::Added(new.clone()),
                        });
                    }
                    for (key, gone) in old {
                        if !cache.contains_key(&key) {
                            changes.push(Change::Deleted(gone));
                        }
                    }
                    changes
                }
                watcher::Event::Apply(obj) => {
                    let new = Arc::new(trimmed(obj));
                    let old = self
                        .cache
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key_of(new.meta()), new.clone());
                    vec![match old {
                        Some(old) => Change::Updated { old, new },
                        None => Change::Added(new),
                    }]
                }
                watcher::Event::Delete(obj) => {
                    let key = key_of(obj.meta());
                    let old = self
                        .cache
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                    vec![Change::Deleted(
                        old.unwrap_or_else(|| Arc::new(trimmed(obj))),
                    )]
                }
            };
            let handlers = self
                .handlers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for change in &changes {
                for handler in &handlers {
                    handler(change);
                }
            }
            self.synced.send_replace(true);
        }
    }
}

/// `obj` without its managedFields: no controller reads them, and they are
/// often the larger part of an object's metadata (kube-controller-manager's
/// informers drop them too).
fn trimmed<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}
