//! The scheduling loop: informer changes in, decisions and bindings out.
//!
//! One task owns all scheduling state (nodes, what each pod uses, the queue),
//! so decisions need no locks and each one sees every earlier decision. API
//! calls (binding, events, status) run as separate tasks and report back.

use crate::filter::{self, PodFacts, Rejection};
use crate::image_locality;
use crate::inter_pod;
use crate::message;
use crate::node_info::{NodeInfo, PodUsage};
use crate::preemption;
use crate::queue::Queue;
use crate::score;
use crate::volumes::{self, Lookup};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kite_api::volume_binding as vb;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, key_of};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the scheduler needs to run.
#[derive(Clone)]
pub struct Config {
    /// Client for the API (in-process inside `kite server`).
    pub client: kube::Client,
    /// Pods naming this `schedulerName` are ours: `default-scheduler`.
    pub scheduler_name: String,
    /// Host name reported in events.
    pub host: String,
}

/// The scheduler; cheap to clone, each [`Scheduler::run`] starts afresh.
#[derive(Clone)]
pub struct Scheduler {
    config: Config,
}

/// How long a pod waits for its claims to be bound after the node was
/// chosen, as kube-scheduler's `bindTimeoutSeconds`.
const BIND_TIMEOUT: Duration = Duration::from_secs(600);

enum Input {
    Node(Change<Node>),
    Pod(Change<Pod>),
    /// A claim, volume or class changed: parked pods may fit now.
    Storage,
    Bound {
        key: String,
        node: String,
        result: BindResult,
    },
}

enum BindResult {
    Ok,
    /// The pod is gone or already bound: nothing more to do.
    Moot,
    Failed(String),
}

impl Scheduler {
    /// A scheduler with `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// Schedules pods until the future is dropped.
    pub async fn run(self) {
        let client = self.config.client.clone();
        let nodes = Informer::new(Api::<Node>::all(client.clone()));
        let pods = Informer::new(Api::<Pod>::all(client.clone()));
        let (tx, rx) = mpsc::unbounded_channel();
        let node_tx = tx.clone();
        nodes.on_change(move |change| {
            let _ = node_tx.send(Input::Node(clone_change(change)));
        });
        let pod_tx = tx.clone();
        pods.on_change(move |change| {
            let _ = pod_tx.send(Input::Pod(clone_change(change)));
        });
        let storage = Storage {
            claims: Informer::new(Api::all(client.clone())),
            volumes: Informer::new(Api::all(client.clone())),
            classes: Informer::new(Api::all(client.clone())),
        };
        let notify = |tx: &mpsc::UnboundedSender<Input>| {
            let tx = tx.clone();
            move || {
                let _ = tx.send(Input::Storage);
            }
        };
        let changed = notify(&tx);
        storage.claims.on_change(move |_| changed());
        let changed = notify(&tx);
        storage.volumes.on_change(move |_| changed());
        let changed = notify(&tx);
        storage.classes.on_change(move |_| changed());
        // Namespace labels decide which pods a namespaceSelector covers.
        let namespaces: Informer<Namespace> = Informer::new(Api::all(client.clone()));
        let changed = notify(&tx);
        namespaces.on_change(move |_| changed());
        // Preemption spares pods their disruption budgets protect.
        let budgets: Informer<PodDisruptionBudget> = Informer::new(Api::all(client.clone()));
        let mut state = State {
            config: self.config.clone(),
            recorder: Recorder::new(
                client.clone(),
                &self.config.scheduler_name,
                &self.config.host,
            ),
            pods_api: Api::all(client),
            pods: pods.clone(),
            storage: storage.clone(),
            namespaces: namespaces.clone(),
            budgets: budgets.clone(),
            nodes: HashMap::new(),
            order: Vec::new(),
            placed: HashMap::new(),
            assumed: HashMap::new(),
            queue: Queue::default(),
            next_start: 0,
            rng: seed(),
            tx,
            last_message: HashMap::new(),
            anti_affinity_pods: Default::default(),
        };
        tokio::select! {
            () = nodes.clone().run() => {}
            () = pods.clone().run() => {}
            () = storage.claims.clone().run() => {}
            () = storage.volumes.clone().run() => {}
            () = storage.classes.clone().run() => {}
            () = namespaces.clone().run() => {}
            () = budgets.clone().run() => {}
            () = async {
                nodes.wait_synced().await;
                pods.wait_synced().await;
                storage.claims.wait_synced().await;
                storage.volumes.wait_synced().await;
                storage.classes.wait_synced().await;
                namespaces.wait_synced().await;
                budgets.wait_synced().await;
                tracing::info!("scheduler caches synced");
                state.run(rx).await
            } => {}
        }
    }
}

