//! The `x-kubernetes-*` extensions kube-apiserver publishes on its schemas.
//!
//! k8s-openapi's schemas carry descriptions and types only; this module adds
//! the patch and topology facts from [`super::table`] and the
//! `x-kubernetes-group-version-kind` of every root and list kind.

use super::Definitions;
use super::table::ROWS;
use crate::resources;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Name of the extension listing the group/version/kinds a definition serves.
pub const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";

/// One row of the extension table.
pub(super) struct Row {
    pub(super) def: &'static str,
    pub(super) field: &'static str,
    pub(super) strategy: &'static str,
    pub(super) merge_key: &'static str,
    pub(super) list_type: &'static str,
    pub(super) map_keys: &'static [&'static str],
    pub(super) map_type: &'static str,
}

/// The strategic-merge-patch facts of one field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchMeta {
    /// `merge`, `replace`, `retainKeys` or `merge,retainKeys`; empty when unset.
    pub strategy: String,
    /// The key identifying list elements when merging, e.g. `name`.
    pub merge_key: String,
}

impl PatchMeta {
    /// Whether lists (or maps) of this field merge rather than replace.
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }

    /// Whether the field asks for `$retainKeys` on diff.
    pub fn retains_keys(&self) -> bool {
        self.strategy.split(',').any(|s| s == "retainKeys")
    }

    /// Whether the field is replaced wholesale (`replace` strategy).
    pub fn replaces(&self) -> bool {
        self.strategy.split(',').any(|s| s == "replace")
    }
}

/// Adds the extension table and group-version-kinds to `defs`.
pub(super) fn apply(defs: &mut Definitions) {
    for row in ROWS {
        let Some(Value::Object(def)) = defs.get_mut(row.def) else {
            continue;
        };
        let target = if row.field.is_empty() {
            def
        } else {
            match def.get_mut("properties").and_then(|p| p.get_mut(row.field)) {
                Some(Value::Object(prop)) => prop,
                _ => continue,
            }
        };
        let mut set = |key: &str, value: &str| {
            if !value.is_empty() {
                target.insert(key.into(), Value::String(value.into()));
            }
        };
        set("x-kubernetes-patch-strategy", row.strategy);
        set("x-kubernetes-patch-merge-key", row.merge_key);
        set("x-kubernetes-list-type", row.list_type);
        set("x-kubernetes-map-type", row.map_type);
        if !row.map_keys.is_empty() {
            target.insert("x-kubernetes-list-map-keys".into(), json!(row.map_keys));
        }
    }
    for (name, gvks) in gvk_table() {
        if let Some(Value::Object(def)) = defs.get_mut(&name) {
            let list: Vec<Value> = gvks
                .into_iter()
                .map(|(group, version, kind)| json!({"group": group, "kind": kind, "version": version}))
                .collect();
            def.insert(GVK_EXTENSION.into(), Value::Array(list));
        }
    }
}

type Gvk = (String, String, String);

/// Definition name → the kinds it serves, as kube-apiserver's document lists them.
fn gvk_table() -> Vec<(String, BTreeSet<Gvk>)> {
    let mut table: std::collections::BTreeMap<String, BTreeSet<Gvk>> = Default::default();
    let mut add = |def: &str, group: &str, version: &str, kind: &str| {
        table.entry(def.to_string()).or_default().insert((
            group.to_string(),
            version.to_string(),
            kind.to_string(),
        ));
    };
    let builtin = resources::builtin();
    let mut group_versions = BTreeSet::new();
    for info in &builtin {
        add(&info.definition, &info.group, &info.version, &info.kind);
        if info.allows("list") {
            add(
                &format!("{}List", info.definition),
                &info.group,
                &info.version,
                &format!("{}List", info.kind),
            );
        }
        group_versions.insert((info.group.clone(), info.version.clone()));
    }
    add(
        "io.k8s.api.autoscaling.v1.Scale",
        "autoscaling",
        "v1",
        "Scale",
    );
    add("io.k8s.api.policy.v1.Eviction", "policy", "v1", "Eviction");
    add(
        "io.k8s.api.authentication.v1.TokenRequest",
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
    );
    add(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "",
        "v1",
        "Status",
    );
    add(
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup",
        "",
        "v1",
        "APIGroup",
    );
    add(
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
        "",
        "v1",
        "APIGroupList",
    );
    add(
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        "",
        "v1",
        "APIResourceList",
    );
    add(
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
        "",
        "v1",
        "APIVersions",
    );
    // DeleteOptions and WatchEvent are registered in every group version.
    for (group, version) in &group_versions {
        add(
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            group,
            version,
            "DeleteOptions",
        );
        add(
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
            group,
            version,
            "WatchEvent",
        );
    }
    table.into_iter().collect()
}

/// The (group, version, kind)s a schema declares through [`GVK_EXTENSION`].
pub(super) fn gvks_of(schema: &Value) -> Vec<Gvk> {
    let Some(Value::Array(list)) = schema.get(GVK_EXTENSION) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|gvk| {
            let field = |k: &str| gvk.get(k).and_then(Value::as_str).map(str::to_string);
            Some((field("group")?, field("version")?, field("kind")?))
        })
        .collect()
}
