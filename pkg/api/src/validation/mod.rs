//! Validation of API objects: field errors and the checks that produce them.
//!
//! [`validate_create`] and [`validate_update`] are what the apiserver calls
//! for built-in kinds, on defaulted objects; they check `metadata` with the
//! kind's name rule ([`validate_name`]) and then the kind's own fields.
//! Syntax helpers live in [`names`], quantities in [`quantity`].

mod apps;
mod batch;
mod core;
pub mod field;
pub mod meta;
pub mod names;
mod other;
pub mod pod;
pub mod quantity;
mod service;
mod util;

pub use batch::{Schedule, parse_schedule};
pub use core::MAX_DATA_SIZE;
pub use field::{FieldError, FieldErrorType, invalid_status};
pub use meta::{validate_label_selector, validate_object_meta};
pub use names::{
    NameValidator, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, validate_name,
};
pub use quantity::Quantity;

use serde_json::Value;

/// Validates a new object of `kind` in `group` (`""` for core) as kube-apiserver does on create.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        obj.get("metadata").unwrap_or(&Value::Null),
        validate_name(group, kind),
        "metadata",
    );
    errs.extend(validate_kind(group, kind, obj));
    errs
}

/// Validates an update of an object from `old` to `new`, including immutable fields.
///
/// Name, namespace, uid and creationTimestamp mismatches are the apiserver's to check.
pub fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_object_meta(
        new.get("metadata").unwrap_or(&Value::Null),
        validate_name(group, kind),
        "metadata",
    );
    errs.extend(match (group, kind) {
        ("", "Pod") => pod::validate_pod_update(new, old),
        ("", "Service") => service::validate_update(new, old),
        (
            "",
            "ConfigMap"
            | "Secret"
            | "Namespace"
            | "Node"
            | "PersistentVolumeClaim"
            | "PersistentVolume",
        ) => core::validate_update(kind, new, old),
        ("apps", _) => apps::validate_update(kind, new, old),
        ("batch", _) => batch::validate_update(kind, new, old),
        ("", _) => validate_kind(group, kind, new),
        _ => other::validate_update(group, kind, new, old),
    });
    errs
}

fn validate_kind(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(obj),
        ("", "PodTemplate") => {
            pod::validate_pod_template(obj.get("template").unwrap_or(&Value::Null), "template")
        }
        ("", "ReplicationController") => replication_controller(obj),
        ("", "Service") => service::validate(obj),
        ("", _) => core::validate(kind, obj),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            apps::validate(kind, obj)
        }
        ("batch", _) => batch::validate(kind, obj),
        _ => other::validate(group, kind, obj),
    }
}

fn replication_controller(obj: &Value) -> Vec<FieldError> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut errs = Vec::new();
    util::non_negative(&mut errs, spec, "replicas", "spec");
    let selector = spec
        .get("selector")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
    let Some(selector) = selector else {
        errs.push(FieldError::required("spec.selector", ""));
        return errs;
    };
    errs.extend(meta::validate_labels(Some(selector), "spec.selector"));
    if let Some(tmpl) = spec.get("template").filter(|t| !t.is_null()) {
        let labels = tmpl.pointer("/metadata/labels");
        let wrapped = serde_json::json!({"matchLabels": selector});
        if !meta::selector_matches(&wrapped, labels) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                labels.cloned().unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
        errs.extend(pod::validate_pod_template(tmpl, "spec.template"));
        let restart = tmpl
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("");
        if restart != "Always" {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                restart,
                &["Always"],
            ));
        }
    } else {
        errs.push(FieldError::required("spec.template", ""));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_checks_metadata_and_spec() {
        let mut pod = json!({"metadata": {"name": "Web"}, "spec": {"containers": [{"name": "c"}]}});
        crate::defaults::apply("", "Pod", &mut pod);
        let errs: Vec<String> = validate_create("", "Pod", &pod)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 2);
        assert!(
            errs[0].starts_with(
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain"
            )
        );
        assert_eq!(errs[1], "spec.containers[0].image: Required value");
        let ns = json!({"metadata": {"name": "a.b"}});
        assert_eq!(
            validate_create("", "Namespace", &ns)[0].to_string(),
            "metadata.name: Invalid value: \"a.b\": must not contain dots"
        );
        let status = invalid_status("", "Pod", "Web", &validate_create("", "Pod", &pod));
        assert_eq!(status.code, 422);
    }

    #[test]
    fn custom_kinds_get_metadata_checks_only() {
        assert!(
            validate_create(
                "example.com",
                "Widget",
                &json!({"metadata": {"name": "w"}, "spec": {"x": 1}})
            )
            .is_empty()
        );
    }

    #[test]
    fn replication_controllers() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        crate::defaults::apply("", "ReplicationController", &mut rc);
        assert!(validate_create("", "ReplicationController", &rc).is_empty());
        assert!(validate_update("", "ReplicationController", &rc, &rc).is_empty());
    }
}
