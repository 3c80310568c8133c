//! The node lifecycle controller, as kube-controller-manager's
//! `node-lifecycle-controller` runs it: it notices a kubelet that stops
//! renewing its Lease in `kube-node-lease` and posting the Ready condition's
//! heartbeat, turns the node's conditions `Unknown` after
//! `--node-monitor-grace-period`, keeps the condition taints
//! (`node.kubernetes.io/unreachable`, `not-ready`, the pressure taints) in step
//! with the conditions, and marks the pods of a node that is not ready
//! `Ready=False` so Services stop sending them traffic. Evicting pods from
//! NoExecute taints is [`taint_eviction`]'s job.
//!
//! Like kube, health is judged by when this controller *saw* the lease or the
//! heartbeat change (its own clock), never by comparing the kubelet's clock
//! with ours; a restart gives every node a fresh grace period.

pub mod taint_eviction;

use crate::{Config, Result, work};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kite_api::taints::{NO_EXECUTE, NO_SCHEDULE, NOT_READY, UNREACHABLE};
use kite_client::{Informer, Recorder, WorkQueue, events, key_of};
use kube::api::{Api, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Where kubelets renew their Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a node that never posted a Ready condition gets
/// (kube-controller-manager's `--node-startup-grace-period`).
pub const STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// How often an unhealthy node is looked at again (`--node-monitor-period`).
const MONITOR_PERIOD: Duration = Duration::from_secs(5);

/// The conditions a silent kubelet leaves `Unknown` (NetworkUnavailable is
/// the network's, not the kubelet's).
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What this controller last saw of a node's kubelet.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// When the kubelet was last heard from, by this controller's clock.
    pub probe: Timestamp,
    heartbeat: Option<Timestamp>,
    renew: Option<Timestamp>,
    /// The node's pods were marked not ready since it stopped being Ready.
    pods_marked: bool,
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The status of the node's Ready condition, if it has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// Updates what was `saved` of the node's health with the node and its Lease
/// as they are at `now`: a new heartbeat or a later renewal means the kubelet
/// was heard from now.
pub fn observe(
    saved: Option<&Health>,
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
) -> Health {
    let ready = condition(node, "Ready");
    let heartbeat = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let mut probe = match saved {
        // A node that never reported is judged from its creation.
        None if ready.is_none() => node
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0),
        None => now,
        Some(saved) if ready.is_some() && saved.heartbeat != heartbeat => now,
        Some(saved) => saved.probe,
    };
    if renew.is_some() && saved.is_none_or(|s| s.renew < renew) {
        probe = now;
    }
    Health {
        probe,
        heartbeat,
        renew,
        pods_marked: saved.is_some_and(|s| s.pods_marked),
    }
}

/// How long the node may stay silent: the startup grace while it never
/// posted a Ready condition, `grace` after.
pub fn grace_for(node: &Node, grace: Duration) -> Duration {
    if condition(node, "Ready").is_some() {
        grace
    } else {
        STARTUP_GRACE_PERIOD
    }
}

/// How long until the node's kubelet counts as silent (zero: it does now).
pub fn time_left(health: &Health, grace: Duration, now: Timestamp) -> Duration {
    let deadline = SignedDuration::try_from(grace)
        .ok()
        .and_then(|g| health.probe.checked_add(g).ok())
        .unwrap_or(Timestamp::MAX);
    if deadline <= now {
        Duration::ZERO
    } else {
        deadline.duration_since(now).unsigned_abs()
    }
}

/// Sets the kubelet's conditions `Unknown` as kube does for a silent kubelet
/// (adding those it never posted); whether anything changed.
pub fn mark_unknown(node: &mut Node, now: Timestamp) -> bool {
    let created = node.metadata.creation_timestamp.clone();
    let conditions = node
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed
}

