//! The DaemonSet controller: one pod on every node the template may run on, as
//! kube-controller-manager's `daemonset-controller` keeps them.
//!
//! A node is eligible when it satisfies the template's `nodeSelector` and
//! required node affinity and every NoSchedule/NoExecute taint is tolerated;
//! a pod already there stays despite a new NoSchedule taint, as in Kubernetes.
//! Pods get the tolerations Kubernetes adds to every daemon pod (not-ready,
//! unreachable, the pressure conditions, unschedulable, and network-unavailable
//! for host-network pods) and are pinned to their node with a required node
//! affinity on `metadata.name`, so the default scheduler binds them. Pods carry
//! the `controller-revision-hash` of the template's ControllerRevision; with the
//! RollingUpdate strategy old pods are replaced while at most `maxUnavailable`
//! nodes lack an available pod. [`plan`] is the pure decision; the rest writes.

use crate::history::{self, REVISION_LABEL};
use crate::nodes::{selects_node, untolerated};
use crate::util::{controlled_by, is_available, is_ready, pod_from_template, selector_matches};
use crate::{Config, Result, work};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The label with the DaemonSet generation a pod was made from (deprecated in
/// Kubernetes, still written).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The tolerations every daemon pod gets, so it runs (or keeps running) on
/// nodes that would repel ordinary pods.
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    for (key, effect) in wanted {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.operator.as_deref() == Some("Exists")
                && t.effect.as_deref() == Some(effect)
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some(effect.to_string()),
                ..Default::default()
            });
        }
    }
    tolerations
}

/// Pins `spec` to `node` with a required node affinity on `metadata.name`,
/// replacing any such field requirement the template had.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let requirement = NodeSelectorRequirement {
        key: "metadata.name".to_string(),
        operator: "In".to_string(),
        values: Some(vec![node.to_string()]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let selector = node_affinity
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if selector.node_selector_terms.is_empty() {
        selector
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut selector.node_selector_terms {
        term.match_fields = Some(vec![requirement.clone()]);
    }
}

/// Whether a daemon pod should run on `node`, and whether one already there may stay.
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if !selects_node(spec, node) {
        return (false, false);
    }
    let tolerations = daemon_tolerations(spec);
    if !untolerated(node, &tolerations, "NoExecute").is_empty() {
        return (false, false);
    }
    if !untolerated(node, &tolerations, "NoSchedule").is_empty() {
        return (false, true);
    }
    (true, true)
}

/// The node a daemon pod is for: where it is bound, else where its affinity pins it.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.as_deref().unwrap_or_default())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// What one reconcile does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes that need a pod.
    pub create: Vec<String>,
    /// Pods to delete, with whether each is a failed pod (reported as such).
    pub delete: Vec<(Arc<Pod>, bool)>,
    /// The status the pods give now.
    pub status: DaemonSetStatus,
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// Decides pods to create and delete for `ds` over `nodes`, given its `pods`
/// and the current template `hash`.
pub fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>], hash: &str) -> Plan {
    let spec = ds.spec.clone().unwrap_or_default();
    let template = spec.template.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        });
    }
    let mut plan = Plan::default();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        ..Default::default()
    };
    let (mut available, mut updated) = (0, 0);
    // Nodes that should run a pod, with the pod they run (if any) after this pass.
    let mut running: Vec<(String, Option<Arc<Pod>>)> = Vec::new();
    let mut known = HashSet::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        known.insert(name.clone());
        let (run, keep) = should_run(&template, node);
        let on_node = by_node.get(&name).cloned().unwrap_or_default();
        let (failed, alive): (Vec<_>, Vec<_>) = on_node
            .into_iter()
            .partition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        plan.delete.extend(failed.into_iter().map(|p| (p, true)));
        if run {
            status.desired_number_scheduled += 1;
            if let Some(first) = alive.first() {
                status.current_number_scheduled += 1;
                status.number_ready += i32::from(is_ready(first));
                available += i32::from(is_available(first, min_ready));
                updated += i32::from(hash_of(first) == Some(hash));
            }
        } else if !alive.is_empty() {
            status.number_misscheduled += 1;
        }
        if run || keep {
            match alive.split_first() {
                None if run => {
                    plan.create.push(name.clone());
                    running.push((name, None));
                }
                None => {}
                Some((first, extra)) => {
                    // One pod per node: the oldest stays.
                    plan.delete.extend(extra.iter().map(|p| (p.clone(), false)));
                    if run {
                        running.push((name, Some(first.clone())));
                    }
                }
            }
        } else {
            plan.delete.extend(alive.into_iter().map(|p| (p, false)));
        }
    }
    // Pods for nodes that no longer exist.
    for (node, list) in &by_node {
        if !known.contains(node) {
            plan.delete.extend(list.iter().map(|p| (p.clone(), false)));
        }
    }
    status.number_available = Some(available);
    status.number_unavailable = Some(status.desired_number_scheduled - available);
    status.updated_number_scheduled = Some(updated);

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate" {
        let desired = status.desired_number_scheduled;
        let max_unavailable = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_unavailable.clone())
            .map_or(1, |v| scaled(&v, desired, true))
            .max(1);
        let mut unavailable = running
            .iter()
            .filter(|(_, pod)| pod.as_ref().is_none_or(|p| !is_available(p, min_ready)))
            .count();
        let budget = usize::try_from(max_unavailable).unwrap_or(1);
        for (_, pod) in &running {
            let Some(pod) = pod else { continue };
            if hash_of(pod) == Some(hash) {
                continue;
            }
            if !is_available(pod, min_ready) {
                // Already unavailable: replacing it costs nothing.
                plan.delete.push((pod.clone(), false));
            } else if unavailable < budget {
                unavailable += 1;
                plan.delete.push((pod.clone(), false));
            }
        }
    }
    plan.status = status;
    plan
}