fn clone_change<K>(change: &Change<K>) -> Change<K> {
    match change {
        Change::Added(o) => Change::Added(o.clone()),
        Change::Updated { old, new } => Change::Updated {
            old: old.clone(),
            new: new.clone(),
        },
        Change::Deleted(o) => Change::Deleted(o.clone()),
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9)
        | 1
}

/// The storage objects the VolumeBinding checks read.
#[derive(Clone)]
struct Storage {
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
}

impl Lookup for Storage {
    fn claim(&self, key: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(key)
    }
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(name)
    }
    fn volumes(&self) -> Vec<Arc<PersistentVolume>> {
        self.volumes.list()
    }
    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.get(name)
    }
}

struct State {
    config: Config,
    recorder: Recorder,
    pods_api: Api<Pod>,
    pods: Informer<Pod>,
    storage: Storage,
    namespaces: Informer<Namespace>,
    budgets: Informer<PodDisruptionBudget>,
    nodes: HashMap<String, NodeInfo>,
    /// Node names in a fixed order, for rotating where each search starts.
    order: Vec<String>,
    /// Which node each counted pod is on.
    placed: HashMap<String, String>,
    /// Pods counted on a node before their binding is confirmed by the watch.
    assumed: HashMap<String, String>,
    queue: Queue,
    next_start: usize,
    rng: u64,
    tx: mpsc::UnboundedSender<Input>,
    /// The last FailedScheduling message per pod, to write the condition only on change.
    last_message: HashMap<String, String>,
    /// Counted pods with required anti-affinity, which every later pod must respect.
    anti_affinity_pods: std::collections::HashSet<String>,
}

impl State {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut since_yield = 0u32;
        loop {
            while let Ok(input) = rx.try_recv() {
                self.apply(input);
            }
            let now = Instant::now();
            self.queue.promote_due(now);
            if let Some(key) = self.queue.pop() {
                self.schedule_one(&key);
                since_yield += 1;
                if since_yield >= 64 {
                    // Let binding tasks and informers run between bursts of decisions.
                    since_yield = 0;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            let wake = self.queue.next_due();
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.apply(input),
                    None => return,
                },
                () = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    fn apply(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Node(Change::Deleted(node)) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.nodes.remove(&name);
                self.order.retain(|n| *n != name);
            }
            Input::Node(change) => {
                let node = change.object().clone();
                let name = node.metadata.name.clone().unwrap_or_default();
                match self.nodes.get_mut(&name) {
                    Some(info) => info.set_node(node),
                    None => {
                        let mut info = NodeInfo::new(node);
                        // Pods seen before their node: count them now.
                        for (key, on) in &self.placed {
                            if *on == name
                                && let Some(pod) = self.pods.get(key)
                            {
                                info.add_pod(key, PodUsage::of(&pod));
                            }
                        }
                        self.nodes.insert(name.clone(), info);
                        self.order.push(name);
                        self.order.sort();
                    }
                }
                self.queue.cluster_changed(now);
            }
            Input::Pod(Change::Deleted(pod)) => {
                let key = key_of(&pod.metadata);
                self.queue.remove(&key);
                self.last_message.remove(&key);
                self.assumed.remove(&key);
                if self.unplace(&key) {
                    self.queue.cluster_changed(now);
                }
            }
            Input::Pod(change) => self.pod_changed(change.object(), now),
            Input::Storage => self.queue.cluster_changed(now),
            Input::Bound { key, node, result } => match result {
                BindResult::Ok => {}
                BindResult::Moot => {
                    if self.assumed.remove(&key).is_some() {
                        self.unplace(&key);
                    }
                }
                BindResult::Failed(error) => {
                    tracing::warn!(pod = %key, %node, %error, "binding failed; retrying");
                    if self.assumed.remove(&key).is_some() {
                        self.unplace(&key);
                    }
                    self.queue.back_off(&key, now);
                }
            },
        }
    }

