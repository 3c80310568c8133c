//! The local-path provisioner k3s ships (rancher's `local-path-provisioner`):
//! the default `local-path` StorageClass, and for each claim of it, once the
//! scheduler has picked its consumer's node, a directory
//! `<data-dir>/storage/pvc-<uid>_<namespace>_<claim>` served as a `hostPath`
//! PersistentVolume pinned to that node; a Released volume with the Delete
//! policy loses its directory and then the PersistentVolume itself.
//!
//! The directory is made and removed here, in the server process, when the
//! node is the server's own. A volume on another node gets its directory from
//! that node's kubelet (the hostPath type is `DirectoryOrCreate`), but
//! removing it there would need a helper pod on the node, as rancher's
//! provisioner runs one; until kite has that, such a directory is left behind
//! (and logged) when its volume is deleted.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kite_api::volume_binding::{self as vb, PROVISIONED_BY};
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The provisioner's name, in the class and on its volumes.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The StorageClass made at start.
pub const CLASS: &str = "local-path";
/// Marks the class as kite's own, so `--disable local-storage` removes only
/// what kite made.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kite");
/// The node label volume node affinity pins on.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Where rancher's provisioner records the node on the volume.
const NODE_ANNOTATION: &str = "local.path.provisioner/selected-node";
const RETRY: Duration = Duration::from_secs(5);

/// The `local-path` StorageClass as k3s ships it.
pub fn default_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(CLASS.into()),
            annotations: Some(BTreeMap::from([(
                vb::IS_DEFAULT_CLASS.to_string(),
                "true".to_string(),
            )])),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// Deletes the `local-path` class kite made, as k3s deletes a packaged
/// component that `--disable` turns off; volumes already provisioned stay.
pub async fn remove_class(client: kube::Client) {
    let api: Api<StorageClass> = Api::all(client);
    loop {
        let found = match api.get_opt(CLASS).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot read the local-path StorageClass; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let ours = found.as_ref().is_some_and(|class| {
            class
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY.0))
                .map(String::as_str)
                == Some(MANAGED_BY.1)
        });
        if !ours {
            return;
        }
        match api.delete(CLASS, &DeleteParams::default()).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(error) => {
                tracing::warn!(%error, "cannot delete the local-path StorageClass; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// The directory of `claim`'s volume under `root`: `pvc-<uid>_<namespace>_<name>`.
pub fn volume_dir(root: &Path, claim: &PersistentVolumeClaim) -> PathBuf {
    root.join(format!(
        "{}_{}_{}",
        volume_name(claim),
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    ))
}

/// The volume's name: `pvc-<claim uid>`, as every external provisioner names it.
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default())
}

/// The PersistentVolume for `claim` of `class`, in `dir` on `node`.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    dir: &Path,
    node: &str,
) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let capacity = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .map(|q| BTreeMap::from([("storage".to_string(), q)]));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(claim)),
            annotations: Some(BTreeMap::from([
                (PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
                (NODE_ANNOTATION.to_string(), node.to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes,
            capacity,
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class.metadata.name.clone().unwrap_or_default()),
            volume_mode: spec.volume_mode.or_else(|| Some("Filesystem".into())),
            ..Default::default()
        }),
        status: None,
    }
}

/// Why a directory on one node cannot serve `claim`, if it cannot: it is no
/// block device, and only one node can mount it (rancher's provisioner
/// refuses the same claims).
pub fn unsupported(claim: &PersistentVolumeClaim) -> Option<String> {
    let spec = claim.spec.as_ref()?;
    if spec.volume_mode.as_deref() == Some("Block") {
        return Some("block volume mode is not supported".into());
    }
    let shared = spec
        .access_modes
        .iter()
        .flatten()
        .find(|m| !matches!(m.as_str(), "ReadWriteOnce" | "ReadWriteOncePod"));
    shared.map(|mode| {
        format!("access mode {mode} is not supported: only ReadWriteOnce and ReadWriteOncePod are")
    })
}

/// The node a local-path volume lives on, from its node affinity.
fn node_of(volume: &PersistentVolume) -> Option<&str> {
    let terms = &volume
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|r| r.key == HOSTNAME_LABEL && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first())
        .map(String::as_str)
}

/// The local-path provisioner.
pub struct Provisioner {
    client: kube::Client,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    root: PathBuf,
    host: String,
    claim_queue: WorkQueue,
    volume_queue: WorkQueue,
    recorder: Recorder,
}