/// An int-or-percent of `total`, rounded up or down.
pub(crate) fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

#[derive(Default)]
struct Expected {
    creating: HashSet<String>,
    deleting: HashSet<String>,
    since: Option<Instant>,
}

/// The DaemonSet controller.
pub struct Controller {
    client: kube::Client,
    daemonsets: Informer<DaemonSet>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    queue: WorkQueue,
    recorder: Recorder,
    expected: Mutex<HashMap<String, Expected>>,
}

impl Controller {
    /// A controller over the shared informers.
    pub fn new(
        config: &Config,
        daemonsets: Informer<DaemonSet>,
        pods: Informer<Pod>,
        nodes: Informer<Node>,
        revisions: Informer<ControllerRevision>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        daemonsets.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        pods.on_change(move |change| {
            let mut pods = vec![change.object().clone()];
            if let Change::Updated { old, .. } = change {
                pods.push(old.clone());
            }
            for pod in pods {
                if let Some(owner) = crate::util::controller_of(&pod.metadata)
                    && owner.kind == "DaemonSet"
                {
                    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                    q.add(&format!("{ns}/{}", owner.name));
                }
            }
        });
        // Any node change may change eligibility: look at every DaemonSet.
        let q = queue.clone();
        let all = daemonsets.clone();
        nodes.on_change(move |_| {
            for ds in all.list() {
                q.add(&key_of(&ds.metadata));
            }
        });
        Self {
            client: config.client.clone(),
            daemonsets,
            pods,
            nodes,
            revisions,
            queue,
            recorder: Recorder::new(config.client.clone(), "daemonset-controller", &config.host),
            expected: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.daemonsets.wait_synced().await;
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.revisions.wait_synced().await;
        work("daemonset", self.queue.clone(), |key| self.reconcile(key)).await
    }

    fn caught_up(&self, key: &str) -> bool {
        let mut all = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(exp) = all.get_mut(key) else {
            return true;
        };
        let (namespace, _) = kite_client::split_key(key);
        let pod = |name: &String| self.pods.get(&format!("{namespace}/{name}"));
        exp.creating.retain(|name| pod(name).is_none());
        exp.deleting
            .retain(|name| pod(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        let expired = exp.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (exp.creating.is_empty() && exp.deleting.is_empty()) || expired {
            all.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut all = self.expected.lock().unwrap_or_else(PoisonError::into_inner);
        let exp = all.entry(key.to_string()).or_default();
        exp.creating.extend(created);
        exp.deleting.extend(deleted);
        exp.since = Some(Instant::now());
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(ds) = self.daemonsets.get(&key) else {
            self.expected
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            return Ok(None);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let namespace = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let pods: Vec<Arc<Pod>> = self.pods.filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && controlled_by(&p.metadata, &uid)
                && selector_matches(&spec.selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        });
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| hash_of(p).map(str::to_string))
            .collect();
        let current = history::sync(
            &self.client,
            &self.revisions,
            &ds.metadata,
            "DaemonSet",
            &spec.template,
            ds.status.as_ref().and_then(|s| s.collision_count),
            spec.revision_history_limit.unwrap_or(10),
            &in_use,
        )
        .await?;
        let nodes = self.nodes.list();
        let plan = plan(&ds, &nodes, &pods, &current.hash);
        if self.caught_up(&key) {
            self.apply(&key, &ds, &plan, &current.hash).await?;
        }
        let old = ds.status.clone().unwrap_or_default();
        let status = DaemonSetStatus {
            conditions: old.conditions.clone(),
            ..plan.status
        };
        if status != old {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({"status": status});
            match api
                .patch_status(
                    ds.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        // Availability after minReadySeconds changes with time alone.
        let wait = spec.min_ready_seconds.filter(|s| *s > 0).map(|s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0)) + Duration::from_millis(100)
        });
        Ok(wait.filter(|_| status.number_available != Some(status.desired_number_scheduled)))
    }

    async fn apply(&self, key: &str, ds: &DaemonSet, plan: &Plan, hash: &str) -> Result<()> {
        let namespace = ds.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let reference = ds.object_ref(&());
        let mut deleted = Vec::new();
        let mut failure = None;
        let mut seen = HashSet::new();
        for (pod, failed) in &plan.delete {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if !seen.insert(name.clone()) {
                continue;
            }
            if *failed {
                self.recorder.publish(
                    reference.clone(),
                    WARNING,
                    "FailedDaemonPod",
                    &format!(
                        "Found failed daemon pod {namespace}/{name} on node {}, will try to kill it",
                        target_node(pod).unwrap_or_default()
                    ),
                );
            }
            match crate::util::delete_pod(&api, pod, &self.recorder, &reference).await {
                Ok(true) => deleted.push(name),
                Ok(false) => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let mut created = Vec::new();
        if failure.is_none() {
            let pods: Vec<Pod> = plan
                .create
                .iter()
                .map(|node| self.pod_for(ds, node, hash))
                .collect();
            let params = PostParams::default();
            let results =
                futures::future::join_all(pods.iter().map(|p| api.create(&params, p))).await;
            for result in results {
                match result {
                    Ok(pod) => {
                        let name = pod.metadata.name.unwrap_or_default();
                        self.recorder.publish(
                            reference.clone(),
                            NORMAL,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        );
                        created.push(name);
                    }
                    Err(error) => {
                        self.recorder.publish(
                            reference.clone(),
                            WARNING,
                            "FailedCreate",
                            &format!("Error creating: {error}"),
                        );
                        failure = Some(error);
                    }
                }
            }
        }
        self.expect(key, created, deleted);
        match failure {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    fn pod_for(&self, ds: &DaemonSet, node: &str, hash: &str) -> Pod {
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut pod = pod_from_template(&template, "apps/v1", "DaemonSet", &ds.metadata);
        pod.metadata.generate_name =
            Some(format!("{}-", ds.metadata.name.as_deref().unwrap_or("ds")));
        let labels = pod.metadata.labels.get_or_insert_default();
        labels.insert(REVISION_LABEL.to_string(), hash.to_string());
        labels.insert(
            TEMPLATE_GENERATION_LABEL.to_string(),
            ds.metadata.generation.unwrap_or(1).to_string(),
        );
        let spec = pod.spec.get_or_insert_default();
        spec.tolerations = Some(daemon_tolerations(spec));
        pin_to_node(spec, node);
        pod
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                                          "spec": {"taints": taints}}))
            .expect("node"),
        )
    }

    fn ds(template_spec: serde_json::Value, strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "d1", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}},
        }))
        .expect("ds")
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                             "labels": {"app": "agent", REVISION_LABEL: hash},
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .expect("pod"),
        )
    }

    fn spec() -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": {"role": "edge"}})
    }

    #[test]
    fn pods_go_to_eligible_nodes_only() {
        let nodes = vec![
            node("a", json!({"role": "edge"}), json!([])),
            node("b", json!({"role": "core"}), json!([])),
            node(
                "c",
                json!({"role": "edge"}),
                json!([{"key": "x", "effect": "NoSchedule"}]),
            ),
            // Daemon pods tolerate an unreachable or not-ready node.
            node(
                "d",
                json!({"role": "edge"}),
                json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            ),
        ];
        let p = plan(&ds(spec(), json!({})), &nodes, &[], "h1");
        assert_eq!(p.create, vec!["a".to_string(), "d".to_string()]);
        assert_eq!(p.status.desired_number_scheduled, 2);
        assert_eq!(p.status.number_unavailable, Some(2));
    }

    #[test]
    fn a_new_no_schedule_taint_keeps_the_pod_but_no_execute_evicts_it() {
        let nodes = vec![
            node(
                "c",
                json!({"role": "edge"}),
                json!([{"key": "x", "effect": "NoSchedule"}]),
            ),
            node(
                "e",
                json!({"role": "edge"}),
                json!([{"key": "x", "effect": "NoExecute"}]),
            ),
            node("f", json!({"role": "core"}), json!([])),
        ];
        let pods = vec![
            pod("p1", "c", "h1", true),
            pod("p2", "e", "h1", true),
            pod("p3", "f", "h1", true),
        ];
        let p = plan(&ds(spec(), json!({})), &nodes, &pods, "h1");
        let deleted: Vec<_> = p
            .delete
            .iter()
            .map(|(p, _)| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(deleted, vec!["p2", "p3"]);
        assert!(p.create.is_empty());
        assert_eq!(p.status.number_misscheduled, 3);
    }

    #[test]
    fn rolling_update_replaces_at_most_max_unavailable_ready_pods() {
        let nodes: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| node(n, json!({"role": "edge"}), json!([])))
            .collect();
        let pods = vec![
            pod("p1", "a", "old", true),
            pod("p2", "b", "old", true),
            pod("p3", "c", "old", false),
        ];
        let p = plan(
            &ds(
                spec(),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
            ),
            &nodes,
            &pods,
            "new",
        );
        let deleted: Vec<_> = p
            .delete
            .iter()
            .map(|(p, _)| p.metadata.name.clone().unwrap_or_default())
            .collect();
        // p3 is unavailable already and the budget of one is spent on it.
        assert_eq!(deleted, vec!["p3"]);
        let two = plan(
            &ds(
                spec(),
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "34%"}}),
            ),
            &nodes,
            &pods,
            "new",
        );
        assert_eq!(two.delete.len(), 2);
        let on_delete = plan(
            &ds(spec(), json!({"type": "OnDelete"})),
            &nodes,
            &pods,
            "new",
        );
        assert!(on_delete.delete.is_empty());
        assert_eq!(on_delete.status.updated_number_scheduled, Some(0));
    }

    #[test]
    fn failed_and_duplicate_pods_are_deleted() {
        let nodes = vec![node("a", json!({"role": "edge"}), json!([]))];
        let mut failed = (*pod("p0", "a", "h1", false)).clone();
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        let pods = vec![
            Arc::new(failed),
            pod("p1", "a", "h1", true),
            pod("p2", "a", "h1", true),
        ];
        let p = plan(&ds(spec(), json!({})), &nodes, &pods, "h1");
        let deleted: Vec<_> = p
            .delete
            .iter()
            .map(|(p, f)| (p.metadata.name.clone().unwrap_or_default(), *f))
            .collect();
        assert_eq!(
            deleted,
            vec![("p0".to_string(), true), ("p2".to_string(), false)]
        );
    }

    #[test]
    fn pods_are_pinned_by_node_affinity_and_tolerate_node_conditions() {
        let mut spec: PodSpec =
            serde_json::from_value(json!({"containers": [], "hostNetwork": true})).expect("spec");
        pin_to_node(&mut spec, "a");
        let pod: Pod = serde_json::from_value(json!({"spec": spec})).expect("pod");
        assert_eq!(target_node(&pod).as_deref(), Some("a"));
        let keys: Vec<_> = daemon_tolerations(&spec)
            .into_iter()
            .filter_map(|t| t.key)
            .collect();
        assert!(keys.contains(&"node.kubernetes.io/network-unavailable".to_string()));
        assert_eq!(keys.len(), 7);
    }
}
