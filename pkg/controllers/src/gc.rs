//! The garbage collector: deletes objects whose owners are gone and carries out
//! foreground and orphan deletion, as kube-controller-manager's does.
//!
//! It keeps a graph of every object's metadata (uid, owners, finalizers) for
//! every kind discovery lists as listable, watchable and deletable (re-run now
//! and then so CRDs added later are covered). Then, for an object whose owners
//! are all gone it deletes the object (a missing owner is confirmed with a live
//! GET first, so a lagging cache never deletes anything wrongly); for an owner
//! deleted with `propagationPolicy=Orphan` (the `orphan` finalizer) it removes
//! the owner from its dependents' `ownerReferences` and then the finalizer; for
//! `Foreground` (`foregroundDeletion`) it deletes the dependents and removes the
//! finalizer once no dependent with `blockOwnerDeletion` remains.

use crate::{Config, Result, work};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kite_client::WorkQueue;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// How often discovery is re-run to pick up new kinds (CRDs).
const REDISCOVERY: Duration = Duration::from_secs(30);
/// Kinds never owned by anything and too numerous to be worth watching.
const SKIPPED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Every kind discovery knows, by group/version/kind: its resource and whether it is namespaced.
type Kinds = HashMap<GroupVersionKind, (Arc<ApiResource>, bool)>;

/// One object in the graph.
#[derive(Clone, Debug)]
struct GraphNode {
    resource: Arc<ApiResource>,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, GraphNode>,
    /// owner uid → uids of objects naming it as an owner.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn upsert(&mut self, uid: &str, node: GraphNode) {
        self.remove_edges(uid);
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.nodes.insert(uid.to_string(), node);
    }

    fn remove(&mut self, uid: &str) -> Option<GraphNode> {
        self.remove_edges(uid);
        self.nodes.remove(uid)
    }

    fn remove_edges(&mut self, uid: &str) {
        if let Some(old) = self.nodes.get(uid) {
            for owner in &old.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(uid);
                    if set.is_empty() {
                        self.dependents.remove(&owner.uid);
                    }
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<(String, GraphNode)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.clone(), n.clone())))
            .collect()
    }
}

/// The garbage collector.
pub struct GarbageCollector {
    client: kube::Client,
    graph: Arc<Mutex<Graph>>,
    kinds: Arc<Mutex<Kinds>>,
    queue: WorkQueue,
}

/// What is known about one owner reference.
enum OwnerState {
    Present { deleting_foreground: bool },
    Absent,
    Unknown,
}

