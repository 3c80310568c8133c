//! The `pvc-protection` and `pv-protection` controllers: a deleted claim keeps
//! its `kubernetes.io/pvc-protection` finalizer while a scheduled pod that has
//! not finished uses it, and a deleted volume keeps
//! `kubernetes.io/pv-protection` while it is Bound; then the finalizer goes
//! and the deletion completes. Without this, deleting a claim under a running
//! pod would release the volume and let its provisioner remove the data the
//! pod is still writing.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kite_api::admission::storage_object_in_use_protection::{PV_PROTECTION, PVC_PROTECTION};
use kite_client::{Informer, WorkQueue, key_of, split_key};
use kube::api::{Api, ListParams, Patch, PatchParams};
use std::time::Duration;

/// Whether `pod` keeps `claim` (in the pod's namespace) in use: it is
/// scheduled, names the claim and has not finished.
pub fn uses(pod: &Pod, claim: &str) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    let scheduled = spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    scheduled
        && !finished
        && spec.volumes.iter().flatten().any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        })
}

/// The protection controllers for claims and volumes.
pub struct Controller {
    client: kube::Client,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    pods: Informer<Pod>,
    claim_queue: WorkQueue,
    volume_queue: WorkQueue,
}

impl Controller {
    /// Protection over the shared informers.
    pub fn new(
        config: &Config,
        claims: Informer<PersistentVolumeClaim>,
        volumes: Informer<PersistentVolume>,
        pods: Informer<Pod>,
    ) -> Self {
        let claim_queue = WorkQueue::new();
        let volume_queue = WorkQueue::new();
        let cq = claim_queue.clone();
        claims.on_change(move |change| {
            let claim = change.object();
            if claim.metadata.deletion_timestamp.is_some() {
                cq.add(&key_of(&claim.metadata));
            }
        });
        let vq = volume_queue.clone();
        volumes.on_change(move |change| {
            let volume = change.object();
            if volume.metadata.deletion_timestamp.is_some() {
                vq.add(volume.metadata.name.as_deref().unwrap_or_default());
            }
        });
        // A pod that finished or went away may free the claims it used.
        let (cq, watched) = (claim_queue.clone(), claims.clone());
        pods.on_change(move |change| {
            let pod = change.object();
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                if let Some(source) = &volume.persistent_volume_claim {
                    let key = format!("{namespace}/{}", source.claim_name);
                    if watched
                        .get(&key)
                        .is_some_and(|c| c.metadata.deletion_timestamp.is_some())
                    {
                        cq.add(&key);
                    }
                }
            }
        });
        Self {
            client: config.client.clone(),
            claims,
            volumes,
            pods,
            claim_queue,
            volume_queue,
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.claims.wait_synced().await;
        self.volumes.wait_synced().await;
        self.pods.wait_synced().await;
        tokio::join!(
            work("pvc-protection", self.claim_queue.clone(), |key| {
                self.sync_claim(key)
            }),
            work("pv-protection", self.volume_queue.clone(), |key| {
                self.sync_volume(key)
            }),
        );
    }

    async fn sync_claim(&self, key: String) -> Result<Option<Duration>> {
        let Some(claim) = self.claims.get(&key) else {
            return Ok(None);
        };
        if claim.metadata.deletion_timestamp.is_none() || !has(&claim.metadata, PVC_PROTECTION) {
            return Ok(None);
        }
        let (namespace, name) = split_key(&key);
        let cached = self
            .pods
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace) && uses(p, name));
        if !cached.is_empty() {
            return Ok(None);
        }
        // The cache may not show a pod created a moment ago: ask the API
        // before letting the claim go, as upstream does.
        let live = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await?;
        if live.items.iter().any(|p| uses(p, name)) {
            return Ok(None);
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        remove_finalizer(&api, name, &claim.metadata, PVC_PROTECTION).await
    }

    async fn sync_volume(&self, name: String) -> Result<Option<Duration>> {
        let Some(volume) = self.volumes.get(&name) else {
            return Ok(None);
        };
        if volume.metadata.deletion_timestamp.is_none() || !has(&volume.metadata, PV_PROTECTION) {
            return Ok(None);
        }
        let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if bound {
            return Ok(None);
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        remove_finalizer(&api, &name, &volume.metadata, PV_PROTECTION).await
    }
}

fn has(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Drops `finalizer`, guarded by the resourceVersion the decision saw.
async fn remove_finalizer<K>(
    api: &Api<K>,
    name: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    finalizer: &str,
) -> Result<Option<Duration>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kept: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": kept,
        "resourceVersion": meta.resource_version,
    }});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: Option<&str>, phase: &str, claim: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn only_scheduled_unfinished_pods_naming_the_claim_use_it() {
        assert!(uses(&pod(Some("a"), "Running", "data"), "data"));
        assert!(uses(&pod(Some("a"), "Pending", "data"), "data"));
        assert!(!uses(&pod(Some("a"), "Running", "other"), "data"));
        assert!(!uses(&pod(None, "Pending", "data"), "data"));
        assert!(!uses(&pod(Some("a"), "Succeeded", "data"), "data"));
        assert!(!uses(&pod(Some("a"), "Failed", "data"), "data"));
    }
}
