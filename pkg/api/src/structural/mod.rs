//! Structural schemas of CustomResourceDefinitions: what kube-apiserver does
//! with a custom object and its version's `openAPIV3Schema`.
//!
//! On every write and every read from storage kube-apiserver first
//! [`prune`]s the object (fields the schema does not declare are dropped,
//! unless `x-kubernetes-preserve-unknown-fields` keeps them), then applies
//! the schema's [`default`]s, and on writes [`validate`]s the result, turning
//! each failed check into a [`FieldError`](crate::FieldError) worded as
//! kube-openapi and apiextensions-apiserver word them. [`prepare`] is the
//! prune-then-default step both paths share.
//!
//! Schemas are taken as the JSON of the CRD (`serde_json::Value`): there are
//! no `$ref`s in a CRD schema, so a [`Node`] is just a position in it.

mod default;
mod format;
pub(crate) mod prune;
mod validate;

pub use default::default;
pub use prune::prune;
pub use validate::{validate, validate_update};

use serde_json::{Map, Value};

/// Prunes unknown fields and applies defaults, in kube-apiserver's order.
pub fn prepare(schema: &Value, obj: &mut Value) {
    prune(schema, obj);
    default(schema, obj);
}

/// A position in a structural schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node<'a>(pub(crate) &'a Value);

/// What `additionalProperties` says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Additional<'a> {
    /// Not set.
    Absent,
    /// `true` or `false`.
    Allows(bool),
    /// A schema for the values of a map.
    Schema(Node<'a>),
}

impl<'a> Node<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The `type` keyword, empty when unset.
    pub(crate) fn ty(&self) -> &'a str {
        self.get("type").and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn nullable(&self) -> bool {
        self.flag("nullable")
    }

    pub(crate) fn properties(&self) -> Option<&'a Map<String, Value>> {
        self.get("properties").and_then(Value::as_object)
    }

    pub(crate) fn property(&self, key: &str) -> Option<Node<'a>> {
        self.properties()?.get(key).map(Node)
    }

    pub(crate) fn additional(&self) -> Additional<'a> {
        match self.get("additionalProperties") {
            Some(Value::Bool(b)) => Additional::Allows(*b),
            Some(schema @ Value::Object(_)) => Additional::Schema(Node(schema)),
            _ => Additional::Absent,
        }
    }

    /// The schema of a key that is not a declared property.
    pub(crate) fn values(&self) -> Option<Node<'a>> {
        match self.additional() {
            Additional::Schema(node) => Some(node),
            _ => None,
        }
    }

    pub(crate) fn items(&self) -> Option<Node<'a>> {
        match self.get("items") {
            Some(schema @ Value::Object(_)) => Some(Node(schema)),
            _ => None,
        }
    }

    pub(crate) fn default_value(&self) -> Option<&'a Value> {
        self.get("default")
    }

    pub(crate) fn preserves_unknown_fields(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    pub(crate) fn is_int_or_string(&self) -> bool {
        self.flag("x-kubernetes-int-or-string")
    }

    pub(crate) fn is_embedded_resource(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    /// The sub-schemas of `allOf`, `anyOf` or `oneOf`.
    pub(crate) fn list(&self, key: &str) -> Vec<Node<'a>> {
        match self.get(key) {
            Some(Value::Array(all)) => all.iter().filter(|s| s.is_object()).map(Node).collect(),
            _ => Vec::new(),
        }
    }
}

/// `path.key`, or `key` at the root.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests;
