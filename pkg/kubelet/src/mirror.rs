//! Mirror pods: the API's read-only view of this node's static pods (see
//! [`crate::static_pods`]). Each static pod gets a pod of the same name in
//! the API, annotated `kubernetes.io/config.mirror: <hash>` and owned by the
//! Node, and its status is reported there. A mirror deleted through the API
//! (or one of an older version of the file) is deleted for good and created
//! again, while the static pod keeps running; a mirror whose static pod is
//! gone is deleted.

use crate::static_pods::{self, CONFIG_HASH, CONFIG_MIRROR};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Keeps the mirror pods of one node in line with its static pods.
pub struct Mirrors {
    client: kube::Client,
    node: String,
    /// Names of pods already reported as standing in a static pod's way.
    conflicts: HashSet<String>,
}

impl Mirrors {
    /// Mirrors for the static pods of `node`.
    pub fn new(client: kube::Client, node: &str) -> Self {
        Self {
            client,
            node: node.to_string(),
            conflicts: HashSet::new(),
        }
    }

    /// One pass over `statics` (the static pods wanted now) and `cached` (the
    /// API's pods on this node); returns the mirror pod's UID for each static
    /// pod UID that has an up-to-date mirror.
    pub async fn reconcile(
        &mut self,
        statics: &[Arc<Pod>],
        cached: &[Arc<Pod>],
    ) -> HashMap<String, String> {
        let by_name: HashMap<String, &Arc<Pod>> = cached
            .iter()
            .map(|p| (static_pods::full_name(p), p))
            .collect();
        let mut mirrored = HashMap::new();
        let mut wanted = HashSet::new();
        for pod in statics {
            let name = static_pods::full_name(pod);
            wanted.insert(name.clone());
            let hash = static_pods::annotation(pod, CONFIG_HASH).unwrap_or_default();
            match by_name.get(&name) {
                Some(existing) if !static_pods::is_mirror(existing) => {
                    if self.conflicts.insert(name.clone()) {
                        tracing::warn!(pod = %name,
                            "static pod has the name of a pod in the API that is not its mirror; no mirror pod is created");
                    }
                    continue;
                }
                Some(existing)
                    if static_pods::annotation(existing, CONFIG_MIRROR) == Some(hash)
                        && existing.metadata.deletion_timestamp.is_none() =>
                {
                    if let Some(uid) = &existing.metadata.uid {
                        mirrored.insert(hash.to_string(), uid.clone());
                    }
                    continue;
                }
                Some(outdated) => {
                    tracing::info!(pod = %name, "deleting a mirror pod that is outdated or being deleted");
                    self.delete(outdated).await;
                }
                None => {}
            }
            self.conflicts.remove(&name);
            if let Some(uid) = self.create(pod).await {
                mirrored.insert(hash.to_string(), uid);
            }
        }
        for pod in cached {
            if static_pods::is_mirror(pod) && !wanted.contains(&static_pods::full_name(pod)) {
                tracing::info!(pod = %static_pods::full_name(pod), "deleting the mirror of a static pod that is gone");
                self.delete(pod).await;
            }
        }
        mirrored
    }

    /// Creates the mirror of `pod`; its UID, or `None` when it could not be
    /// created now (the next pass tries again).
    async fn create(&self, pod: &Pod) -> Option<String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        // The owner must be this Node as it is now: asked each time, creating is rare.
        let node_uid = match nodes.get_opt(&self.node).await {
            Ok(Some(node)) => node.metadata.uid?,
            Ok(None) => return None,
            Err(error) => {
                tracing::debug!(%error, "cannot read the node for a mirror pod");
                return None;
            }
        };
        let mirror = mirror_of(pod, &self.node, &node_uid);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => created.metadata.uid,
            Err(kube::Error::Api(e)) if e.code == 409 => None,
            Err(error) => {
                tracing::warn!(%error, pod = %static_pods::full_name(pod), "cannot create mirror pod");
                None
            }
        }
    }

    /// Deletes mirror pod `pod` at once (grace 0), only if it is still that object.
    async fn delete(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(error) => tracing::warn!(%error, pod = %name, "cannot delete mirror pod"),
        }
    }
}

/// The mirror pod of static pod `pod`: its metadata and spec (the API assigns
/// a UID of its own), marked as a mirror and owned by Node `node`.
pub fn mirror_of(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let hash = static_pods::annotation(pod, CONFIG_HASH)
        .unwrap_or_default()
        .to_string();
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.into(), hash);
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_is_marked_owned_by_the_node_and_has_no_uid() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let pod = static_pods::parse(std::path::Path::new("/m/web"), text.as_bytes(), "n").unwrap();
        let mirror = mirror_of(&pod, "n", "node-uid");
        assert!(static_pods::is_mirror(&mirror));
        assert_eq!(
            static_pods::annotation(&mirror, CONFIG_MIRROR),
            pod.metadata.uid.as_deref()
        );
        assert_eq!(
            static_pods::annotation(&mirror, static_pods::CONFIG_SOURCE),
            Some("file")
        );
        assert!(mirror.metadata.uid.is_none());
        assert_eq!(mirror.metadata.name.as_deref(), Some("web-n"));
        assert_eq!(mirror.metadata.labels, pod.metadata.labels);
        let owner = &mirror.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "n", "node-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(mirror.status.is_none());
    }
}
