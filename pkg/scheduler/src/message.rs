//! The `FailedScheduling` message, built the way kube-scheduler builds its
//! `FitError`: a histogram of reasons over all nodes, sorted as strings, then
//! what preemption concluded for each node.

use crate::filter::Rejection;
use std::collections::BTreeMap;

/// Why no node fits a pod, for the event and the PodScheduled condition.
pub fn fit_error(num_nodes: usize, rejections: &[Rejection], preemption_never: bool) -> String {
    if num_nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut message = format!(
        "0/{num_nodes} nodes are available: {}.",
        histogram(
            rejections
                .iter()
                .flat_map(|r| r.reasons.iter().map(String::as_str))
        )
    );
    message.push_str(" preemption: ");
    if preemption_never {
        message.push_str("not eligible due to preemptionPolicy=Never.");
        return message;
    }
    // Nodes where removing pods could help were tried for victims (kite has no
    // lower-priority pods to evict yet); on the rest preemption cannot help.
    let preemption = rejections.iter().map(|r| {
        if r.resolvable {
            "No preemption victims found for incoming pod"
        } else {
            "Preemption is not helpful for scheduling"
        }
    });
    message.push_str(&format!(
        "0/{num_nodes} nodes are available: {}.",
        histogram(preemption)
    ));
    message
}

/// Why no node fits a pod that preemption has just made room for (the
/// preemption part is empty when it succeeds, so kube-scheduler leaves it out).
pub fn fit_error_preempting(num_nodes: usize, rejections: &[Rejection]) -> String {
    format!(
        "0/{num_nodes} nodes are available: {}.",
        histogram(
            rejections
                .iter()
                .flat_map(|r| r.reasons.iter().map(String::as_str))
        )
    )
}

/// Why no node fits a pod nominated to a node where a lower-priority pod is
/// still terminating: it waits for that pod rather than preempting again.
pub fn fit_error_waiting(num_nodes: usize, rejections: &[Rejection]) -> String {
    format!(
        "{} preemption: not eligible due to a terminating pod on the nominated node.",
        fit_error_preempting(num_nodes, rejections)
    )
}

/// Why no node fits a pod a PreFilter plugin rejected outright: its reason
/// stands alone, and preemption cannot help on any node.
pub fn pre_filter_error(num_nodes: usize, reason: &str, preemption_never: bool) -> String {
    if num_nodes == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let preemption = if preemption_never {
        "not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        format!(
            "0/{num_nodes} nodes are available: {num_nodes} Preemption is not helpful for scheduling."
        )
    };
    format!("0/{num_nodes} nodes are available: {reason}. preemption: {preemption}")
}

/// `"<count> <reason>"` for each distinct reason, sorted as strings and joined by ", ".
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    parts.sort();
    parts.join(", ")
}
