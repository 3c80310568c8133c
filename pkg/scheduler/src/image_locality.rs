//! ImageLocality scoring (weight 1 in kube-scheduler's default profile):
//! nodes that already hold the pod's images score higher, by image size,
//! scaled by how many nodes hold each image (so one node with a popular
//! image does not draw every pod), between 23 MB and 1000 MB per container.

use crate::node_info::NodeInfo;
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// `image` as the runtime names it: registry, repository and tag
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if let Some(digest) = digest {
        full = format!("{full}@{digest}");
    } else if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// The size of `image` if `node` reports holding it (under any of its names).
fn held(node: &NodeInfo, image: &str) -> Option<i64> {
    node.node
        .status
        .as_ref()
        .and_then(|s| s.images.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|i| i.names.iter().flatten().any(|n| n == image))
        .map(|i| i.size_bytes.unwrap_or(0))
}

/// Scores 0–100 of `nodes` for `pod`, knowing every node in `all`.
pub fn scores(pod: &Pod, nodes: &[&NodeInfo], all: &HashMap<String, NodeInfo>) -> Vec<i64> {
    let images: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.as_deref())
                .map(normalize)
                .collect()
        })
        .unwrap_or_default();
    if images.is_empty() || all.is_empty() {
        return vec![0; nodes.len()];
    }
    let holders: HashMap<&str, usize> = images
        .iter()
        .map(|image| {
            let count = all.values().filter(|n| held(n, image).is_some()).count();
            (image.as_str(), count)
        })
        .collect();
    let total = all.len() as i64;
    let max = MAX_CONTAINER_THRESHOLD * images.len() as i64;
    nodes
        .iter()
        .map(|node| {
            let sum: i64 = images
                .iter()
                .filter_map(|image| {
                    let size = held(node, image)?;
                    let spread = holders.get(image.as_str()).copied().unwrap_or(0) as i64;
                    Some(size * spread / total)
                })
                .sum();
            let clamped = sum.clamp(MIN_THRESHOLD, max);
            100 * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;
    use std::sync::Arc;

    fn node(name: &str, images: serde_json::Value) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"images": images},
        }))
        .expect("node");
        NodeInfo::new(Arc::new(node))
    }

    #[test]
    fn names_are_normalised_as_docker_does() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            normalize("library/busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            normalize("registry.local:5000/app"),
            "registry.local:5000/app:latest"
        );
        assert_eq!(
            normalize("busybox@sha256:ab"),
            "docker.io/library/busybox@sha256:ab"
        );
    }

    #[test]
    fn a_node_holding_a_big_image_scores_higher() {
        let big = json!([{"names": ["docker.io/library/app:latest"], "sizeBytes": 600 * MB}]);
        let all: HashMap<String, NodeInfo> = [
            ("with".to_string(), node("with", big)),
            ("without".to_string(), node("without", json!([]))),
        ]
        .into_iter()
        .collect();
        let pod: Pod = serde_json::from_value(
            json!({"spec": {"containers": [{"name": "c", "image": "app"}]}}),
        )
        .expect("pod");
        let s = scores(&pod, &[&all["with"], &all["without"]], &all);
        // 600 MB held by one of two nodes counts 300 MB: (300 - 23) / (1000 - 23).
        assert_eq!(s, [28, 0]);
    }
}