impl Provisioner {
    /// A provisioner making directories under `root` (`<data-dir>/storage`).
    pub fn new(
        config: &Config,
        root: PathBuf,
        claims: Informer<PersistentVolumeClaim>,
        volumes: Informer<PersistentVolume>,
        classes: Informer<StorageClass>,
    ) -> Self {
        let claim_queue = WorkQueue::new();
        let volume_queue = WorkQueue::new();
        let cq = claim_queue.clone();
        claims.on_change(move |change| cq.add(&key_of(&change.object().metadata)));
        let vq = volume_queue.clone();
        volumes.on_change(move |change| {
            vq.add(change.object().metadata.name.as_deref().unwrap_or_default());
        });
        Self {
            client: config.client.clone(),
            recorder: Recorder::new(
                config.client.clone(),
                &format!("{PROVISIONER}_{}", config.host),
                &config.host,
            ),
            host: config.host.clone(),
            root,
            claims,
            volumes,
            classes,
            claim_queue,
            volume_queue,
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.ensure_class().await;
        self.claims.wait_synced().await;
        self.volumes.wait_synced().await;
        self.classes.wait_synced().await;
        tokio::join!(
            work("local-path-provisioner", self.claim_queue.clone(), |key| {
                self.sync_claim(key)
            }),
            work("local-path-provisioner", self.volume_queue.clone(), |key| {
                self.sync_volume(key)
            }),
        );
    }

    /// Creates the `local-path` class unless it exists; a class the user
    /// changed or marked non-default is left as it is, as k3s leaves it.
    async fn ensure_class(&self) {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        loop {
            match api.create(&PostParams::default(), &default_class()).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 409 => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot create the local-path StorageClass; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn sync_claim(&self, key: String) -> Result<Option<Duration>> {
        let Some(claim) = self.claims.get(&key) else {
            return Ok(None);
        };
        let annotations = claim.metadata.annotations.clone().unwrap_or_default();
        let ours = [vb::STORAGE_PROVISIONER, vb::BETA_STORAGE_PROVISIONER]
            .iter()
            .any(|k| annotations.get(*k).map(String::as_str) == Some(PROVISIONER));
        let bound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|v| !v.is_empty());
        if !ours || bound || claim.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let class_name = vb::claim_class(&claim);
        let Some(class) = self.classes.get(class_name) else {
            return Ok(Some(RETRY));
        };
        if class.provisioner != PROVISIONER {
            return Ok(None);
        }
        let name = volume_name(&claim);
        if self.volumes.get(&name).is_some() {
            return Ok(None);
        }
        let reference = claim.object_ref(&());
        let Some(node) = vb::selected_node(&claim) else {
            // Rancher's provisioner needs the node too: an Immediate class
            // cannot work with it.
            if !vb::waits_for_first_consumer(&class) {
                self.recorder.publish(
                    reference,
                    WARNING,
                    "ProvisioningFailed",
                    &format!(
                        "failed to provision volume with StorageClass {class_name:?}: configuration error, no node was specified"
                    ),
                );
            }
            return Ok(None);
        };
        if let Some(why) = unsupported(&claim) {
            self.recorder.publish(
                reference,
                WARNING,
                "ProvisioningFailed",
                &format!("failed to provision volume with StorageClass {class_name:?}: {why}"),
            );
            return Ok(None);
        }
        let claim_key = key_of(&claim.metadata);
        self.recorder.publish(
            reference.clone(),
            NORMAL,
            "Provisioning",
            &format!("External provisioner is provisioning volume for claim {claim_key:?}"),
        );
        let dir = volume_dir(&self.root, &claim);
        if node == self.host
            && let Err(error) = make_dir(&dir)
        {
            self.recorder.publish(
                reference,
                WARNING,
                "ProvisioningFailed",
                &format!(
                    "failed to provision volume with StorageClass {class_name:?}: {}: {error}",
                    dir.display()
                ),
            );
            return Ok(Some(RETRY));
        }
        let volume = volume_for(&claim, &class, &dir, node);
        match Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &volume)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(None),
            Err(error) => {
                self.recorder.publish(
                    reference,
                    WARNING,
                    "ProvisioningFailed",
                    &format!(
                        "failed to provision volume with StorageClass {class_name:?}: {error}"
                    ),
                );
                return Err(error.into());
            }
        }
        self.recorder.publish(
            reference,
            NORMAL,
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {name}"),
        );
        Ok(None)
    }

