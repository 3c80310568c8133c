//! Unknown-field detection for `fieldValidation=Strict|Warn`.
//!
//! kube-apiserver reports each field the schema does not know by its path:
//! `spec.foo`, `spec.template.spec.containers[0].badField`, map keys joined
//! with dots (`metadata.labels.x` never appears since labels is a map). The
//! caller formats them as kube-apiserver does:
//!
//! - create/update, Strict: 400 BadRequest with message
//!   `<Kind> in version "<version>" cannot be handled as a <Kind>: strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`
//! - Warn: one `Warning: 299 - "unknown field \"spec.foo\""` header per field.
//! - patch (json/merge/strategic), Strict: 422 Invalid with the single cause
//!   `patch: Invalid value: "<patched object>": strict decoding error: unknown field "spec.foo"`.
//!
//! Duplicate fields ([`super::duplicate_fields`]) join the same list as
//! `duplicate field "spec.replicas"`, duplicates first as the JSON decoder
//! meets them.

use super::SchemaNode;
use serde_json::Value;

/// Paths of fields in `value` that the built-in definition `def` does not
/// declare, in document order. An unknown definition reports nothing.
pub fn unknown_fields(def: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(node) = super::node(def) {
        walk_typed(node, value, "", &mut out);
    }
    out
}

/// Drops the fields [`unknown_fields`] reports, as decoding into the Go
/// types does: what a Warn or Ignore request carries beyond the schema is
/// not stored.
pub fn drop_unknown_fields(def: &str, value: &mut Value) {
    if let Some(node) = super::node(def) {
        crate::structural::prune::prune_typed(node, value);
    }
}

/// Paths of fields a custom resource's structural schema would prune.
///
/// `schema` is the version's `openAPIV3Schema`; `value` the whole object. As
/// for any custom resource, `apiVersion`, `kind` and `metadata` are always
/// allowed at the root and in `x-kubernetes-embedded-resource` objects, and
/// `metadata` is checked against ObjectMeta.
pub fn unknown_fields_in_schema(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_structural(SchemaNode::standalone(schema), value, "", true, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Go struct decoding: properties are the struct's fields, maps take any key.
fn walk_typed(node: SchemaNode<'_>, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if node.is_int_or_string() {
                return;
            }
            if let Some(props) = node.properties() {
                for (key, child) in map {
                    match props.get(key) {
                        Some(_) => {
                            if let Some(child_node) = node.property(key) {
                                walk_typed(child_node, child, &join(path, key), out);
                            }
                        }
                        None => out.push(join(path, key)),
                    }
                }
            } else if let Some(values) = node.additional_properties() {
                for (key, child) in map {
                    walk_typed(values, child, &join(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for (i, child) in items.iter().enumerate() {
                    walk_typed(item, child, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Structural pruning: what a CRD schema would drop from `value`.
fn walk_structural(
    node: SchemaNode<'_>,
    value: &Value,
    path: &str,
    root: bool,
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let embedded = root || node.is_embedded_resource();
            let props = node.properties();
            let values = node.additional_properties();
            let keep_unknown = node.preserves_unknown_fields() || node.allows_any_additional();
            for (key, child) in map {
                let child_path = join(path, key);
                if embedded && key == "metadata" {
                    walk_typed_metadata(child, &child_path, out);
                    continue;
                }
                if let Some(child_node) = props.and_then(|_| node.property(key)) {
                    walk_structural(child_node, child, &child_path, false, out);
                } else if let Some(values) = values {
                    walk_structural(values, child, &child_path, false, out);
                } else if !(embedded && (key == "apiVersion" || key == "kind"))
                    && !keep_unknown
                    && !node.is_int_or_string()
                {
                    out.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for (i, child) in items.iter().enumerate() {
                    walk_structural(item, child, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

fn walk_typed_metadata(value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(node) = super::node("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta") {
        walk_typed(node, value, path, out);
    }
}
