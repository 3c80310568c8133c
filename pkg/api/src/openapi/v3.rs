//! OpenAPI 3.0 documents, one per group version, and the `/openapi/v3` index.

use super::paths::{self, Operation, PathItem};
use super::{CustomResource, INFO_VERSION};
use crate::resources::ResourceInfo;
use crate::schema;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

const REF_PREFIX: &str = "#/components/schemas/";

/// The v3 documents of every group version, pre-serialised, with their hashes.
///
/// `paths` keys are `api/v1` and `apis/<group>/<version>`, as in the index.
#[derive(Clone, Debug, Default)]
pub struct OpenApiV3 {
    documents: BTreeMap<String, (Arc<Vec<u8>>, String)>,
}

impl OpenApiV3 {
    /// Builds every group version served by `builtin` and `custom`.
    pub fn build(builtin: &[ResourceInfo], custom: &[CustomResource]) -> Self {
        let mut gvs = BTreeSet::new();
        for info in builtin {
            gvs.insert((info.group.clone(), info.version.clone()));
        }
        for cr in custom {
            gvs.insert((cr.info.group.clone(), cr.info.version.clone()));
        }
        let mut out = Self::default();
        for (group, version) in gvs {
            out.rebuild_group_version(&group, &version, builtin, custom);
        }
        out
    }

    /// Rebuilds one group version (e.g. after a CRD change); a group version
    /// with no resources left is removed.
    pub fn rebuild_group_version(
        &mut self,
        group: &str,
        version: &str,
        builtin: &[ResourceInfo],
        custom: &[CustomResource],
    ) {
        let key = index_key(group, version);
        let in_gv = |i: &ResourceInfo| i.group == group && i.version == version;
        let builtin: Vec<&ResourceInfo> = builtin.iter().filter(|i| in_gv(i)).collect();
        let custom: Vec<&CustomResource> = custom.iter().filter(|c| in_gv(&c.info)).collect();
        if builtin.is_empty() && custom.is_empty() {
            self.documents.remove(&key);
            return;
        }
        let doc = build_v3_group_version(group, version, &builtin, &custom);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let hash = content_hash(&bytes);
        self.documents.insert(key, (Arc::new(bytes), hash));
    }

    /// The `/openapi/v3` discovery body.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .documents
            .iter()
            .map(|(key, (_, hash))| {
                (
                    key.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// The serialised document for `api/v1` or `apis/<group>/<version>`.
    pub fn document(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.documents.get(key).map(|(bytes, _)| Arc::clone(bytes))
    }

    /// The content hash of a document, as the index advertises it.
    pub fn hash(&self, key: &str) -> Option<&str> {
        self.documents.get(key).map(|(_, hash)| hash.as_str())
    }
}

fn index_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A 128-bit hex content hash (two SipHash-1-3 passes with distinct seeds).
fn content_hash(bytes: &[u8]) -> String {
    let mut out = String::new();
    for seed in [0u8, 1u8] {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut hasher);
        bytes.hash(&mut hasher);
        out.push_str(&format!("{:016X}", hasher.finish()));
    }
    out
}

/// One group version's document: its paths and the schemas they reach.
pub fn build_v3_group_version(
    group: &str,
    version: &str,
    builtin: &[&ResourceInfo],
    custom: &[&CustomResource],
) -> Value {
    let mut path_map = Map::new();
    let mut schemas = Map::new();
    let mut roots = BTreeSet::new();
    for info in builtin {
        for item in paths::resource_paths(info, &info.definition) {
            collect_defs(&item, &mut roots);
            path_map.insert(item.path.clone(), render_path(&item, false));
        }
    }
    for cr in custom {
        for (name, def) in cr.definitions(REF_PREFIX) {
            schemas.insert(name, to_v3_schema(def));
        }
        for item in paths::resource_paths(&cr.info, &cr.definition_name()) {
            collect_defs(&item, &mut roots);
            path_map.insert(item.path.clone(), render_path(&item, true));
        }
    }
    // Custom definitions reference built-ins (ObjectMeta, ListMeta).
    let mut pending: Vec<String> = roots.into_iter().collect();
    for def in schemas.values() {
        refs_in(def, &mut pending);
    }
    while let Some(name) = pending.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(def) = schema::definition(&name) else {
            continue;
        };
        refs_in(def, &mut pending);
        schemas.insert(name, to_v3_schema(def.clone()));
    }
    let _ = (group, version);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": path_map,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}},
        },
    })
}

fn collect_defs(item: &PathItem, into: &mut BTreeSet<String>) {
    for op in &item.operations {
        into.insert(op.response.clone());
        if let Some(body) = &op.body {
            into.insert(body.clone());
        }
    }
}

/// Names of definitions `value` references.
fn refs_in(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.rsplit('/').next()
            {
                into.push(name.to_string());
            }
            map.values().for_each(|v| refs_in(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, into)),
        _ => {}
    }
}

/// Rewrites a v2-style schema for OpenAPI 3: refs under `#/components/schemas/`
/// and a `$ref` with siblings wrapped as `allOf: [{$ref}]`, as kube-apiserver does.
fn to_v3_schema(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            if let Some(Value::String(r)) = map.remove("$ref") {
                let name = r.rsplit('/').next().unwrap_or(&r).to_string();
                let reference = json!({"$ref": format!("{REF_PREFIX}{name}")});
                let rest: Map<String, Value> =
                    map.into_iter().map(|(k, v)| (k, to_v3_schema(v))).collect();
                if rest.is_empty() {
                    return reference;
                }
                let mut wrapped = rest;
                wrapped.insert("allOf".into(), json!([reference]));
                return Value::Object(wrapped);
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, to_v3_schema(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(to_v3_schema).collect()),
        other => other,
    }
}

fn render_path(item: &PathItem, custom: bool) -> Value {
    let mut out = Map::new();
    for op in &item.operations {
        out.insert(op.method.into(), render_operation(op, custom));
    }
    let params: Vec<Value> = item
        .path_params
        .iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "description": paths::path_param_description(name), "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    out.insert("parameters".into(), Value::Array(params));
    Value::Object(out)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

fn render_operation(op: &Operation, custom: bool) -> Value {
    let params: Vec<Value> = op
        .query
        .iter()
        .map(|p| json!({"name": p.name, "in": "query", "description": p.description, "schema": {"type": p.ty, "uniqueItems": true}}))
        .collect();
    let produced: Map<String, Value> = [
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
    ]
    .iter()
    .map(|m| (m.to_string(), json!({"schema": schema_ref(&op.response)})))
    .collect();
    let mut responses = json!({"200": {"description": "OK", "content": produced.clone()}, "401": {"description": "Unauthorized"}});
    if matches!(op.method, "post" | "put" | "patch") {
        responses["201"] = json!({"description": "Created", "content": produced});
    }
    let (group, version, kind) = &op.gvk;
    let mut out = json!({
        "description": op.description,
        "operationId": op.id,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
    });
    if let Some(body) = &op.body {
        let types: Vec<&str> = if op.method == "patch" {
            paths::patch_media_types(custom).to_vec()
        } else {
            vec!["*/*"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema_ref(body)})))
            .collect();
        out["requestBody"] = json!({"content": content, "required": op.method != "delete"});
    }
    out
}