/// The NoSchedule taints kube derives from conditions and `spec.unschedulable`
/// (TaintNodesByCondition): (taint key, condition, status that sets it).
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    (NOT_READY, "Ready", "False"),
    (UNREACHABLE, "Ready", "Unknown"),
    (
        "node.kubernetes.io/memory-pressure",
        "MemoryPressure",
        "True",
    ),
    ("node.kubernetes.io/disk-pressure", "DiskPressure", "True"),
    ("node.kubernetes.io/pid-pressure", "PIDPressure", "True"),
    (
        "node.kubernetes.io/network-unavailable",
        "NetworkUnavailable",
        "True",
    ),
];
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The node's taints as its conditions call for, or `None` if they already
/// are: the condition taints are added and removed, every other taint is kept
/// as it is. NoExecute taints are only touched once the node has a Ready
/// condition, and a new one records `now` as its `timeAdded`.
pub fn desired_taints(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = crate::nodes::taints_of(node);
    let mut wanted: Vec<(&str, &str)> = CONDITION_TAINTS
        .iter()
        .filter(|(_, type_, status)| condition(node, type_).is_some_and(|c| c.status == *status))
        .map(|(key, ..)| (*key, NO_SCHEDULE))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    let ready = ready_status(node);
    match ready {
        Some("False") => wanted.push((NOT_READY, NO_EXECUTE)),
        Some("Unknown") => wanted.push((UNREACHABLE, NO_EXECUTE)),
        _ => {}
    }
    let managed = |taint: &Taint| match taint.effect.as_str() {
        NO_SCHEDULE => {
            taint.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(k, ..)| *k == taint.key)
        }
        NO_EXECUTE => ready.is_some() && (taint.key == NOT_READY || taint.key == UNREACHABLE),
        _ => false,
    };
    let is_wanted = |t: &Taint| wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e);
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || is_wanted(t))
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !taints.iter().any(|t| t.key == *key && t.effect == *effect) {
            taints.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: (*effect == NO_EXECUTE).then_some(Time(now)),
                value: None,
            });
        }
    }
    (taints.as_slice() != current).then_some(taints)
}

/// The node lifecycle controller (and, in [`Controller::run`], the taint
/// eviction controller beside it).
pub struct Controller {
    client: kube::Client,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    leases: Informer<Lease>,
    queue: WorkQueue,
    grace: Duration,
    recorder: Recorder,
    health: Mutex<HashMap<String, Health>>,
    eviction: taint_eviction::Controller,
}

