//! Which nodes a pod may run on, as the DaemonSet controller judges it before
//! the scheduler does: `nodeSelector`, required node affinity and taints (the
//! taint matching itself is `kite_api::taints`, shared with the scheduler).

use k8s_openapi::api::core::v1::{Node, PodSpec, Taint, Toleration};
use std::collections::BTreeMap;

/// The node's taints with `effect` that none of `tolerations` tolerates.
pub(crate) fn untolerated<'a>(
    node: &'a Node,
    tolerations: &[Toleration],
    effect: &str,
) -> Vec<&'a Taint> {
    kite_api::taints::untolerated(taints_of(node), tolerations, effect)
}

/// The node's taints.
pub(crate) fn taints_of(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// Whether `node` satisfies the pod's `nodeSelector` and required node affinity.
pub(crate) fn selects_node(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or_default();
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
        // Terms are ORed; no terms match nothing.
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| kite_api::matching::term_matches(term, labels, name)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn affinity_terms_are_ored_and_their_requirements_anded() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8"}}
        }))
        .expect("node");
        let spec = |affinity: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": affinity}}}}))
            .expect("spec")
        };
        assert!(selects_node(
            &spec(
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                         {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])
            ),
            &node
        ));
        assert!(!selects_node(
            &spec(json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "cores", "operator": "Gt", "values": ["8"]}]}])),
            &node
        ));
    }
}
