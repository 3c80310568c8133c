//! The DefaultStorageClass admission plugin: a new PersistentVolumeClaim that
//! names no class (`spec.storageClassName` absent, not `""`, and no beta
//! class annotation) gets the cluster's default StorageClass. When several
//! classes are marked default the newest wins, ties going to the name first
//! in order, as Kubernetes picks.

use serde_json::Value;

use crate::volume_binding::BETA_STORAGE_CLASS;
use k8s_openapi::api::storage::v1::StorageClass;

/// The name of the default class among `classes` (StorageClass objects),
/// if any is marked.
pub fn default_class(classes: &[Value]) -> Option<String> {
    let typed: Vec<StorageClass> = classes
        .iter()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .collect();
    crate::volume_binding::default_class(&typed).and_then(|c| c.metadata.name.clone())
}

/// Sets the default class on `claim` (a PersistentVolumeClaim object) unless
/// it chose one; `classes` are the cluster's StorageClasses.
pub fn admit(claim: &mut Value, classes: &[Value]) {
    if claim["metadata"]["annotations"]
        .get(BETA_STORAGE_CLASS)
        .is_some()
    {
        return;
    }
    let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("storageClassName").is_some_and(|c| !c.is_null()) {
        return;
    }
    if let Some(name) = default_class(classes) {
        spec.insert("storageClassName".into(), Value::String(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume_binding::{BETA_IS_DEFAULT_CLASS, IS_DEFAULT_CLASS};
    use serde_json::json;

    fn class(name: &str, created: &str, default: bool) -> Value {
        let annotations = if default {
            json!({IS_DEFAULT_CLASS: "true"})
        } else {
            json!({BETA_IS_DEFAULT_CLASS: "false"})
        };
        json!({"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}})
    }

    fn admitted(spec: Value, annotations: Value, classes: &[Value]) -> Value {
        let mut claim =
            json!({"metadata": {"name": "c", "annotations": annotations}, "spec": spec});
        admit(&mut claim, classes);
        claim["spec"]["storageClassName"].clone()
    }

    #[test]
    fn claims_without_a_class_get_the_newest_default() {
        let classes = [
            class("local-path", "2024-01-01T00:00:00Z", true),
            class("fast", "2024-05-01T00:00:00Z", true),
            class("newest", "2025-01-01T00:00:00Z", false),
        ];
        assert_eq!(admitted(json!({}), json!({}), &classes), "fast");
        assert_eq!(
            admitted(json!({"storageClassName": null}), json!({}), &classes),
            "fast"
        );
    }

    #[test]
    fn a_chosen_class_an_empty_class_or_the_beta_annotation_is_kept() {
        let classes = [class("local-path", "2024-01-01T00:00:00Z", true)];
        assert_eq!(
            admitted(json!({"storageClassName": "x"}), json!({}), &classes),
            "x"
        );
        assert_eq!(
            admitted(json!({"storageClassName": ""}), json!({}), &classes),
            ""
        );
        assert_eq!(
            admitted(json!({}), json!({BETA_STORAGE_CLASS: "old"}), &classes),
            Value::Null
        );
        assert_eq!(admitted(json!({}), json!({}), &[]), Value::Null);
    }

    #[test]
    fn equal_times_go_to_the_first_name() {
        let classes = [
            class("b", "2024-01-01T00:00:00Z", true),
            class("a", "2024-01-01T00:00:00Z", true),
        ];
        assert_eq!(default_class(&classes).as_deref(), Some("a"));
    }
}
