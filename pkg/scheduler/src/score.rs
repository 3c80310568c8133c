//! Scores: of the nodes that fit, which is best?
//!
//! The plugins and weights of kube-scheduler's default profile that apply here:
//! NodeResourcesFit with LeastAllocated (weight 1), NodeResourcesBalancedAllocation
//! (1), NodeAffinity's preferred terms (2) and TaintToleration's PreferNoSchedule
//! count (3). Each plugin yields 0–100 per node; the weighted sum decides.

use crate::filter::{PodFacts, term_matches};
use crate::node_info::NodeInfo;
use k8s_openapi::api::core::v1::Toleration;
use kite_api::taints::tolerates;
use std::collections::BTreeMap;

/// The highest score one plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Weighted total scores of `nodes` (all of which passed the filters) for the pod.
pub fn score(facts: &PodFacts<'_>, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut totals: Vec<i64> = nodes
        .iter()
        .map(|n| least_allocated(facts, n) + balanced_allocation(facts, n))
        .collect();

    let affinity: Vec<i64> = nodes.iter().map(|n| preferred_affinity(facts, n)).collect();
    for (total, s) in totals.iter_mut().zip(normalize(&affinity, false)) {
        *total += 2 * s;
    }
    let tolerations = prefer_no_schedule_tolerations(facts);
    let taints: Vec<i64> = nodes
        .iter()
        .map(|n| count_intolerable(&tolerations, n))
        .collect();
    for (total, s) in totals.iter_mut().zip(normalize(&taints, true)) {
        *total += 3 * s;
    }
    totals
}

/// Scales raw scores to 0–100 by the largest; `reverse` makes fewer better.
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&r| {
            if max == 0 {
                if reverse { MAX_NODE_SCORE } else { 0 }
            } else {
                let s = r * MAX_NODE_SCORE / max;
                if reverse { MAX_NODE_SCORE - s } else { s }
            }
        })
        .collect()
}

/// What a node would use of cpu and memory with this pod: (requested, allocatable).
fn usage_after(facts: &PodFacts<'_>, node: &NodeInfo) -> [(i64, i64); 2] {
    let pod = &facts.usage.non_zero;
    let used = &node.non_zero_requested;
    [
        (used.milli_cpu + pod.milli_cpu, node.allocatable.milli_cpu),
        (used.memory + pod.memory, node.allocatable.memory),
    ]
}

/// LeastAllocated: the more of cpu and memory stays free, the better.
pub fn least_allocated(facts: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    let parts = usage_after(facts, node);
    let sum: i64 = parts
        .iter()
        .map(|&(requested, capacity)| {
            if capacity <= 0 || requested > capacity {
                0
            } else {
                (capacity - requested) * MAX_NODE_SCORE / capacity
            }
        })
        .sum();
    sum / i64::try_from(parts.len()).unwrap_or(1)
}

/// BalancedAllocation: the closer cpu and memory fractions are to each other, the better.
pub fn balanced_allocation(facts: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    let fractions = usage_after(facts, node).map(|(requested, capacity)| {
        if capacity <= 0 {
            1.0
        } else {
            (requested as f64 / capacity as f64).min(1.0)
        }
    });
    // With two resources the standard deviation is half their difference.
    let std = (fractions[0] - fractions[1]).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Sum of the weights of the pod's preferred node-affinity terms the node matches.
pub fn preferred_affinity(facts: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    let empty = BTreeMap::new();
    let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
    facts
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, labels, node.name()))
                .map(|t| i64::from(t.weight))
                .sum()
        })
        .unwrap_or(0)
}

/// How many PreferNoSchedule taints of the node the pod does not tolerate.
pub fn intolerable_prefer_no_schedule(facts: &PodFacts<'_>, node: &NodeInfo) -> i64 {
    count_intolerable(&prefer_no_schedule_tolerations(facts), node)
}

/// The pod's tolerations that can tolerate a PreferNoSchedule taint.
fn prefer_no_schedule_tolerations<'a>(facts: &PodFacts<'a>) -> Vec<&'a Toleration> {
    facts
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect()
}

fn count_intolerable(tolerations: &[&Toleration], node: &NodeInfo) -> i64 {
    let count = node
        .taints
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}
