//! Pruning: dropping what a structural schema does not declare.
//!
//! As kube-apiserver does for every custom object it decodes (request bodies
//! and objects read from storage):
//!
//! - an object keeps the properties its schema declares, and every key when it
//!   has an `additionalProperties` schema or `x-kubernetes-preserve-unknown-fields`;
//! - `apiVersion`, `kind` and `metadata` are always kept at the root and in
//!   `x-kubernetes-embedded-resource` objects, and such `metadata` is pruned to
//!   the fields of ObjectMeta;
//! - a `null` whose schema is neither nullable nor has a default is dropped
//!   (a default replaces it later), so a cleared optional field reads as absent.
//!
//! [`crate::schema::unknown_fields_in_schema`] reports exactly what this
//! drops, for `fieldValidation=Strict|Warn`.

use super::{Additional, Node};
use crate::schema::SchemaNode;
use serde_json::Value;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Drops from `obj` (a whole custom object) the fields `schema` does not allow.
pub fn prune(schema: &Value, obj: &mut Value) {
    walk(Some(Node(schema)), obj, true);
}

fn walk(node: Option<Node<'_>>, value: &mut Value, resource_root: bool) {
    match value {
        Value::Object(map) => {
            let Some(node) = node else {
                // Under x-kubernetes-preserve-unknown-fields with no schema: kept as is.
                return;
            };
            if node.is_int_or_string() {
                return;
            }
            let embedded = resource_root || node.is_embedded_resource();
            let keep_unknown = node.preserves_unknown_fields()
                || matches!(node.additional(), Additional::Allows(true));
            map.retain(|key, child| {
                if embedded && (key == "apiVersion" || key == "kind" || key == "metadata") {
                    return true;
                }
                let schema = node.property(key).or_else(|| node.values());
                match schema {
                    // A null the schema cannot hold and has no default for reads as absent.
                    Some(s) => !(child.is_null() && !s.nullable() && s.default_value().is_none()),
                    None => keep_unknown,
                }
            });
            for (key, child) in map.iter_mut() {
                if embedded && key == "metadata" {
                    prune_object_meta(child);
                    continue;
                }
                if embedded && (key == "apiVersion" || key == "kind") {
                    continue;
                }
                let schema = node.property(key).or_else(|| node.values());
                if let Some(schema) = schema {
                    walk(Some(schema), child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.and_then(|n| n.items()) {
                for child in items.iter_mut() {
                    walk(Some(item), child, false);
                }
            }
        }
        _ => {}
    }
}

/// `metadata` keeps the fields of ObjectMeta only, as its typed decoding does.
fn prune_object_meta(meta: &mut Value) {
    if let Some(node) = crate::schema::node(OBJECT_META) {
        prune_typed(node, meta);
    }
}

/// Go struct decoding: unknown struct fields vanish, map values are kept.
pub(crate) fn prune_typed(node: SchemaNode<'_>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if node.is_int_or_string() {
                return;
            }
            if let Some(props) = node.properties() {
                map.retain(|key, _| props.contains_key(key));
                for (key, child) in map.iter_mut() {
                    if let Some(child_node) = node.property(key) {
                        prune_typed(child_node, child);
                    }
                }
            } else if let Some(values) = node.additional_properties() {
                for child in map.values_mut() {
                    prune_typed(values, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items() {
                for child in items.iter_mut() {
                    prune_typed(item, child);
                }
            }
        }
        _ => {}
    }
}