    fn pod_changed(&mut self, pod: &Arc<Pod>, now: Instant) {
        let key = key_of(&pod.metadata);
        let spec = pod.spec.as_ref();
        let node_name = spec
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if !node_name.is_empty() {
            self.queue.remove(&key);
            self.last_message.remove(&key);
            self.assumed.remove(&key);
            if matches!(phase, "Succeeded" | "Failed") {
                // Finished pods free their node's resources.
                if self.unplace(&key) {
                    self.queue.cluster_changed(now);
                }
            } else {
                self.place(&key, node_name, PodUsage::of(pod));
            }
            return;
        }
        if self.assumed.contains_key(&key) {
            return;
        }
        let ours = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.config.scheduler_name;
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if !ours || deleting || matches!(phase, "Succeeded" | "Failed") {
            self.queue.remove(&key);
            return;
        }
        if self.queue.is_parked(&key) {
            // kube-scheduler retries a parked pod when the pod itself changes,
            // except for changes it wrote (the PodScheduled condition).
            return;
        }
        self.queue.add(&key);
    }

    /// Counts `key` on `node` (moving it if it was counted elsewhere).
    fn place(&mut self, key: &str, node: &str, usage: PodUsage) {
        if let Some(old) = self.placed.get(key)
            && old != node
            && let Some(info) = self.nodes.get_mut(old)
        {
            info.remove_pod(key);
        }
        if let Some(info) = self.nodes.get_mut(node) {
            info.add_pod(key, usage);
        }
        self.placed.insert(key.to_string(), node.to_string());
        if self
            .pods
            .get(key)
            .is_some_and(|pod| inter_pod::has_required_anti_affinity(&pod))
        {
            self.anti_affinity_pods.insert(key.to_string());
        }
    }

    /// Stops counting `key`; whether it was counted.
    fn unplace(&mut self, key: &str) -> bool {
        self.anti_affinity_pods.remove(key);
        match self.placed.remove(key) {
            Some(node) => {
                if let Some(info) = self.nodes.get_mut(&node) {
                    info.remove_pod(key);
                }
                true
            }
            None => false,
        }
    }

