//! Walking a schema: properties, items, map values, `$ref`s and extensions.

use super::Definitions;
use super::extensions::PatchMeta;
use serde_json::Value;
use std::sync::LazyLock;

static EMPTY: LazyLock<Definitions> = LazyLock::new(Definitions::new);

/// How many `$ref` hops are followed before giving up (guards cycles).
const MAX_REF_DEPTH: usize = 32;

/// A position in a schema, with the definitions its `$ref`s resolve against.
///
/// The node remembers the schema it was reached through, so an extension set
/// next to a `$ref` (as kube-apiserver writes `x-kubernetes-patch-strategy`
/// beside `"$ref"`) is found as well as one on the referenced definition.
#[derive(Clone, Copy, Debug)]
pub struct SchemaNode<'a> {
    defs: &'a Definitions,
    schema: &'a Value,
}

impl<'a> SchemaNode<'a> {
    /// A node for `schema`, resolving `$ref`s against `defs`.
    pub fn new(defs: &'a Definitions, schema: &'a Value) -> Self {
        Self { defs, schema }
    }

    /// A node for a self-contained schema (a CRD's structural schema).
    pub fn standalone(schema: &'a Value) -> Self {
        Self {
            defs: &EMPTY,
            schema,
        }
    }

    /// The schema as reached, before following `$ref`.
    pub fn raw(&self) -> &'a Value {
        self.schema
    }

    /// The schema after following `$ref`s (and a single-element `allOf`, the
    /// OpenAPI v3 way of attaching a description to a reference).
    pub fn resolved(&self) -> &'a Value {
        let mut current = self.schema;
        for _ in 0..MAX_REF_DEPTH {
            if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
                let name = reference.rsplit('/').next().unwrap_or(reference);
                match self.defs.get(name) {
                    Some(next) => current = next,
                    None => return current,
                }
            } else if let Some(Value::Array(all)) = current.get("allOf") {
                match all.as_slice() {
                    [only] => current = only,
                    _ => return current,
                }
            } else {
                return current;
            }
        }
        current
    }

    fn at(&self, schema: &'a Value) -> Self {
        Self {
            defs: self.defs,
            schema,
        }
    }

    /// An extension or keyword, looked up on the referencing node first.
    pub fn keyword(&self, key: &str) -> Option<&'a Value> {
        self.schema.get(key).or_else(|| self.resolved().get(key))
    }

    /// The `type` keyword, if any.
    pub fn ty(&self) -> Option<&'a str> {
        self.keyword("type").and_then(Value::as_str)
    }

    /// The `description`, if any.
    pub fn description(&self) -> Option<&'a str> {
        self.keyword("description").and_then(Value::as_str)
    }

    /// The declared properties, when the schema is an object with `properties`.
    pub fn properties(&self) -> Option<&'a serde_json::Map<String, Value>> {
        self.resolved().get("properties").and_then(Value::as_object)
    }

    /// The named property's schema.
    pub fn property(&self, name: &str) -> Option<Self> {
        self.properties()?.get(name).map(|s| self.at(s))
    }

    /// The schema of list elements.
    pub fn items(&self) -> Option<Self> {
        match self.resolved().get("items")? {
            schema @ Value::Object(_) => Some(self.at(schema)),
            _ => None,
        }
    }

    /// The schema of map values (`additionalProperties` as a schema).
    pub fn additional_properties(&self) -> Option<Self> {
        match self.resolved().get("additionalProperties")? {
            schema @ Value::Object(_) => Some(self.at(schema)),
            _ => None,
        }
    }

    /// Whether `additionalProperties: true` allows any extra key.
    pub fn allows_any_additional(&self) -> bool {
        self.resolved().get("additionalProperties") == Some(&Value::Bool(true))
    }

    /// The child schema for an object key: a property, else the map value schema.
    pub fn child(&self, key: &str) -> Option<Self> {
        self.property(key).or_else(|| self.additional_properties())
    }

    fn flag(&self, key: &str) -> bool {
        self.keyword(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    /// `x-kubernetes-int-or-string: true` (IntOrString, Quantity).
    pub fn is_int_or_string(&self) -> bool {
        self.flag("x-kubernetes-int-or-string")
            || self.keyword("format").and_then(Value::as_str) == Some("int-or-string")
    }

    /// `x-kubernetes-embedded-resource: true`.
    pub fn is_embedded_resource(&self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    /// An object schema with neither properties nor a value schema: any
    /// content is accepted as is (RawExtension, FieldsV1, apiextensions JSON).
    pub fn is_opaque_object(&self) -> bool {
        let resolved = self.resolved();
        resolved.get("properties").is_none()
            && !matches!(resolved.get("additionalProperties"), Some(Value::Object(_)))
            && resolved.get("items").is_none()
    }

    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`).
    pub fn list_type(&self) -> Option<&'a str> {
        self.keyword("x-kubernetes-list-type")
            .and_then(Value::as_str)
    }

    /// `x-kubernetes-list-map-keys`.
    pub fn list_map_keys(&self) -> Vec<&'a str> {
        match self.keyword("x-kubernetes-list-map-keys") {
            Some(Value::Array(keys)) => keys.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `x-kubernetes-map-type` (`atomic`, `granular`).
    pub fn map_type(&self) -> Option<&'a str> {
        self.keyword("x-kubernetes-map-type")
            .and_then(Value::as_str)
    }

    /// The strategic-merge-patch strategy and merge key of this field.
    pub fn patch_meta(&self) -> PatchMeta {
        let text = |key: &str| {
            self.keyword(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        PatchMeta {
            strategy: text("x-kubernetes-patch-strategy"),
            merge_key: text("x-kubernetes-patch-merge-key"),
        }
    }
}
