//! The VolumeBinding plugin: a pod's PersistentVolumeClaims decide where it
//! may run, worded as kube-scheduler words it.
//!
//! [`pre_filter`] sorts the pod's claims once per attempt: a missing or
//! terminating claim, or an unbound claim of an Immediate class (it should
//! have been bound already), makes the pod unschedulable before any node is
//! looked at. [`filter`] then judges each node: a bound claim's volume must
//! admit the node by its node affinity, and an unbound WaitForFirstConsumer
//! claim needs either a matching Available volume reachable from the node or
//! a class that can provision one. The chosen node is written on those
//! claims (`volume.kubernetes.io/selected-node`) before the pod is bound, as
//! upstream's PreBind does; the PV binder and the provisioner take it from there.

use crate::filter::Rejection;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kite_api::volume_binding as vb;
use std::sync::Arc;

/// The pod's claims, sorted by what they still need.
#[derive(Debug, Default)]
pub struct PodClaims {
    /// Claims bound to a volume: `(claim, volume name)`.
    pub bound: Vec<(Arc<PersistentVolumeClaim>, String)>,
    /// Unbound claims waiting for their first consumer: this pod.
    pub waiting: Vec<Arc<PersistentVolumeClaim>>,
}

impl PodClaims {
    /// Whether the pod uses no claims at all (the plugin skips it).
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.waiting.is_empty()
    }
}

/// Where the plugin looks objects up (the scheduler's informer caches).
pub trait Lookup {
    /// The claim `namespace/name`.
    fn claim(&self, key: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// The volume `name`.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// Every volume.
    fn volumes(&self) -> Vec<Arc<PersistentVolume>>;
    /// The class `name`.
    fn class(&self, name: &str) -> Option<Arc<StorageClass>>;
}

/// Sorts the pod's claims; `Err` is the reason no node can take the pod.
pub fn pre_filter(pod: &Pod, lookup: &impl Lookup) -> Result<PodClaims, String> {
    let mut claims = PodClaims::default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut immediate = false;
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(source) = &volume.persistent_volume_claim else {
            continue;
        };
        let name = &source.claim_name;
        let Some(claim) = lookup.claim(&format!("{namespace}/{name}")) else {
            return Err(format!("persistentvolumeclaim {name:?} not found"));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if !volume_name.is_empty() {
            claims.bound.push((claim, volume_name));
            continue;
        }
        let class_name = vb::claim_class(&claim);
        let delayed = if class_name.is_empty() {
            false
        } else {
            match lookup.class(class_name) {
                Some(class) => vb::waits_for_first_consumer(&class),
                None => {
                    return Err(format!(
                        "storageclass.storage.k8s.io {class_name:?} not found"
                    ));
                }
            }
        };
        if delayed {
            claims.waiting.push(claim);
        } else {
            immediate = true;
        }
    }
    if immediate {
        return Err("pod has unbound immediate PersistentVolumeClaims".into());
    }
    Ok(claims)
}

/// Whether `node` can serve every claim of the pod.
pub fn filter(claims: &PodClaims, node: &Node, lookup: &impl Lookup) -> Result<(), Rejection> {
    let mut reasons = Vec::new();
    for (_, volume_name) in &claims.bound {
        match lookup.volume(volume_name) {
            None => {
                reasons.push(
                    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)",
                );
                break;
            }
            Some(volume) if !vb::node_affinity_admits(&volume, node) => {
                reasons.push("node(s) had volume node affinity conflict");
                break;
            }
            Some(_) => {}
        }
    }
    if !claims.waiting.is_empty() && !waiting_claims_fit(claims, node, lookup) {
        reasons.push("node(s) didn't find available persistent volumes to bind");
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            reasons: reasons.into_iter().map(str::to_string).collect(),
            resolvable: false,
        })
    }
}

fn waiting_claims_fit(claims: &PodClaims, node: &Node, lookup: &impl Lookup) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let volumes = lookup.volumes();
    // Each volume serves one claim: those matched for earlier claims are taken.
    let mut taken: Vec<&str> = Vec::new();
    for claim in &claims.waiting {
        if let Some(selected) = vb::selected_node(claim) {
            if selected != name {
                return false;
            }
            continue;
        }
        let free = volumes
            .iter()
            .map(AsRef::as_ref)
            .filter(|v: &&PersistentVolume| {
                !taken.contains(&v.metadata.name.as_deref().unwrap_or_default())
            });
        if let Some(volume) = vb::find_match(claim, free, Some(node), true) {
            taken.push(volume.metadata.name.as_deref().unwrap_or_default());
            continue;
        }
        let provisionable = lookup
            .class(vb::claim_class(claim))
            .is_some_and(|c| c.provisioner != vb::NO_PROVISIONER && !c.provisioner.is_empty());
        if !provisionable {
            return false;
        }
    }
    true
}

