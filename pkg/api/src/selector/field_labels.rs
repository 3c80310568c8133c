//! Which field labels each kind can be selected by, and their values for an object.
//!
//! Two tables, as in Kubernetes: the per-kind field label conversion (which
//! labels a request may use, with legacy and events.k8s.io aliases, and the
//! exact 400 message for the rest) and the per-kind selectable field set an
//! object is matched against. The two differ on purpose: pods accept
//! `status.podIPs` but never set it, so it only matches the empty value.

use super::Error;
use super::fields::FieldSet;
use serde_json::Value;

const POD_LABELS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const EVENT_LABELS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];

/// Maps a field label of a request on `group`/`kind` to the label objects are
/// matched on, or the error kube-apiserver answers with (400 BadRequest).
pub fn convert_field_label(group: &str, kind: &str, label: &str) -> Result<String, Error> {
    let accepted = |labels: &[&str]| labels.contains(&label);
    let ok = match (group, kind) {
        ("", "Pod") if label == "spec.host" => return Ok("spec.nodeName".into()),
        ("", "Pod") => accepted(POD_LABELS),
        ("", "Node") => accepted(&["metadata.name", "spec.unschedulable"]),
        ("", "ReplicationController") => {
            accepted(&["metadata.name", "metadata.namespace", "status.replicas"])
        }
        ("", "Event") => accepted(EVENT_LABELS),
        ("", "Namespace") => accepted(&["status.phase", "metadata.name"]),
        ("", "Secret") => accepted(&["type", "metadata.namespace", "metadata.name"]),
        ("", "Service") => accepted(&[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ]),
        ("events.k8s.io", "Event") => {
            return events_v1_label(label).map(str::to_string).ok_or_else(|| {
                Error::UnsupportedFieldLabel(format!("field label not supported: {label}"))
            });
        }
        ("batch", "Job") => {
            if accepted(&["metadata.name", "metadata.namespace", "status.successful"]) {
                return Ok(label.into());
            }
            return Err(Error::UnsupportedFieldLabel(format!(
                "field label \"{label}\" not supported for Job"
            )));
        }
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => {
            accepted(&["metadata.name", "spec.signerName"])
        }
        _ => return default_conversion(label),
    };
    if ok {
        Ok(label.into())
    } else {
        Err(Error::UnsupportedFieldLabel(format!(
            "field label not supported: {label}"
        )))
    }
}

/// events.k8s.io/v1 labels and the core Event labels they stand for.
fn events_v1_label(label: &str) -> Option<&'static str> {
    Some(match label {
        "reason" => "reason",
        "regarding.kind" => "involvedObject.kind",
        "regarding.namespace" => "involvedObject.namespace",
        "regarding.name" => "involvedObject.name",
        "regarding.uid" => "involvedObject.uid",
        "regarding.apiVersion" => "involvedObject.apiVersion",
        "regarding.resourceVersion" => "involvedObject.resourceVersion",
        "regarding.fieldPath" => "involvedObject.fieldPath",
        "reportingController" => "reportingComponent",
        "source" => "source",
        "type" => "type",
        "metadata.namespace" => "metadata.namespace",
        "metadata.name" => "metadata.name",
        _ => return None,
    })
}

/// `runtime.DefaultMetaV1FieldSelectorConversion`: kinds without their own table.
fn default_conversion(label: &str) -> Result<String, Error> {
    match label {
        "metadata.name" | "metadata.namespace" => Ok(label.into()),
        _ => Err(Error::UnsupportedFieldLabel(format!(
            "\"{label}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        ))),
    }
}

/// Field label conversion for a custom resource whose CRD declares
/// `selectableFields` (their `jsonPath`s, e.g. `.spec.color`).
pub fn convert_custom_field_label(selectable: &[String], label: &str) -> Result<String, Error> {
    if selectable.is_empty() {
        return default_conversion(label);
    }
    let declared = selectable
        .iter()
        .any(|p| p.strip_prefix('.').unwrap_or(p) == label);
    if matches!(label, "metadata.name" | "metadata.namespace") || declared {
        Ok(label.into())
    } else {
        Err(Error::UnsupportedFieldLabel(format!(
            "field label not supported: {label}"
        )))
    }
}

/// The selectable fields of a custom resource: metadata plus each declared path
/// holding a string, integer or boolean.
pub fn custom_field_set(selectable: &[String], object: &Value) -> FieldSet {
    let mut set = meta_fields(object);
    for path in selectable {
        let label = path.strip_prefix('.').unwrap_or(path);
        let value = lookup(object, label);
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        set.insert(label.to_string(), text);
    }
    set
}

/// The selectable fields of a built-in object of `group`/`kind`, keyed by the
/// labels [`convert_field_label`] returns. Accepts both Event shapes.
pub fn field_set(group: &str, kind: &str, object: &Value) -> FieldSet {
    let mut set = meta_fields(object);
    let mut put = |label: &str, value: String| {
        set.insert(label.to_string(), value);
    };
    let text = |path: &str| {
        lookup(object, path)
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let boolean = |path: &str| lookup(object, path).as_bool().unwrap_or(false).to_string();
    let int = |path: &str| lookup(object, path).as_i64().unwrap_or(0).to_string();
    match (group, kind) {
        ("", "Pod") => {
            for field in [
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
            ] {
                put(field, text(field));
            }
            put("spec.hostNetwork", boolean("spec.hostNetwork"));
            put("status.phase", text("status.phase"));
            let first_ip = lookup(object, "status.podIPs")
                .get(0)
                .and_then(|ip| ip.get("ip"))
                .and_then(Value::as_str);
            let ip = first_ip
                .map(str::to_string)
                .unwrap_or_else(|| text("status.podIP"));
            put("status.podIP", ip);
            put("status.nominatedNodeName", text("status.nominatedNodeName"));
        }
        ("", "Node") => put("spec.unschedulable", boolean("spec.unschedulable")),
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            put("status.replicas", int("status.replicas"))
        }
        ("", "Namespace") => put("status.phase", text("status.phase")),
        ("", "Secret") => put("type", text("type")),
        ("", "Service") => {
            put("spec.clusterIP", text("spec.clusterIP"));
            put("spec.type", text("spec.type"));
        }
        ("" | "events.k8s.io", "Event") => {
            let reference = if object.get("involvedObject").is_some() {
                "involvedObject"
            } else {
                "regarding"
            };
            for field in [
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            ] {
                put(
                    &format!("involvedObject.{field}"),
                    text(&format!("{reference}.{field}")),
                );
            }
            put("reason", text("reason"));
            let controller = [text("reportingComponent"), text("reportingController")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            let source = [text("source.component"), text("deprecatedSource.component")]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_else(|| controller.clone());
            put("reportingComponent", controller);
            put("source", source);
            put("type", text("type"));
        }
        ("batch", "Job") => put("status.successful", int("status.succeeded")),
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => {
            put("spec.signerName", text("spec.signerName"))
        }
        _ => {}
    }
    set
}

fn meta_fields(object: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    set.insert(
        "metadata.name".into(),
        lookup(object, "metadata.name")
            .as_str()
            .unwrap_or_default()
            .into(),
    );
    if let Some(ns) = lookup(object, "metadata.namespace").as_str() {
        set.insert("metadata.namespace".into(), ns.into());
    }
    set
}

/// The value at a dotted path, or `null`.
fn lookup<'a>(object: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(object, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}