impl GarbageCollector {
    /// A collector using `config.client`.
    pub fn new(config: &Config) -> Self {
        Self {
            client: config.client.clone(),
            graph: Arc::default(),
            kinds: Arc::default(),
            queue: WorkQueue::new(),
        }
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs until the future is dropped.
    pub async fn run(self) {
        let discovery = async {
            let mut watched: HashSet<String> = HashSet::new();
            let mut tasks = futures::stream::FuturesUnordered::new();
            let mut tick = tokio::time::interval(REDISCOVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        for (resource, namespaced) in self.discover().await {
                            let id = format!("{}/{}/{}", resource.group, resource.version, resource.plural);
                            if watched.insert(id) {
                                tasks.push(self.watch(resource, namespaced));
                            }
                        }
                    }
                    Some(()) = tasks.next() => {}
                }
            }
        };
        let worker = work("garbagecollector", self.queue.clone(), |uid| {
            self.process(uid)
        });
        tokio::join!(discovery, worker);
    }

    /// Every kind to watch, preferring each group's preferred version.
    async fn discover(&self) -> Vec<(Arc<ApiResource>, bool)> {
        let discovery = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => d,
            Err(error) => {
                tracing::warn!(%error, "garbage collector: discovery failed");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        for group in discovery.groups() {
            for (resource, caps) in group.resources_by_stability() {
                let namespaced = caps.scope == Scope::Namespaced;
                let resource = Arc::new(resource);
                kinds.insert(
                    GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind),
                    (resource.clone(), namespaced),
                );
                let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                let skipped = SKIPPED
                    .iter()
                    .any(|(g, p)| *g == resource.group && *p == resource.plural);
                if usable && !skipped {
                    found.push((resource, namespaced));
                }
            }
            // Other versions of the group resolve owner references too.
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    let gvk =
                        GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
                    kinds
                        .entry(gvk)
                        .or_insert_with(|| (Arc::new(resource), caps.scope == Scope::Namespaced));
                }
            }
        }
        found
    }

    /// Feeds the graph from one kind's watch.
    async fn watch(&self, resource: Arc<ApiResource>, namespaced: bool) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &*resource);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut listed: HashSet<String> = HashSet::new();
        let mut known: HashSet<String> = HashSet::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(kind = %resource.kind, %error, "garbage collector watch failed");
                    continue;
                }
            };
            match event {
                watcher::Event::Init => listed.clear(),
                watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                    if let Some(uid) = obj.metadata.uid.clone() {
                        listed.insert(uid.clone());
                        known.insert(uid.clone());
                        self.observe(&uid, &resource, namespaced, obj.metadata);
                    }
                }
                watcher::Event::InitDone => {
                    for gone in known.difference(&listed).cloned().collect::<Vec<_>>() {
                        self.forget(&gone);
                        known.remove(&gone);
                    }
                }
                watcher::Event::Delete(obj) => {
                    if let Some(uid) = obj.metadata.uid {
                        known.remove(&uid);
                        self.forget(&uid);
                    }
                }
            }
        }
    }

    fn observe(&self, uid: &str, resource: &Arc<ApiResource>, namespaced: bool, meta: ObjectMeta) {
        let node = GraphNode {
            resource: resource.clone(),
            namespace: if namespaced {
                meta.namespace.clone()
            } else {
                None
            },
            name: meta.name.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        };
        let interesting = !node.owners.is_empty()
            || (node.deleting
                && node
                    .finalizers
                    .iter()
                    .any(|f| f == ORPHAN || f == FOREGROUND));
        let dependents: Vec<String> = {
            let mut graph = self.graph();
            graph.upsert(uid, node);
            graph
                .dependents_of(uid)
                .into_iter()
                .map(|(d, _)| d)
                .collect()
        };
        if interesting {
            self.queue.add(uid);
        }
        // An owner starting foreground deletion must reach its dependents.
        for dependent in dependents {
            self.queue.add(&dependent);
        }
    }

    fn forget(&self, uid: &str) {
        let (dependents, owners) = {
            let mut graph = self.graph();
            let removed = graph.remove(uid);
            let dependents: Vec<String> = graph
                .dependents_of(uid)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            (dependents, removed.map(|n| n.owners).unwrap_or_default())
        };
        for dependent in dependents {
            self.queue.add(&dependent);
        }
        // An owner waiting in foreground deletion may now be free to go.
        for owner in owners {
            self.queue.add(&owner.uid);
        }
    }

    fn api_for(&self, node: &GraphNode) -> Api<DynamicObject> {
        match &node.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &*node.resource),
            None => Api::all_with(self.client.clone(), &*node.resource),
        }
    }

    async fn process(&self, uid: String) -> Result<Option<Duration>> {
        let Some(node) = self.graph().nodes.get(&uid).cloned() else {
            return Ok(None);
        };
        if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
            return self.orphan_dependents(&uid, &node).await;
        }
        if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
            return self.delete_dependents_first(&uid, &node).await;
        }
        if node.owners.is_empty() || node.deleting {
            return Ok(None);
        }
        let mut absent = Vec::new();
        let mut waiting_owner = false;
        let mut unknown = false;
        for owner in &node.owners {
            match self.owner_state(owner, node.namespace.as_deref()).await? {
                OwnerState::Absent => absent.push(owner.uid.clone()),
                OwnerState::Present {
                    deleting_foreground,
                } => {
                    if deleting_foreground && owner.block_owner_deletion == Some(true) {
                        waiting_owner = true;
                    }
                }
                OwnerState::Unknown => unknown = true,
            }
        }
        let api = self.api_for(&node);
        if absent.len() == node.owners.len() {
            tracing::info!(kind = %node.resource.kind, name = %node.name, "deleting object whose owners are gone");
            self.delete(&api, &uid, &node.name, PropagationPolicy::Background)
                .await?;
        } else if !absent.is_empty() && !unknown {
            let remaining: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !absent.contains(&o.uid))
                .collect();
            let patch = serde_json::json!({"metadata": {"ownerReferences": remaining, "uid": uid}});
            ignore_missing(
                api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await,
            )?;
        } else if waiting_owner {
            self.delete(&api, &uid, &node.name, PropagationPolicy::Foreground)
                .await?;
        }
        Ok(None)
    }

    /// Whether the owner exists, confirmed against the API when the graph lacks it.
    async fn owner_state(
        &self,
        owner: &OwnerReference,
        namespace: Option<&str>,
    ) -> Result<OwnerState> {
        if let Some(found) = self.graph().nodes.get(&owner.uid) {
            return Ok(OwnerState::Present {
                deleting_foreground: found.deleting
                    && found.finalizers.iter().any(|f| f == FOREGROUND),
            });
        }
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", owner.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
        let Some((resource, namespaced)) = self
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&gvk)
            .cloned()
        else {
            return Ok(OwnerState::Unknown);
        };
        let api: Api<DynamicObject> = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &*resource),
            (true, None) => return Ok(OwnerState::Absent),
            (false, _) => Api::all_with(self.client.clone(), &*resource),
        };
        match api.get_opt(&owner.name).await? {
            Some(obj) if obj.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                Ok(OwnerState::Present {
                    deleting_foreground: obj.metadata.deletion_timestamp.is_some()
                        && obj
                            .metadata
                            .finalizers
                            .unwrap_or_default()
                            .iter()
                            .any(|f| f == FOREGROUND),
                })
            }
            // Gone, or replaced by a new object of the same name.
            _ => Ok(OwnerState::Absent),
        }
    }

    async fn orphan_dependents(&self, uid: &str, node: &GraphNode) -> Result<Option<Duration>> {
        let dependents = self.graph().dependents_of(uid);
        for (_, dependent) in dependents {
            let api = self.api_for(&dependent);
            let Some(current) = api.get_opt(&dependent.name).await? else {
                continue;
            };
            let owners = current
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            let remaining: Vec<&OwnerReference> = owners.iter().filter(|o| o.uid != uid).collect();
            if remaining.len() == owners.len() {
                continue;
            }
            let patch = serde_json::json!({"metadata": {
                "ownerReferences": remaining,
                "resourceVersion": current.metadata.resource_version,
            }});
            ignore_missing(
                api.patch(
                    &dependent.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            )?;
        }
        self.remove_finalizer(node, ORPHAN).await?;
        Ok(None)
    }

    async fn delete_dependents_first(
        &self,
        uid: &str,
        node: &GraphNode,
    ) -> Result<Option<Duration>> {
        let dependents = self.graph().dependents_of(uid);
        let mut blocking = 0;
        for (dependent_uid, dependent) in &dependents {
            let blocks = dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if !dependent.deleting {
                let api = self.api_for(dependent);
                let policy = if blocks {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(&api, dependent_uid, &dependent.name, policy)
                    .await?;
            }
        }
        if blocking == 0 {
            self.remove_finalizer(node, FOREGROUND).await?;
            return Ok(None);
        }
        // Dependents' deletions requeue us; look again anyway in case one is missed.
        Ok(Some(Duration::from_secs(5)))
    }

    async fn remove_finalizer(&self, node: &GraphNode, finalizer: &str) -> Result<()> {
        let api = self.api_for(node);
        let Some(current) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        let finalizers = current.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = serde_json::json!({"metadata": {
            "finalizers": remaining,
            "resourceVersion": current.metadata.resource_version,
        }});
        ignore_missing(
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
    }

    async fn delete(
        &self,
        api: &Api<DynamicObject>,
        uid: &str,
        name: &str,
        policy: PropagationPolicy,
    ) -> Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or a new object took the name: nothing to delete.
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