    async fn sync_volume(&self, name: String) -> Result<Option<Duration>> {
        let Some(volume) = self.volumes.get(&name) else {
            return Ok(None);
        };
        let ours = volume
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| p == PROVISIONER);
        let spec = volume.spec.clone().unwrap_or_default();
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete = spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete");
        if !ours || !released || !delete || volume.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        if let Some(path) = spec.host_path.as_ref().map(|h| PathBuf::from(&h.path)) {
            match node_of(&volume) {
                Some(node) if node == self.host => {
                    if let Err(error) = remove_dir(&self.root, &path) {
                        tracing::warn!(volume = %name, path = %path.display(), %error,
                            "cannot remove the local-path volume's directory; retrying");
                        return Ok(Some(RETRY));
                    }
                }
                node => tracing::warn!(volume = %name, path = %path.display(), ?node,
                    "the local-path volume is on another node; its directory is left there"),
            }
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: volume.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match Api::<PersistentVolume>::all(self.client.clone())
            .delete(&name, &params)
            .await
        {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Makes a volume directory everyone may write, as rancher's provisioner
/// does: the pod's user is not known here.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// Removes a volume directory, refusing anything that is not directly under
/// `root`: the path comes from an API object anyone with PV rights can write.
fn remove_dir(root: &Path, dir: &Path) -> std::io::Result<()> {
    let inside = dir.parent() == Some(root)
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pvc-") && !n.contains('/'));
    if !inside {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a volume directory under {}",
                dir.display(),
                root.display()
            ),
        ));
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim() -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-db-0", "namespace": "prod", "uid": "abc", "resourceVersion": "7"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "2Gi"}}},
        }))
        .unwrap()
    }

    #[test]
    fn volumes_are_named_and_placed_like_k3s_places_them() {
        let root = Path::new("/var/lib/kite/storage");
        let dir = volume_dir(root, &claim());
        assert_eq!(dir, root.join("pvc-abc_prod_data-db-0"));
        let volume = volume_for(&claim(), &default_class(), &dir, "node-a");
        let value = serde_json::to_value(&volume).unwrap();
        assert_eq!(value["metadata"]["name"], "pvc-abc");
        assert_eq!(
            value["metadata"]["annotations"][PROVISIONED_BY],
            PROVISIONER
        );
        let spec = &value["spec"];
        assert_eq!(
            spec["hostPath"]["path"],
            "/var/lib/kite/storage/pvc-abc_prod_data-db-0"
        );
        assert_eq!(spec["hostPath"]["type"], "DirectoryOrCreate");
        assert_eq!(spec["capacity"]["storage"], "2Gi");
        assert_eq!(spec["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(spec["storageClassName"], "local-path");
        assert_eq!(spec["claimRef"]["uid"], "abc");
        assert_eq!(
            spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
            json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]})
        );
        assert_eq!(node_of(&volume), Some("node-a"));
        // The provisioned volume is the claim's only match, on its node only.
        assert!(vb::is_bound_to(&volume, &claim()));
    }

    #[test]
    fn block_and_shared_claims_are_refused() {
        assert_eq!(unsupported(&claim()), None);
        let mut block = claim();
        block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
        assert_eq!(
            unsupported(&block).as_deref(),
            Some("block volume mode is not supported")
        );
        let mut shared = claim();
        shared.spec.as_mut().unwrap().access_modes =
            Some(vec!["ReadWriteOnce".into(), "ReadWriteMany".into()]);
        assert!(unsupported(&shared).is_some_and(|m| m.contains("ReadWriteMany")));
    }

    #[test]
    fn the_class_is_the_default_and_waits_for_a_consumer() {
        let class = default_class();
        assert!(vb::is_default_class(&class));
        assert!(vb::waits_for_first_consumer(&class));
        assert_eq!(class.reclaim_policy.as_deref(), Some("Delete"));
        let labels = class.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
    }

    #[test]
    fn only_volume_directories_under_the_root_are_removed() {
        let base = std::env::temp_dir().join(format!("kite-local-path-{}", std::process::id()));
        let root = base.join("storage");
        let dir = root.join("pvc-1_ns_claim");
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        let outside = base.join("pvc-2_ns_claim");
        std::fs::create_dir_all(&outside).unwrap();
        assert!(remove_dir(&root, &outside).is_err());
        assert!(remove_dir(&root, &root.join("pvc-1_ns_claim/inner")).is_err());
        assert!(remove_dir(&root, &root.join("other")).is_err());
        remove_dir(&root, &dir).unwrap();
        assert!(!dir.exists() && outside.exists());
        remove_dir(&root, &dir).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
