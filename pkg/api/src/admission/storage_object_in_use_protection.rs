//! The StorageObjectInUseProtection admission plugin: every new
//! PersistentVolumeClaim gets the `kubernetes.io/pvc-protection` finalizer and
//! every new PersistentVolume `kubernetes.io/pv-protection`, so deleting one
//! that a pod still uses (or a volume still bound) only marks it; the
//! controllers' protection loop removes the finalizer once it is unused.

use serde_json::Value;

/// Keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a volume while it is bound to a claim.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Adds the protection finalizer to `obj`, a new object of core/v1 `kind`.
pub fn admit(kind: &str, obj: &mut Value) {
    let finalizer = match kind {
        "PersistentVolumeClaim" => PVC_PROTECTION,
        "PersistentVolume" => PV_PROTECTION,
        _ => return,
    };
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if list.is_null() {
        *list = Value::Array(Vec::new());
    }
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(Value::String(finalizer.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_and_volumes_get_their_finalizer_once() {
        let mut claim = json!({"metadata": {"name": "c", "finalizers": ["example.com/keep"]}});
        admit("PersistentVolumeClaim", &mut claim);
        admit("PersistentVolumeClaim", &mut claim);
        assert_eq!(
            claim["metadata"]["finalizers"],
            json!(["example.com/keep", PVC_PROTECTION])
        );
        let mut volume = json!({"metadata": {"name": "v"}});
        admit("PersistentVolume", &mut volume);
        assert_eq!(volume["metadata"]["finalizers"], json!([PV_PROTECTION]));
        let mut pod = json!({"metadata": {"name": "p"}});
        admit("Pod", &mut pod);
        assert!(pod["metadata"].get("finalizers").is_none());
    }
}
