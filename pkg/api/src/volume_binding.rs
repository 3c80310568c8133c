//! Which PersistentVolume a PersistentVolumeClaim may bind to, and the
//! annotations the binding protocol writes, as Kubernetes' PV controller and
//! the scheduler's VolumeBinding plugin both judge it (upstream's
//! `FindMatchingVolume`): the PV binder, the local-path provisioner and the
//! scheduler ask these same questions, so they live here once.
//!
//! A claim matches a volume when the volume is big enough, has the same volume
//! mode and is not being deleted, and either is already pre-bound to the claim
//! (`spec.claimRef`) or is Available, unclaimed, of the claim's class, offers
//! every access mode the claim asks for, carries labels the claim's selector
//! accepts and, when a node is known, has node affinity that admits it. Of
//! the unclaimed candidates the smallest wins.

use crate::validation::quantity::{Quantity, QuantityFormat};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use std::collections::BTreeMap;

/// On a claim: the binder finished binding it (`"yes"`).
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim or volume: the binder (not the user) set `volumeName` / `claimRef`.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim: the node the scheduler picked for its first consumer.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a claim: which provisioner is to create its volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`STORAGE_PROVISIONER`], still written for old provisioners.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The beta class annotation, which wins over `spec.storageClassName`.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// On a volume: the provisioner that created it (and so deletes it).
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a StorageClass: the class claims without one get.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling of [`IS_DEFAULT_CLASS`].
pub const BETA_IS_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The provisioner name of classes whose volumes are made by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The claim's class: the beta annotation if present, else `spec.storageClassName`.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    if let Some(class) = annotation(&claim.metadata, BETA_STORAGE_CLASS) {
        return class;
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The volume's class, read the same way as [`claim_class`].
pub fn volume_class(volume: &PersistentVolume) -> &str {
    if let Some(class) = annotation(&volume.metadata, BETA_STORAGE_CLASS) {
        return class;
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The node the scheduler selected for the claim, if any.
pub fn selected_node(claim: &PersistentVolumeClaim) -> Option<&str> {
    annotation(&claim.metadata, SELECTED_NODE).filter(|n| !n.is_empty())
}

fn zero() -> Quantity {
    Quantity::from_nanos(0, QuantityFormat::BinarySi)
}

/// The storage the claim requests (zero when it names none).
pub fn requested(claim: &PersistentVolumeClaim) -> Quantity {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_else(zero)
}

/// The volume's storage capacity (zero when it states none or garbage).
pub fn capacity(volume: &PersistentVolume) -> Quantity {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_else(zero)
}

/// Whether the volume's `claimRef` names this claim (and its uid, once set).
pub fn is_bound_to(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    let uid = reference.uid.as_deref().unwrap_or_default();
    reference.name.as_deref() == claim.metadata.name.as_deref()
        && reference.namespace.as_deref().unwrap_or_default()
            == claim.metadata.namespace.as_deref().unwrap_or_default()
        && (uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref())
}

/// Whether a StorageClass delays binding until a pod uses the claim.
pub fn waits_for_first_consumer(class: &StorageClass) -> bool {
    class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
}

/// Whether the class is marked as the default (either annotation spelling).
pub fn is_default_class(class: &StorageClass) -> bool {
    [IS_DEFAULT_CLASS, BETA_IS_DEFAULT_CLASS]
        .iter()
        .any(|key| annotation(&class.metadata, key) == Some("true"))
}

/// The default class among `classes`: the newest default, ties broken by
/// name, as Kubernetes picks when several are marked.
pub fn default_class<'a>(
    classes: impl IntoIterator<Item = &'a StorageClass>,
) -> Option<&'a StorageClass> {
    classes
        .into_iter()
        .filter(|c| is_default_class(c))
        .max_by(|a, b| {
            let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                // Equal times: the name first in order wins, so it must compare greatest.
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        })
}

/// Whether the volume's required node affinity admits `node` (a volume
/// without node affinity is reachable from every node).
pub fn node_affinity_admits(volume: &PersistentVolume, node: &Node) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    required
        .node_selector_terms
        .iter()
        .any(|term| crate::matching::term_matches(term, labels, name))
}

fn volume_mode_of(mode: Option<&str>) -> &str {
    mode.unwrap_or("Filesystem")
}

/// Whether the volume offers every access mode the claim asks for.
pub fn access_modes_fit(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default();
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
        .iter()
        .all(|mode| offered.contains(mode))
}

/// Why a volume the user pre-bound a claim to cannot serve it, worded as
/// upstream's `checkVolumeSatisfyClaim`; `None` when it can.
pub fn mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> Option<&'static str> {
    let claim_mode = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let volume_mode = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    if capacity(volume) < requested(claim) {
        Some("requested PV is too small")
    } else if volume_class(volume) != claim_class(claim) {
        Some("storageClassName does not match")
    } else if volume_mode_of(claim_mode) != volume_mode_of(volume_mode) {
        Some("incompatible volumeMode")
    } else if !access_modes_fit(claim, volume) {
        Some("incompatible accessMode")
    } else {
        None
    }
}

fn phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The volume `claim` should bind to, if any.
///
/// `node` is the node the claim's consumer runs on, when known: volumes whose
/// node affinity excludes it are passed over. With `delay_binding` (the
/// class waits for the first consumer) and no node yet, only a volume already
/// pre-bound to the claim is returned.
pub fn find_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<&Node>,
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let spec = claim.spec.clone().unwrap_or_default();
    let wanted = requested(claim);
    let class = claim_class(claim);
    let claim_mode = volume_mode_of(spec.volume_mode.as_deref());
    let mut best: Option<(&PersistentVolume, Quantity)> = None;
    for volume in volumes {
        let size = capacity(volume);
        let Some(vspec) = volume.spec.as_ref() else {
            continue;
        };
        if size < wanted
            || volume_mode_of(vspec.volume_mode.as_deref()) != claim_mode
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let reachable = node.is_none_or(|n| node_affinity_admits(volume, n));
        if is_bound_to(volume, claim) {
            // A pre-bound volume is the only candidate, usable or not.
            return reachable.then_some(volume);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        if phase(volume) != "Available"
            || vspec.claim_ref.is_some()
            || spec.selector.as_ref().is_some_and(|s| {
                !crate::matching::selector_matches(
                    s,
                    volume.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                )
            })
            || volume_class(volume) != class
            || !reachable
            || !access_modes_fit(claim, volume)
        {
            continue;
        }
        if best.as_ref().is_none_or(|(_, smallest)| size < *smallest) {
            best = Some((volume, size));
        }
    }
    best.map(|(volume, _)| volume)
}

#[cfg(test)]
mod tests;
