//! The Swagger 2.0 document served at `/openapi/v2`.

use super::paths::{self, Operation, PathItem};
use super::{CustomResource, INFO_VERSION};
use crate::resources::ResourceInfo;
use crate::schema;
use serde_json::{Map, Value, json};

/// The whole v2 document: every built-in definition plus the custom
/// resources' schemas, and the paths of `builtin` and `custom` resources.
pub fn build_v2(builtin: &[ResourceInfo], custom: &[CustomResource]) -> Value {
    let mut definitions = schema::definitions().clone();
    let mut path_map = Map::new();
    for info in builtin {
        for item in paths::resource_paths(info, &info.definition) {
            path_map.insert(item.path.clone(), render_path(&item, false));
        }
    }
    for cr in custom {
        for (name, def) in cr.definitions("#/definitions/") {
            definitions.insert(name, def);
        }
        for item in paths::resource_paths(&cr.info, &cr.definition_name()) {
            path_map.insert(item.path.clone(), render_path(&item, true));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": path_map,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}},
        "security": [{"BearerToken": []}],
    })
}

fn render_path(item: &PathItem, custom: bool) -> Value {
    let mut out = Map::new();
    for op in &item.operations {
        out.insert(op.method.into(), render_operation(op, custom));
    }
    let params: Vec<Value> = item
        .path_params
        .iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": paths::path_param_description(name)}))
        .collect();
    out.insert("parameters".into(), Value::Array(params));
    Value::Object(out)
}

fn render_operation(op: &Operation, custom: bool) -> Value {
    let mut params: Vec<Value> = Vec::new();
    if let Some(body) = &op.body {
        params.push(json!({"name": "body", "in": "body", "required": op.method != "delete", "schema": {"$ref": format!("#/definitions/{body}")}}));
    }
    for p in op.query {
        params.push(json!({"name": p.name, "in": "query", "type": p.ty, "uniqueItems": true, "description": p.description}));
    }
    let consumes: Vec<&str> = if op.method == "patch" {
        paths::patch_media_types(custom).to_vec()
    } else {
        vec!["*/*"]
    };
    let response =
        json!({"description": "OK", "schema": {"$ref": format!("#/definitions/{}", op.response)}});
    let mut responses = json!({"200": response, "401": {"description": "Unauthorized"}});
    if matches!(op.method, "post" | "put" | "patch") {
        responses["201"] = json!({"description": "Created", "schema": {"$ref": format!("#/definitions/{}", op.response)}});
    }
    let (group, version, kind) = &op.gvk;
    json!({
        "description": op.description,
        "operationId": op.id,
        "consumes": consumes,
        "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
        "schemes": ["https"],
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
    })
}
