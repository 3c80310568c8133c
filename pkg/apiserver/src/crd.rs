//! CustomResourceDefinitions: serving the resources they declare.
//!
//! After every write to `customresourcedefinitions` (and at start) the stored
//! CRDs are read back and turned into [`ResourceInfo`]s: new ones are
//! registered (and get a watch cache), their `NamesAccepted` and
//! `Established` conditions are set, and resources whose CRD is gone are
//! unregistered and their objects deleted.

use crate::api::Api;
use crate::objects;
use kite_api::resources::{STANDARD_VERBS, ScalePaths, SubresourceInfo};
use kite_api::{ResourceInfo, openapi::CustomResource};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// One served version of a CRD.
#[derive(Clone, Debug)]
pub struct ServedVersion {
    /// The resource and its schema.
    pub resource: CustomResource,
    /// The version's `additionalPrinterColumns`.
    pub columns: Value,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a CRD declares, one per served version.
pub fn resources_of(crd: &Value) -> Vec<ServedVersion> {
    let spec = crd.get("spec").unwrap_or(&Value::Null);
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = spec.get("names").unwrap_or(&Value::Null);
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| {
            let version = v.get("name").and_then(Value::as_str)?;
            let subs = v.get("subresources");
            let mut subresources = Vec::new();
            let mut scale_paths = None;
            if subs.and_then(|s| s.get("status")).is_some() {
                subresources.push(SubresourceInfo {
                    name: "status".into(),
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                    verbs: vec!["get".into(), "patch".into(), "update".into()],
                });
            }
            if let Some(scale) = subs.and_then(|s| s.get("scale")) {
                subresources.push(SubresourceInfo {
                    name: "scale".into(),
                    group: "autoscaling".into(),
                    version: "v1".into(),
                    kind: "Scale".into(),
                    verbs: vec!["get".into(), "patch".into(), "update".into()],
                });
                scale_paths = Some(ScalePaths {
                    spec_replicas: scale
                        .get("specReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: scale
                        .get("statusReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: scale
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            let info = ResourceInfo {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: singular.clone(),
                namespaced,
                verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
                short_names: strings(names.get("shortNames")),
                categories: strings(names.get("categories")),
                subresources,
                // Empty: the marker of a custom resource throughout the server.
                definition: String::new(),
                preferred: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                scale_paths,
            };
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            let columns = v
                .get("additionalPrinterColumns")
                .cloned()
                .unwrap_or_else(|| json!([]));
            Some(ServedVersion {
                resource: CustomResource { info, schema },
                columns,
            })
        })
        .collect()
}

/// Brings the registry in line with the stored CRDs.
pub async fn sync(api: &Api) {
    let Some(crds) = api
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return;
    };
    let prefix = objects::resource_prefix(&crds);
    let Ok(listed) = api.store.list(&prefix, None, 0, 0).await else {
        return;
    };
    let mut wanted = Vec::new();
    let mut served_names = BTreeSet::new();
    for kv in &listed.kvs {
        let Ok(mut crd) = objects::decode(&kv.value, kv.mod_revision) else {
            continue;
        };
        let resources = resources_of(&crd);
        if resources.is_empty() {
            continue;
        }
        for r in &resources {
            served_names.insert((
                r.resource.info.group.clone(),
                r.resource.info.plural.clone(),
            ));
        }
        wanted.extend(resources);
        if !established(&crd) {
            set_conditions(&mut crd);
            let _ = api
                .store
                .update(&kv.key, objects::encode(&crd), kv.mod_revision, 0)
                .await;
        }
    }
    // Resources whose CRD is gone: unregister and delete their objects.
    let gone: Vec<(String, String)> = api
        .custom_resources()
        .iter()
        .map(|r| (r.info.group.clone(), r.info.plural.clone()))
        .filter(|k| !served_names.contains(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for (group, plural) in &gone {
        api.registry.remove(group, plural);
        let prefix = format!("/registry/{group}/{plural}/");
        if let Ok(objects) = api.store.list(&prefix, None, 0, 0).await {
            for kv in objects.kvs {
                let _ = api.store.delete(&kv.key, None).await;
            }
        }
    }
    api.registry
        .upsert(wanted.iter().map(|r| r.resource.info.clone()).collect());
    for r in &wanted {
        api.cache(&r.resource.info);
    }
    api.set_custom_resources(wanted);
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

fn set_conditions(crd: &mut Value) {
    let now = objects::now_rfc3339();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}