/// The claims to write the chosen node on before binding the pod: every
/// waiting claim that has no node yet, as `(namespace, name)`.
pub fn to_select(claims: &PodClaims) -> Vec<(String, String)> {
    claims
        .waiting
        .iter()
        .filter(|c| vb::selected_node(c).is_none())
        .map(|c| {
            (
                c.metadata.namespace.clone().unwrap_or_default(),
                c.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        claims: HashMap<String, Arc<PersistentVolumeClaim>>,
        volumes: HashMap<String, Arc<PersistentVolume>>,
        classes: HashMap<String, Arc<StorageClass>>,
    }

    impl Lookup for Fake {
        fn claim(&self, key: &str) -> Option<Arc<PersistentVolumeClaim>> {
            self.claims.get(key).cloned()
        }
        fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
            self.volumes.get(name).cloned()
        }
        fn volumes(&self) -> Vec<Arc<PersistentVolume>> {
            self.volumes.values().cloned().collect()
        }
        fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
            self.classes.get(name).cloned()
        }
    }

    impl Fake {
        fn claim(mut self, name: &str, class: &str, volume: Option<&str>, extra: Value) -> Self {
            let mut object = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                         "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}});
            if let (Some(o), Value::Object(e)) = (object["metadata"].as_object_mut(), extra) {
                o.extend(e);
            }
            let claim = serde_json::from_value(object).unwrap();
            self.claims
                .insert(format!("default/{name}"), Arc::new(claim));
            self
        }
        fn volume(mut self, name: &str, class: &str, node: &str) -> Self {
            let volume = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                         "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/srv"},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
                "status": {"phase": "Available"}}))
            .unwrap();
            self.volumes.insert(name.into(), Arc::new(volume));
            self
        }
        fn class(mut self, name: &str, provisioner: &str, mode: &str) -> Self {
            let class = serde_json::from_value(json!({"metadata": {"name": name},
                "provisioner": provisioner, "volumeBindingMode": mode}))
            .unwrap();
            self.classes.insert(name.into(), Arc::new(class));
            self
        }
    }

    fn pod(claims: &[&str]) -> Pod {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [], "volumes": volumes}}))
        .unwrap()
    }

    fn node(name: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
        )
        .unwrap()
    }

    fn verdict(fake: &Fake, claims: &[&str], on: &str) -> Result<(), String> {
        let sorted = pre_filter(&pod(claims), fake)?;
        filter(&sorted, &node(on), fake).map_err(|r| r.reasons.join("; "))
    }

    #[test]
    fn missing_terminating_and_unbound_immediate_claims_stop_the_pod() {
        let fake = Fake::default()
            .class("now", "example.com/x", "Immediate")
            .claim("pending", "now", None, json!({}))
            .claim(
                "going",
                "now",
                Some("pv"),
                json!({"deletionTimestamp": "2024-01-01T00:00:00Z"}),
            );
        assert_eq!(
            verdict(&fake, &["nope"], "a"),
            Err("persistentvolumeclaim \"nope\" not found".into())
        );
        assert_eq!(
            verdict(&fake, &["going"], "a"),
            Err("persistentvolumeclaim \"going\" is being deleted".into())
        );
        assert_eq!(
            verdict(&fake, &["pending"], "a"),
            Err("pod has unbound immediate PersistentVolumeClaims".into())
        );
    }

    #[test]
    fn bound_volumes_pin_the_pod_to_their_nodes() {
        let fake = Fake::default()
            .volume("pv", "x", "a")
            .claim("data", "x", Some("pv"), json!({}))
            .claim("lost", "x", Some("gone"), json!({}));
        assert_eq!(verdict(&fake, &["data"], "a"), Ok(()));
        assert_eq!(
            verdict(&fake, &["data"], "b"),
            Err("node(s) had volume node affinity conflict".into())
        );
        assert_eq!(
            verdict(&fake, &["lost"], "a"),
            Err("node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)".into())
        );
    }

    #[test]
    fn waiting_claims_need_a_reachable_volume_or_a_provisioner() {
        let fake = Fake::default()
            .class("manual", vb::NO_PROVISIONER, "WaitForFirstConsumer")
            .class(
                "local-path",
                "rancher.io/local-path",
                "WaitForFirstConsumer",
            )
            .volume("pv-a", "manual", "a")
            .claim("one", "manual", None, json!({}))
            .claim("two", "manual", None, json!({}))
            .claim("dyn", "local-path", None, json!({}))
            .claim(
                "elsewhere",
                "local-path",
                None,
                json!({"annotations": {vb::SELECTED_NODE: "b"}}),
            );
        assert_eq!(verdict(&fake, &["one"], "a"), Ok(()));
        let none = Err("node(s) didn't find available persistent volumes to bind".to_string());
        assert_eq!(verdict(&fake, &["one"], "b"), none);
        // One volume cannot serve two claims.
        assert_eq!(verdict(&fake, &["one", "two"], "a"), none);
        assert_eq!(verdict(&fake, &["dyn"], "b"), Ok(()));
        assert_eq!(verdict(&fake, &["elsewhere"], "a"), none);
        assert_eq!(verdict(&fake, &["elsewhere"], "b"), Ok(()));
        let sorted = pre_filter(&pod(&["dyn", "elsewhere"]), &fake).unwrap();
        assert_eq!(
            to_select(&sorted),
            vec![("default".to_string(), "dyn".to_string())]
        );
    }
}
