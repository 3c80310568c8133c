//! JSON schemas of every built-in kind, keyed by Kubernetes definition name.
//!
//! The schemas come from k8s-openapi's schemars support, generated once per
//! process ([`definitions`]) and enriched with the `x-kubernetes-*` extensions
//! of the 1.33 API types (patch strategies, merge keys, list and map types,
//! group-version-kinds). `$ref`s point at `#/definitions/<name>`.
//!
//! Other modules read schemas through [`SchemaNode`]: strategic merge patch
//! asks it for merge keys, strict field validation for known properties, and
//! the OpenAPI documents are built from [`definitions`].

mod duplicate;
mod extensions;
mod generate;
mod metrics;
mod table;
mod unknown;
mod walk;

pub use duplicate::duplicate_fields;
pub use extensions::{GVK_EXTENSION, PatchMeta};
pub use unknown::{drop_unknown_fields, unknown_fields, unknown_fields_in_schema};
pub use walk::SchemaNode;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Schemas keyed by definition name, e.g. `io.k8s.api.apps.v1.Deployment`.
pub type Definitions = serde_json::Map<String, Value>;

static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(generate::build);

/// (group, version, kind) → definition name, for every kind carrying a GVK.
static BY_GVK: LazyLock<HashMap<(String, String, String), String>> = LazyLock::new(|| {
    let mut index = HashMap::new();
    for (name, schema) in DEFINITIONS.iter() {
        for gvk in extensions::gvks_of(schema) {
            index.entry(gvk).or_insert_with(|| name.clone());
        }
    }
    index
});

/// Every built-in definition, built on first use and shared for the process.
pub fn definitions() -> &'static Definitions {
    &DEFINITIONS
}

/// The definition with this name, e.g. `io.k8s.api.core.v1.Pod`.
pub fn definition(name: &str) -> Option<&'static Value> {
    DEFINITIONS.get(name)
}

/// The definition of a built-in kind (`""`, `"v1"`, `"Pod"`), found through
/// its `x-kubernetes-group-version-kind`. List kinds (`PodList`) resolve too.
pub fn definition_for(group: &str, version: &str, kind: &str) -> Option<&'static Value> {
    let name = definition_name_for(group, version, kind)?;
    DEFINITIONS.get(name)
}

/// The definition name of a built-in kind, as [`definition_for`] finds it.
pub fn definition_name_for(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    BY_GVK
        .get(&(group.to_string(), version.to_string(), kind.to_string()))
        .map(String::as_str)
}

/// A walker positioned at the named definition.
pub fn node(name: &str) -> Option<SchemaNode<'static>> {
    DEFINITIONS
        .get(name)
        .map(|schema| SchemaNode::new(&DEFINITIONS, schema))
}

#[cfg(test)]
mod tests;
