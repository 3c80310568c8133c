//! Preemption, as kube-scheduler's DefaultPreemption plugin does it: for a pod
//! that fits nowhere, on each node where removing pods could help, take away
//! every pod of lower priority, check the pod fits, then give back as many of
//! them as still let it fit (highest priority first); the victims are the
//! rest. The node whose victims matter least wins: the lowest highest-victim
//! priority, then the lowest sum of priorities, then the fewest victims.

use crate::filter::{self, PodFacts};
use crate::node_info::{NodeInfo, PodUsage};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

/// A node and the pods to evict from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node to nominate.
    pub node: String,
    /// Keys (`namespace/name`) of the pods to evict, highest priority first.
    pub victims: Vec<String>,
}

/// A node and the pods counted on it, by key: what preemption weighs.
pub type NodePods<'a> = (&'a NodeInfo, Vec<(String, Arc<Pod>)>);

/// A pod's priority (`spec.priority`, 0 when unset).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The best candidate among `nodes` (each with its pods, by key), if any.
pub fn select(facts: &PodFacts<'_>, nodes: &[NodePods<'_>]) -> Option<Candidate> {
    let incoming = priority(facts.pod);
    let mut best: Option<((i32, i64, usize), Candidate)> = None;
    for (info, pods) in nodes {
        let mut lower: Vec<&(String, Arc<Pod>)> = pods
            .iter()
            .filter(|(_, pod)| priority(pod) < incoming)
            .collect();
        if lower.is_empty() {
            continue;
        }
        let mut trial = (*info).clone();
        for (key, _) in &lower {
            trial.remove_pod(key);
        }
        if filter::check(facts, &trial).is_err() {
            continue;
        }
        // Reprieve the most important first.
        lower.sort_by_key(|(key, pod)| (std::cmp::Reverse(priority(pod)), key.clone()));
        let mut victims = Vec::new();
        for (key, pod) in lower {
            trial.add_pod(key, PodUsage::of(pod));
            if filter::check(facts, &trial).is_err() {
                trial.remove_pod(key);
                victims.push((key.clone(), priority(pod)));
            }
        }
        if victims.is_empty() {
            continue;
        }
        let rank = (
            victims.iter().map(|(_, p)| *p).max().unwrap_or(i32::MIN),
            victims.iter().map(|(_, p)| i64::from(*p)).sum::<i64>(),
            victims.len(),
        );
        let candidate = Candidate {
            node: info.name().to_string(),
            victims: victims.into_iter().map(|(k, _)| k).collect(),
        };
        if best
            .as_ref()
            .is_none_or(|(r, c)| (rank, &candidate.node) < (*r, &c.node))
        {
            best = Some((rank, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn node(name: &str, cpu: &str) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .expect("node");
        NodeInfo::new(Arc::new(node))
    }

    fn pod(name: &str, cpu: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"priority": priority, "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .expect("pod"),
        )
    }

    fn with(mut info: NodeInfo, pods: &[Arc<Pod>]) -> (NodeInfo, Vec<(String, Arc<Pod>)>) {
        let mut keyed = Vec::new();
        for p in pods {
            let key = format!("default/{}", p.metadata.name.as_deref().unwrap_or_default());
            info.add_pod(&key, PodUsage::of(p));
            keyed.push((key, p.clone()));
        }
        (info, keyed)
    }

    #[test]
    fn the_fewest_least_important_pods_go() {
        let (a, a_pods) = with(
            node("a", "2"),
            &[pod("a-low", "1", 1), pod("a-mid", "1", 5)],
        );
        let (b, b_pods) = with(
            node("b", "2"),
            &[pod("b-mid", "1", 5), pod("b-mid2", "1", 5)],
        );
        let incoming = pod("vip", "1", 10);
        let facts = PodFacts::new(&incoming);
        let candidate = select(&facts, &[(&a, a_pods), (&b, b_pods)]).expect("candidate");
        assert_eq!(
            candidate,
            Candidate {
                node: "a".into(),
                victims: vec!["default/a-low".into()]
            }
        );
    }

    #[test]
    fn equal_or_higher_priority_pods_are_never_victims() {
        let (a, a_pods) = with(node("a", "1"), &[pod("peer", "1", 10)]);
        let incoming = pod("vip", "1", 10);
        assert_eq!(select(&PodFacts::new(&incoming), &[(&a, a_pods)]), None);
        // Nor does evicting help when the pod cannot fit even on an empty node.
        let (small, pods) = with(node("small", "1"), &[pod("low", "1", 0)]);
        let huge = pod("huge", "2", 10);
        assert_eq!(select(&PodFacts::new(&huge), &[(&small, pods)]), None);
    }
}