    fn schedule_one(&mut self, key: &str) {
        let Some(pod) = self.pods.get(key) else {
            return;
        };
        let spec = pod.spec.as_ref();
        if spec
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
            || pod.metadata.deletion_timestamp.is_some()
        {
            return;
        }
        let facts = PodFacts::new(&pod);
        let total = self.order.len();
        let never = spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
        let claims = match volumes::pre_filter(&pod, &self.storage) {
            Ok(claims) => claims,
            Err(reason) => {
                let message = message::pre_filter_error(total, &reason, never);
                self.unschedulable(&pod, key, message);
                return;
            }
        };
        let wanted = feasible_nodes_to_find(total);
        // Other pods matter only to pods with pod (anti-)affinity or spread
        // constraints, and to every pod while some pod has anti-affinity.
        let inter = inter_pod::needed(&pod, !self.anti_affinity_pods.is_empty());
        let placed: Vec<inter_pod::Placed> = if inter {
            self.placed
                .iter()
                .filter(|(other, _)| other.as_str() != key)
                .filter_map(|(other, node)| {
                    Some(inter_pod::Placed {
                        node: node.clone(),
                        pod: self.pods.get(other)?,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let namespace_labels: inter_pod::NamespaceLabels = if inter {
            self.namespaces
                .list()
                .iter()
                .map(|n| {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    (name, n.metadata.labels.clone().unwrap_or_default())
                })
                .collect()
        } else {
            Default::default()
        };
        let snapshot =
            inter.then(|| inter_pod::Snapshot::new(&pod, &self.nodes, &placed, &namespace_labels));
        let mut feasible: Vec<&NodeInfo> = Vec::new();
        let mut rejections: Vec<Rejection> = Vec::new();
        // Nodes where removing pods could help: where preemption looks.
        let mut preemptible: Vec<&NodeInfo> = Vec::new();
        let mut visited = 0;
        for i in 0..total {
            let name = &self.order[(self.next_start + i) % total];
            let Some(info) = self.nodes.get(name) else {
                continue;
            };
            visited += 1;
            let fits = filter::check(&facts, info)
                .and_then(|()| {
                    if claims.is_empty() {
                        Ok(())
                    } else {
                        volumes::filter(&claims, &info.node, &self.storage)
                    }
                })
                .and_then(|()| match &snapshot {
                    Some(snapshot) => snapshot
                        .filter_spread(&facts, info)
                        .and_then(|()| snapshot.filter_affinity(&facts, info)),
                    None => Ok(()),
                });
            match fits {
                Ok(()) => {
                    feasible.push(info);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(rejection) => {
                    if rejection.resolvable {
                        preemptible.push(info);
                    }
                    rejections.push(rejection)
                }
            }
        }
        if total > 0 {
            self.next_start = (self.next_start + visited) % total;
        }
        if feasible.is_empty() {
            if !never {
                if self.waits_for_victims(&pod) {
                    let message = message::fit_error_waiting(total, &rejections);
                    self.unschedulable(&pod, key, message);
                    return;
                }
                let candidates: Vec<preemption::NodePods<'_>> = preemptible
                    .iter()
                    .map(|info| {
                        let pods = info
                            .pods
                            .keys()
                            .filter_map(|k| Some((k.clone(), self.pods.get(k)?)))
                            .collect();
                        (*info, pods)
                    })
                    .collect();
                let budgets: Vec<preemption::Budget> = self
                    .budgets
                    .list()
                    .iter()
                    .filter_map(|pdb| preemption::Budget::of(pdb))
                    .collect();
                if let Some(candidate) = preemption::select(&facts, &candidates, &budgets) {
                    let message = message::fit_error_preempting(total, &rejections);
                    self.preempt(&pod, candidate);
                    self.unschedulable(&pod, key, message);
                    return;
                }
            }
            let message = message::fit_error(total, &rejections, never);
            self.unschedulable(&pod, key, message);
            return;
        }
        let mut scores = score::score(&facts, &feasible);
        for (total, s) in
            scores
                .iter_mut()
                .zip(image_locality::scores(&pod, &feasible, &self.nodes))
        {
            *total += s;
        }
        if let Some(snapshot) = &snapshot {
            let (affinity, spread) = snapshot.scores(&facts, &feasible);
            let affinity = inter_pod::normalize(&affinity, false);
            let spread = inter_pod::normalize(&spread, true);
            for (i, total) in scores.iter_mut().enumerate() {
                *total += 2 * affinity[i] + 2 * spread[i];
            }
        }
        let best = scores.iter().copied().max().unwrap_or(0);
        // Reservoir sampling among the best, so equal nodes share the load.
        let mut chosen = 0;
        let mut ties = 0u64;
        for (i, s) in scores.iter().enumerate() {
            if *s == best {
                ties += 1;
                if xorshift(&mut self.rng).is_multiple_of(ties) {
                    chosen = i;
                }
            }
        }
        let node = feasible[chosen].name().to_string();
        let usage = facts.usage.clone();
        self.place(key, &node, usage);
        self.assumed.insert(key.to_string(), node.clone());
        self.last_message.remove(key);
        let waiting = claims.waiting.iter().map(|c| key_of(&c.metadata)).collect();
        self.bind(&pod, key, node, volumes::to_select(&claims), waiting);
    }

    /// Binds the pod in the background, after writing the node on the
    /// claims in `select` and waiting for every claim in `waiting` to be
    /// bound (upstream's VolumeBinding PreBind).
    fn bind(
        &self,
        pod: &Arc<Pod>,
        key: &str,
        node: String,
        select: Vec<(String, String)>,
        waiting: Vec<String>,
    ) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.pods_api.clone().into_client(), &namespace);
        let tx = self.tx.clone();
        let recorder = self.recorder.clone();
        let reference = pod.object_ref(&());
        let key = key.to_string();
        let uid = pod.metadata.uid.clone();
        let claims = self.storage.claims.clone();
        let client = self.pods_api.clone().into_client();
        tokio::spawn(async move {
            if let Err(error) = bind_volumes(&client, &claims, &node, &select, &waiting).await {
                let message = format!("running PreBind plugin \"VolumeBinding\": {error}");
                recorder.publish(reference, WARNING, "FailedScheduling", &message);
                let result = BindResult::Failed(message);
                let _ = tx.send(Input::Bound { key, node, result });
                return;
            }
            let binding = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name, "namespace": namespace, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let result = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await;
            let result = match result {
                Ok(_) => {
                    recorder.publish(
                        reference,
                        NORMAL,
                        "Scheduled",
                        &format!("Successfully assigned {namespace}/{name} to {node}"),
                    );
                    BindResult::Ok
                }
                Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {
                    BindResult::Moot
                }
                Err(error) => BindResult::Failed(error.to_string()),
            };
            let _ = tx.send(Input::Bound { key, node, result });
        });
    }

    /// Whether the pod was nominated to a node where a pod of lower priority
    /// is still terminating (kube-scheduler then waits instead of preempting more).
    fn waits_for_victims(&self, pod: &Pod) -> bool {
        let Some(nominated) = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
        else {
            return false;
        };
        let Some(info) = self.nodes.get(nominated) else {
            return false;
        };
        let incoming = preemption::priority(pod);
        info.pods
            .keys()
            .filter_map(|k| self.pods.get(k))
            .any(|other| {
                other.metadata.deletion_timestamp.is_some()
                    && preemption::priority(&other) < incoming
            })
    }

    /// Nominates the candidate's node for `pod` and evicts the victims, in the
    /// background, as kube-scheduler's preemption does.
    fn preempt(&self, pod: &Arc<Pod>, candidate: preemption::Candidate) {
        let client = self.pods_api.clone().into_client();
        let recorder = self.recorder.clone();
        let victims: Vec<Arc<Pod>> = candidate
            .victims
            .iter()
            .filter_map(|k| self.pods.get(k))
            .collect();
        let preemptor = pod.clone();
        let node = candidate.node;
        let scheduler = self.config.scheduler_name.clone();
        tokio::spawn(async move {
            let uid = preemptor.metadata.uid.clone().unwrap_or_default();
            for victim in victims {
                let namespace = victim.metadata.namespace.clone().unwrap_or_default();
                let name = victim.metadata.name.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let condition = serde_json::json!({"status": {"conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                }]}});
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Strategic(&condition),
                    )
                    .await;
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => recorder.publish(
                        victim.object_ref(&()),
                        NORMAL,
                        "Preempted",
                        &format!("Preempted by pod {uid} on node {node}"),
                    ),
                    Err(error) => tracing::warn!(pod = %name, %error, "cannot preempt"),
                }
            }
            let namespace = preemptor.metadata.namespace.clone().unwrap_or_default();
            let name = preemptor.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let nominated = serde_json::json!({"status": {"nominatedNodeName": node}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&nominated))
                .await;
        });
    }

    fn unschedulable(&mut self, pod: &Arc<Pod>, key: &str, message: String) {
        tracing::debug!(pod = %key, %message, "unschedulable");
        self.queue.park_unschedulable(key, Instant::now());
        self.recorder
            .publish(pod.object_ref(&()), WARNING, "FailedScheduling", &message);
        if self.last_message.get(key) == Some(&message) {
            return;
        }
        self.last_message.insert(key.to_string(), message.clone());
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.pods_api.clone().into_client(), &namespace);
        tokio::spawn(async move {
            let patch = serde_json::json!({
                "status": {"conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now()
                        .strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                }]}
            });
            if let Err(error) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, %error, "cannot set PodScheduled=False");
            }
        });
    }
}