impl Controller {
    /// A controller over the shared node and pod informers and `leases`
    /// (an informer over [`LEASE_NAMESPACE`]).
    pub fn new(
        config: &Config,
        nodes: Informer<Node>,
        pods: Informer<Pod>,
        leases: Informer<Lease>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        nodes.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        leases.on_change(move |change| {
            q.add(change.object().metadata.name.as_deref().unwrap_or_default());
        });
        let eviction = taint_eviction::Controller::new(config, nodes.clone(), pods.clone());
        Self {
            client: config.client.clone(),
            nodes,
            pods,
            leases,
            queue,
            grace: config.node_monitor_grace_period,
            recorder: Recorder::new(config.client.clone(), "node-controller", &config.host),
            health: Mutex::default(),
            eviction,
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        let Self { eviction, .. } = &self;
        tokio::join!(
            async {
                self.nodes.wait_synced().await;
                self.leases.wait_synced().await;
                self.pods.wait_synced().await;
                work("node-lifecycle", self.queue.clone(), |key| {
                    self.reconcile(key)
                })
                .await
            },
            eviction.run(),
        );
    }

    fn node_event(&self, name: &str, type_: &str, reason: &str, message: &str) {
        // kube names nodes in events by name, with the name as the UID too.
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.into()),
            uid: Some(name.into()),
            ..Default::default()
        };
        self.recorder.publish(reference, type_, reason, message);
    }

    fn save(&self, name: &str, health: Health) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), health);
    }

    async fn reconcile(&self, name: String) -> Result<Option<Duration>> {
        let Some(cached) = self.nodes.get(&name) else {
            self.health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            return Ok(None);
        };
        let now = Timestamp::now();
        let saved = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
            .cloned();
        if saved.is_none() {
            self.node_event(
                &name,
                events::NORMAL,
                "RegisteredNode",
                &format!("Node {name} event: Registered Node {name} in Controller"),
            );
        }
        let lease = self.leases.get(&format!("{LEASE_NAMESPACE}/{name}"));
        let mut health = observe(saved.as_ref(), &cached, lease.as_deref(), now);
        self.save(&name, health.clone());

        let api: Api<Node> = Api::all(self.client.clone());
        let mut node = Arc::unwrap_or_clone(cached);
        let left = time_left(&health, grace_for(&node, self.grace), now);
        if left.is_zero() {
            let was_ready = ready_status(&node) == Some("True");
            if mark_unknown(&mut node, now) {
                tracing::info!(node = %name, "kubelet stopped posting node status");
                node = api
                    .replace_status(&name, &PostParams::default(), &node)
                    .await?;
                // What we wrote is not news from the kubelet.
                health.heartbeat = condition(&node, "Ready")
                    .and_then(|c| c.last_heartbeat_time.as_ref())
                    .map(|t| t.0);
                self.save(&name, health.clone());
                if was_ready {
                    self.node_event(
                        &name,
                        events::NORMAL,
                        "NodeNotReady",
                        &format!("Node {name} status is now: NodeNotReady"),
                    );
                }
            }
        }
        if let Some(taints) = desired_taints(&node, now) {
            node.spec.get_or_insert_default().taints = Some(taints);
            node = api.replace(&name, &PostParams::default(), &node).await?;
        }
        match ready_status(&node) {
            Some("True") | None => health.pods_marked = false,
            Some(_) if !health.pods_marked => {
                self.mark_pods_not_ready(&name).await?;
                health.pods_marked = true;
            }
            Some(_) => {}
        }
        self.save(&name, health);
        Ok(Some(if left.is_zero() {
            MONITOR_PERIOD
        } else {
            left + Duration::from_millis(50)
        }))
    }

    /// Sets the Ready condition of the node's pods False (kube's
    /// MarkPodsNotReady), with a `NodeNotReady` event on each pod changed.
    async fn mark_pods_not_ready(&self, node: &str) -> Result<()> {
        let pods = self
            .pods
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
        for pod in pods {
            let mut pod = Arc::unwrap_or_clone(pod);
            let Some(ready) = pod
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|c| c.iter_mut().find(|c| c.type_ == "Ready"))
            else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".into();
            ready.last_transition_time = Some(Time(Timestamp::now()));
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            match api
                .replace_status(&name, &PostParams::default(), &pod)
                .await
            {
                Ok(updated) => {
                    use kube::Resource;
                    self.recorder.publish(
                        updated.object_ref(&()),
                        events::WARNING,
                        "NodeNotReady",
                        "Node is not ready",
                    );
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    fn node(conditions: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": at(0).to_string()},
            "spec": {"taints": taints},
            "status": {"conditions": conditions},
        }))
        .expect("node")
    }

    fn ready(status: &str, heartbeat: i64) -> serde_json::Value {
        json!([{"type": "Ready", "status": status, "reason": "KubeletReady",
                "lastHeartbeatTime": at(heartbeat).to_string()}])
    }

    fn lease(renewed: i64) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": LEASE_NAMESPACE},
            "spec": {"renewTime": format!("{}", at(renewed))},
        }))
        .expect("lease")
    }

    const GRACE: Duration = Duration::from_secs(40);

    #[test]
    fn a_node_is_silent_grace_after_its_lease_or_heartbeat_last_changed() {
        let n = node(ready("True", 0), json!([]));
        let first = observe(None, &n, Some(&lease(0)), at(1));
        assert_eq!(first.probe, at(1));
        assert_eq!(time_left(&first, GRACE, at(21)), Duration::from_secs(20));
        // Nothing new: the clock runs on.
        let same = observe(Some(&first), &n, Some(&lease(0)), at(30));
        assert_eq!(same.probe, at(1));
        assert_eq!(time_left(&same, GRACE, at(41)), Duration::ZERO);
        // A renewal restarts it, even when the kubelet's clock is behind ours.
        let renewed = observe(Some(&same), &n, Some(&lease(-100)), at(30));
        assert_eq!(renewed.probe, at(1), "an older renewTime is not a renewal");
        let renewed = observe(Some(&same), &n, Some(&lease(10)), at(30));
        assert_eq!(renewed.probe, at(30));
        // So does a new Ready heartbeat without any lease.
        let beat = observe(
            Some(&same),
            &node(ready("True", 5), json!([])),
            None,
            at(35),
        );
        assert_eq!(beat.probe, at(35));
    }

    #[test]
    fn a_node_that_never_reported_gets_the_startup_grace_from_its_creation() {
        let n = node(json!([]), json!([]));
        let health = observe(None, &n, None, at(50));
        assert_eq!(health.probe, at(0));
        assert_eq!(grace_for(&n, GRACE), STARTUP_GRACE_PERIOD);
        assert_eq!(
            time_left(&health, grace_for(&n, GRACE), at(50)),
            Duration::from_secs(10)
        );
        let mut n = n;
        assert!(mark_unknown(&mut n, at(61)));
        let conditions = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .expect("conditions");
        assert_eq!(conditions.len(), 4);
        for c in &conditions {
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusNeverUpdated"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet never posted node status.")
            );
            assert_eq!(c.last_heartbeat_time, Some(Time(at(0))));
        }
    }

    #[test]
    fn silent_kubelets_leave_their_conditions_unknown_once() {
        let mut n = node(
            json!([{"type": "Ready", "status": "True"},
                   {"type": "MemoryPressure", "status": "False"},
                   {"type": "NetworkUnavailable", "status": "False"}]),
            json!([]),
        );
        assert!(mark_unknown(&mut n, at(100)));
        let conditions = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .expect("conditions");
        let ready = &conditions[0];
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "Unknown",
                Some("NodeStatusUnknown"),
                Some("Kubelet stopped posting node status.")
            )
        );
        assert_eq!(ready.last_transition_time, Some(Time(at(100))));
        assert_eq!(
            conditions[2].status, "False",
            "NetworkUnavailable is not the kubelet's"
        );
        assert_eq!(
            conditions.len(),
            5,
            "DiskPressure and PIDPressure were added"
        );
        assert!(
            !mark_unknown(&mut n, at(110)),
            "already Unknown: no new transition"
        );
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    #[test]
    fn condition_taints_follow_ready_and_other_taints_stay() {
        let pair = |k: &str, e: &str| (k.to_string(), e.to_string());
        let own = json!([{"key": "dedicated", "value": "infra", "effect": "NoExecute"}]);
        let unknown =
            desired_taints(&node(ready("Unknown", 0), own.clone()), at(5)).expect("tainted");
        assert_eq!(
            keys(&unknown),
            [
                pair("dedicated", NO_EXECUTE),
                pair(UNREACHABLE, NO_SCHEDULE),
                pair(UNREACHABLE, NO_EXECUTE)
            ]
        );
        assert_eq!(unknown[2].time_added, Some(Time(at(5))));
        assert_eq!(unknown[1].time_added, None);
        // Unreachable becomes not-ready when the kubelet reports False.
        let tainted = serde_json::to_value(&unknown).expect("taints");
        let not_ready =
            desired_taints(&node(ready("False", 0), tainted.clone()), at(9)).expect("swapped");
        assert_eq!(
            keys(&not_ready),
            [
                pair("dedicated", NO_EXECUTE),
                pair(NOT_READY, NO_SCHEDULE),
                pair(NOT_READY, NO_EXECUTE)
            ]
        );
        // Ready again: only the node's own taint is left; nothing to do after.
        let healthy = desired_taints(&node(ready("True", 0), tainted), at(9)).expect("untainted");
        assert_eq!(keys(&healthy), [pair("dedicated", NO_EXECUTE)]);
        assert_eq!(desired_taints(&node(ready("True", 0), own), at(9)), None);
        // Without a Ready condition NoExecute taints are left alone.
        let set = json!([{"key": UNREACHABLE, "effect": "NoExecute"}]);
        assert_eq!(desired_taints(&node(json!([]), set), at(9)), None);
    }
}
