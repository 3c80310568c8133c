//! Preemption, as kube-scheduler's DefaultPreemption plugin does it: for a pod
//! that fits nowhere, on each node where removing pods could help, take away
//! every pod of lower priority, check the pod fits, then give back as many of
//! them as still let it fit (highest priority first); the victims are the
//! rest. Pods whose eviction would break a PodDisruptionBudget are given
//! back first, so they are victims only when nothing else makes room. The
//! node whose victims matter least wins: the fewest budget violations, then
//! the lowest highest-victim priority, then the lowest sum of priorities,
//! then the fewest victims.

use crate::filter::{self, PodFacts};
use crate::node_info::{NodeInfo, PodUsage};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What preemption needs of a PodDisruptionBudget.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    namespace: String,
    selector: LabelSelector,
    /// `status.disruptionsAllowed`.
    allowed: i32,
    /// Pods the budget already counts as disrupted (`status.disruptedPods`).
    disrupted: BTreeSet<String>,
}

impl Budget {
    /// The budget's view of `pdb`; `None` without a selector (it covers no pod).
    pub fn of(pdb: &PodDisruptionBudget) -> Option<Self> {
        let selector = pdb.spec.as_ref()?.selector.clone()?;
        let status = pdb.status.as_ref();
        Some(Self {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            selector,
            allowed: status.map_or(0, |s| s.disruptions_allowed),
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        })
    }

    fn covers(&self, pod: &Pod) -> bool {
        static NONE: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        pod.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && kite_api::matching::selector_matches(
                &self.selector,
                pod.metadata.labels.as_ref().unwrap_or(&NONE),
            )
    }
}

/// A pod and its key (`namespace/name`).
type KeyedPod = (String, Arc<Pod>);

/// Splits `pods` (most important first) into those whose eviction, in this
/// order, would take some budget below zero and those it would not.
fn split_by_budgets<'p>(
    pods: Vec<&'p KeyedPod>,
    budgets: &[Budget],
) -> (Vec<&'p KeyedPod>, Vec<&'p KeyedPod>) {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for entry in pods {
        let pod = &entry.1;
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let mut violates = false;
        for (budget, left) in budgets.iter().zip(allowed.iter_mut()) {
            // A pod the budget already counts as disrupted costs it nothing more.
            if budget.covers(pod) && !budget.disrupted.contains(name) {
                *left -= 1;
                violates |= *left < 0;
            }
        }
        if violates {
            violating.push(entry);
        } else {
            fine.push(entry);
        }
    }
    (violating, fine)
}

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
pub fn select(
    facts: &PodFacts<'_>,
    nodes: &[NodePods<'_>],
    budgets: &[Budget],
) -> Option<Candidate> {
    let incoming = priority(facts.pod);
    let mut best: Option<((usize, i32, i64, usize), Candidate)> = None;
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
        // Reprieve the most important first, those a budget protects before the rest.
        lower.sort_by_key(|(key, pod)| (std::cmp::Reverse(priority(pod)), key.clone()));
        let (violating, fine) = split_by_budgets(lower, budgets);
        let mut victims = Vec::new();
        let mut violations = 0;
        for (protected, group) in [(true, violating), (false, fine)] {
            for (key, pod) in group {
                trial.add_pod(key, PodUsage::of(pod));
                if filter::check(facts, &trial).is_err() {
                    trial.remove_pod(key);
                    victims.push((key.clone(), priority(pod)));
                    violations += usize::from(protected);
                }
            }
        }
        if victims.is_empty() {
            continue;
        }
        let rank = (
            violations,
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
        let candidate = select(&facts, &[(&a, a_pods), (&b, b_pods)], &[]).expect("candidate");
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
        assert_eq!(
            select(&PodFacts::new(&incoming), &[(&a, a_pods)], &[]),
            None
        );
        // Nor does evicting help when the pod cannot fit even on an empty node.
        let (small, pods) = with(node("small", "1"), &[pod("low", "1", 0)]);
        let huge = pod("huge", "2", 10);
        assert_eq!(select(&PodFacts::new(&huge), &[(&small, pods)], &[]), None);
    }

    fn labelled(name: &str, cpu: &str, priority: i32, app: &str) -> Arc<Pod> {
        let mut p = (*pod(name, cpu, priority)).clone();
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        Arc::new(p)
    }

    fn budget(app: &str, allowed: i32) -> Budget {
        Budget::of(
            &serde_json::from_value(json!({
                "metadata": {"name": app, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 0, "desiredHealthy": 0,
                           "expectedPods": 0},
            }))
            .expect("pdb"),
        )
        .expect("budget")
    }

    #[test]
    fn pods_a_budget_protects_go_only_when_nothing_else_makes_room() {
        // On one node: the protected pod has the lower priority, yet the
        // unprotected one goes.
        let (a, a_pods) = with(
            node("a", "2"),
            &[
                labelled("db", "1", 1, "db"),
                labelled("batch", "1", 5, "batch"),
            ],
        );
        let incoming = pod("vip", "1", 10);
        let facts = PodFacts::new(&incoming);
        let candidate =
            select(&facts, &[(&a, a_pods.clone())], &[budget("db", 0)]).expect("candidate");
        assert_eq!(candidate.victims, vec!["default/batch".to_string()]);
        // With room in the budget, the least important goes as usual.
        let candidate =
            select(&facts, &[(&a, a_pods.clone())], &[budget("db", 1)]).expect("candidate");
        assert_eq!(candidate.victims, vec!["default/db".to_string()]);
        // Across nodes, the one without violations wins even with more important victims.
        let (b, b_pods) = with(node("b", "1"), &[labelled("db-2", "1", 0, "db")]);
        let (c, c_pods) = with(node("c", "1"), &[labelled("web", "1", 8, "web")]);
        let big = pod("big", "1", 10);
        let candidate = select(
            &PodFacts::new(&big),
            &[(&b, b_pods), (&c, c_pods)],
            &[budget("db", 0)],
        )
        .expect("candidate");
        assert_eq!(candidate.node, "c");
    }
}
