//! Filters: can this pod run on this node at all?
//!
//! Each filter mirrors a kube-scheduler plugin and runs in the same order
//! (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit); the first that rejects decides the node's reasons, worded
//! exactly as kube-scheduler words them because users and tools grep for them.

use crate::node_info::{HostPort, NodeInfo, PodUsage};
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use kite_api::taints::tolerated;
use std::collections::BTreeMap;

/// Why a node cannot take a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The reasons, as they appear in the `FailedScheduling` message.
    pub reasons: Vec<String>,
    /// Whether removing pods from the node could help (kube-scheduler's
    /// `Unschedulable` as opposed to `UnschedulableAndUnresolvable`).
    pub resolvable: bool,
}

impl Rejection {
    /// A rejection that removing pods could lift.
    pub(crate) fn resolvable(reason: impl Into<String>) -> Self {
        Self {
            reasons: vec![reason.into()],
            resolvable: true,
        }
    }

    /// A rejection that removing pods cannot lift.
    pub(crate) fn unresolvable(reason: impl Into<String>) -> Self {
        Self {
            reasons: vec![reason.into()],
            resolvable: false,
        }
    }
}

/// Everything about a pod the filters and scores need, computed once per attempt.
#[derive(Debug)]
pub struct PodFacts<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its requests and ports.
    pub usage: PodUsage,
}

impl<'a> PodFacts<'a> {
    /// The facts of `pod`.
    pub fn new(pod: &'a Pod) -> Self {
        Self {
            pod,
            usage: PodUsage::of(pod),
        }
    }

    fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }
}

/// Runs every filter; `Ok` when the node fits.
pub fn check(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    node_unschedulable(facts, node)?;
    node_name(facts, node)?;
    taint_toleration(facts, node)?;
    node_affinity(facts, node)?;
    node_ports(facts, node)?;
    resources_fit(facts, node)
}

fn node_unschedulable(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    let unschedulable = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if !tolerated(facts.tolerations(), &taint) {
        return Err(Rejection::unresolvable("node(s) were unschedulable"));
    }
    Ok(())
}

fn node_name(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    match facts.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(wanted) if !wanted.is_empty() && wanted != node.name() => Err(
            Rejection::unresolvable("node(s) didn't match the requested node name"),
        ),
        _ => Ok(()),
    }
}

fn taint_toleration(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    let tolerations = facts.tolerations();
    let untolerated = node.taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerated(tolerations, taint)
    });
    match untolerated {
        Some(taint) => Err(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

fn node_affinity(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    if matches_node_selector_and_affinity(facts.pod, node) {
        Ok(())
    } else {
        Err(Rejection::unresolvable(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}

/// Whether the node satisfies the pod's `nodeSelector` and required node affinity.
pub fn matches_node_selector_and_affinity(pod: &Pod, node: &NodeInfo) -> bool {
    let empty = BTreeMap::new();
    let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
    let Some(spec) = &pod.spec else {
        return true;
    };
    if let Some(selector) = &spec.node_selector
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        // Terms are ORed; an empty list of terms matches nothing.
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, labels, node.name())),
        None => true,
    }
}

pub use kite_api::matching::term_matches;

fn node_ports(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    let conflict = facts
        .usage
        .ports
        .iter()
        .any(|port: &HostPort| node.port_conflicts(port));
    if conflict {
        return Err(Rejection {
            reasons: vec!["node(s) didn't have free ports for the requested pod ports".into()],
            resolvable: true,
        });
    }
    Ok(())
}

fn resources_fit(facts: &PodFacts<'_>, node: &NodeInfo) -> Result<(), Rejection> {
    let mut reasons = Vec::new();
    let mut resolvable = true;
    let allowed_pods = node.allocatable.pods;
    if i64::try_from(node.pods.len()).unwrap_or(i64::MAX) + 1 > allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let want = &facts.usage.requests;
    if !want.is_zero() {
        let have = &node.allocatable;
        let used = &node.requested;
        let mut check = |name: &str, want: i64, have: i64, used: i64| {
            if want > 0 && want > have - used {
                reasons.push(format!("Insufficient {name}"));
                if want > have {
                    resolvable = false;
                }
            }
        };
        check("cpu", want.milli_cpu, have.milli_cpu, used.milli_cpu);
        check("memory", want.memory, have.memory, used.memory);
        check(
            "ephemeral-storage",
            want.ephemeral_storage,
            have.ephemeral_storage,
            used.ephemeral_storage,
        );
        for (name, amount) in &want.scalar {
            check(
                name,
                *amount,
                have.scalar.get(name).copied().unwrap_or(0),
                used.scalar.get(name).copied().unwrap_or(0),
            );
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            reasons,
            resolvable,
        })
    }
}