/// Writes `node` on the claims to `select` and waits, up to
/// [`BIND_TIMEOUT`], until the binder has bound all of `waiting`.
async fn bind_volumes(
    client: &kube::Client,
    claims: &Informer<PersistentVolumeClaim>,
    node: &str,
    select: &[(String, String)],
    waiting: &[String],
) -> Result<(), String> {
    for (namespace, name) in select {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {vb::SELECTED_NODE: node}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("binding volumes: {e}"))?;
    }
    let bound = |key: &String| {
        claims.get(key).is_some_and(|c| {
            let named = c
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            let completed = c
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(vb::BIND_COMPLETED));
            named && completed
        })
    };
    let deadline = Instant::now() + BIND_TIMEOUT;
    while !waiting.iter().all(bound) {
        if Instant::now() >= deadline {
            return Err("binding volumes: context deadline exceeded".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// xorshift64: tie-breaking needs no cryptographic randomness.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// How many feasible nodes to find before scoring, as kube-scheduler's adaptive
/// `percentageOfNodesToScore`: all of a small cluster, then a shrinking share
/// (50 % minus 1 % per 125 nodes, at least 5 %) but never fewer than 100 nodes.
pub(crate) fn feasible_nodes_to_find(total: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if total < MIN_FEASIBLE {
        return total.max(1);
    }
    let percent = 50usize.saturating_sub(total / 125).max(5);
    (total * percent / 100).max(MIN_FEASIBLE)
}
