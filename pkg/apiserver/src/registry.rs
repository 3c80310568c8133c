//! Which resources the server serves: the built-in ones and, as CRDs are
//! established, custom ones. Lookups by group/version/plural are the hot
//! path of every request, so they go through a map behind an `RwLock` that
//! only CRD changes write.

use kite_api::ResourceInfo;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

type Key = (String, String, String);

/// The served resources.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// In discovery order.
    resources: Vec<Arc<ResourceInfo>>,
    by_path: HashMap<Key, Arc<ResourceInfo>>,
    generation: u64,
}

impl Registry {
    /// A registry of the given resources.
    pub fn new(resources: Vec<ResourceInfo>) -> Self {
        let registry = Self::default();
        registry.replace_all(resources);
        registry
    }

    fn replace_all(&self, resources: Vec<ResourceInfo>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.by_path.clear();
        inner.resources.clear();
        for r in resources {
            let r = Arc::new(r);
            inner.by_path.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                r.clone(),
            );
            inner.resources.push(r);
        }
        inner.generation += 1;
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Every served resource, in discovery order.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .resources
            .clone()
    }

    /// A number that changes whenever the set of resources changes (for caches).
    pub fn generation(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Adds or replaces the resources of a custom resource definition.
    pub fn upsert(&self, resources: Vec<ResourceInfo>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for r in resources {
            let key = (r.group.clone(), r.version.clone(), r.plural.clone());
            let r = Arc::new(r);
            match inner
                .resources
                .iter()
                .position(|e| (&e.group, &e.version, &e.plural) == (&key.0, &key.1, &key.2))
            {
                Some(i) => inner.resources[i] = r.clone(),
                None => inner.resources.push(r.clone()),
            }
            inner.by_path.insert(key, r);
        }
        inner.generation += 1;
    }

    /// Removes one version of `plural.group` (a CRD version no longer served).
    pub fn remove_version(&self, group: &str, version: &str, plural: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner
            .resources
            .retain(|r| !(r.group == group && r.version == version && r.plural == plural));
        inner
            .by_path
            .remove(&(group.to_string(), version.to_string(), plural.to_string()));
        inner.generation += 1;
    }

    /// Removes every version of `plural.group` (a deleted CRD).
    pub fn remove(&self, group: &str, plural: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner
            .resources
            .retain(|r| !(r.group == group && r.plural == plural));
        inner
            .by_path
            .retain(|(g, _, p), _| !(g == group && p == plural));
        inner.generation += 1;
    }
}
