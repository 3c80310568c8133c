//! Helpers the workload controllers share: owner references, label selectors,
//! pod readiness, the pod-template hash and status writes.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// A controller owner reference to `owner` of `kind` in `api_version`.
pub(crate) fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from a controller's template, as kube's controllers make them: the
/// template's labels, annotations, finalizers and spec, in the owner's
/// namespace and controlled by it. Callers name it and add their own labels.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    api_version: &str,
    kind: &str,
    owner: &ObjectMeta,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: owner.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(api_version, kind, owner)]),
            ..Default::default()
        },
        spec: Some(template.spec.clone().unwrap_or_default()),
        status: None,
    }
}

/// The owner reference marked `controller: true`, if any.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `uid`.
pub(crate) fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

pub(crate) use kite_api::matching::selector_matches;

/// Whether the pod is still counted: not finished and not being deleted.
pub(crate) fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether the pod's Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod has been ready for at least `min_ready_seconds`.
pub(crate) fn is_available(pod: &Pod, min_ready_seconds: i32) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    since.is_some_and(|t| {
        let ready_for = k8s_openapi::jiff::Timestamp::now().duration_since(t);
        ready_for.as_secs() >= i64::from(min_ready_seconds)
    })
}

/// The label a Deployment puts on its ReplicaSets and their pods.
pub(crate) const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// A short, stable hash of a pod template (and the collision count), spelled
/// with the consonant-and-digit alphabet Kubernetes uses for generated names so
/// it never forms words.
pub(crate) fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    // FNV-1a, 32 bits.
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// Deletes `pod` (only that incarnation: the UID is a precondition) and
/// records kube's `SuccessfulDelete` event on `owner`. `Ok(false)`: it was
/// already gone.
pub(crate) async fn delete_pod(
    api: &kube::Api<Pod>,
    pod: &Pod,
    recorder: &kite_client::Recorder,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
) -> Result<bool, kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            recorder.publish(
                owner.clone(),
                kite_client::events::NORMAL,
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
            );
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Replaces `object`'s status through `api`. A 404 (gone) or 409 (changed
/// since it was read) is no error: the informer brings the next version and
/// the reconcile runs again.
pub(crate) async fn replace_status<K>(api: &kube::Api<K>, object: &K) -> crate::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    match api
        .replace_status(&name, &kube::api::PostParams::default(), object)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_hashes_are_stable_and_change_with_the_template() {
        let a: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .expect("template");
        let mut b = a.clone();
        if let Some(spec) = b.spec.as_mut() {
            spec.containers[0].image = Some("nginx".into());
        }
        assert_eq!(template_hash(&a, None), template_hash(&a, None));
        assert_ne!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(
            template_hash(&a, None)
                .bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c))
        );
    }
}
