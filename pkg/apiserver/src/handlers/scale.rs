//! The `scale` subresource: an `autoscaling/v1` `Scale` view of a workload's
//! replica count, read from and written back to the parent object.

use crate::api::Call;
use crate::body::Body;
use crate::codec;
use crate::errors::{self, ApiResult};
use crate::handlers::update::{requested_revision, write};
use crate::output;
use crate::request::Verb;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// Where a resource keeps its replica counts and selector.
struct Paths {
    spec_replicas: String,
    status_replicas: String,
    selector: Option<String>,
}

fn paths(call: &Call<'_>) -> Paths {
    // Custom resources declare their paths in the CRD; built-ins use spec/status.replicas.
    let custom = call.resource.scale_paths.clone();
    match custom {
        Some(p) => Paths {
            spec_replicas: p.spec_replicas,
            status_replicas: p.status_replicas,
            selector: p.label_selector,
        },
        None => Paths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            selector: Some(".status.selector".into()),
        },
    }
}

fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |acc, part| format!("{acc}/{part}"))
}

/// `matchLabels`/`matchExpressions` as the string form `kubectl` shows (`app=web,tier in (a,b)`).
pub fn selector_string(selector: &Value) -> String {
    let mut terms = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            terms.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut values = values;
            values.sort_unstable();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => terms.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => terms.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => terms.push(key.to_string()),
                "DoesNotExist" => terms.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    terms.sort();
    terms.join(",")
}

fn to_scale(obj: &Value, paths: &Paths) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            metadata[field] = v.clone();
        }
    }
    let spec_replicas = obj
        .pointer(&pointer(&paths.spec_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let status_replicas = obj
        .pointer(&pointer(&paths.status_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let mut status = json!({"replicas": status_replicas});
    // Built-ins derive the selector from spec.selector; CRDs point at a string field.
    let selector = match obj.pointer("/spec/selector") {
        Some(sel) if sel.is_object() && paths.selector.as_deref() == Some(".status.selector") => {
            Some(selector_string(sel))
        }
        _ => paths
            .selector
            .as_deref()
            .and_then(|p| obj.pointer(&pointer(p)))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": spec_replicas},
        "status": status,
    })
}

/// GET, PUT or PATCH of `<resource>/<name>/scale`.
pub async fn scale(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let name = call.request.name.clone().unwrap_or_default();
    let paths = paths(call);
    match call.request.verb {
        Verb::Get => {
            let (obj, _) = crate::handlers::get::read(call, &name)
                .await?
                .ok_or_else(|| errors::not_found(&call.resource, &name))?;
            output::object(call, StatusCode::OK, &to_scale(&obj, &paths))
        }
        Verb::Update | Verb::Patch => {
            let body: Value = if call.request.verb == Verb::Update {
                codec::decode_body(call.headers, &call.body)?
            } else {
                serde_json::from_slice(&call.body)
                    .map_err(|e| errors::bad_request(format!("error decoding patch: {e}")))?
            };
            let precondition = if call.request.verb == Verb::Update {
                requested_revision(&body)?
            } else {
                None
            };
            let is_patch = call.request.verb == Verb::Patch;
            let spec_pointer = pointer(&paths.spec_replicas);
            let (obj, code) = write(call, &name, None, precondition, |old| {
                let mut scale = to_scale(old, &paths);
                if is_patch {
                    json_patch::merge(&mut scale, &body);
                } else {
                    scale = body.clone();
                }
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(kite_api::validation::invalid_status(
                        "autoscaling",
                        "Scale",
                        &name,
                        &[kite_api::FieldError::invalid(
                            "spec.replicas",
                            replicas,
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut new = old.clone();
                set_pointer(&mut new, &spec_pointer, json!(replicas));
                Ok(new)
            })
            .await?;
            output::object(call, code, &to_scale(&obj, &paths))
        }
        _ => Err(errors::method_not_allowed(
            &call.resource,
            call.request.verb.as_str(),
        )),
    }
}

fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let mut current = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            current[*part] = value;
            return;
        }
        if !current.get(*part).is_some_and(Value::is_object) {
            current[*part] = json!({});
        }
        current = &mut current[*part];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_like_kubectl() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]});
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b)");
    }
}
