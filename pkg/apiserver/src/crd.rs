//! CustomResourceDefinitions: serving the resources they declare.
//!
//! After every write to `customresourcedefinitions` (and at start) the stored
//! CRDs are read back and turned into [`ResourceInfo`]s, one per served
//! version, each carrying its version's schema and the storage version: new
//! ones are registered (and get a watch cache), their `NamesAccepted` and
//! `Established` conditions are set, `status.storedVersions` records the
//! storage version, versions no longer served are unregistered, and
//! resources whose CRD is gone are unregistered and any objects left deleted.
//!
//! Deleting a CRD gives it the `customresourcecleanup.apiextensions.k8s.io`
//! finalizer and a `Terminating` condition ([`mark_terminating`]); [`run`]
//! then deletes its objects through the ordinary delete path (so their own
//! finalizers hold them) and, once none is left, drops the finalizer, which
//! completes the CRD's deletion, as apiextensions-apiserver's finalizing
//! controller does.

use crate::api::{Api, Call};
use crate::authn::UserInfo;
use crate::objects;
use crate::request::{ResourceRequest, Verb};
use bytes::Bytes;
use http::HeaderMap;
use kite_api::resources::{CustomSchema, STANDARD_VERBS, ScalePaths, SubresourceInfo};
use kite_api::{FieldError, ResourceInfo, openapi::CustomResource};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The finalizer that holds a deleted CRD until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

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
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    // Clients use the served version Kubernetes ranks highest (GA, then beta, then alpha).
    let preferred = versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .max_by_key(|name| crate::discovery::version_priority(name))
        .unwrap_or_default()
        .to_string();
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or(versions.first());
    let storage_version = storage
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let storage_schema = storage
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
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
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
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
                preferred: version == preferred,
                scale_paths,
                custom: Some(Arc::new(CustomSchema {
                    schema: schema.clone(),
                    storage_version: storage_version.clone(),
                    storage_schema: storage_schema.clone(),
                    terminating,
                })),
            };
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

/// `(group, plural)` a CRD names, whether or not any version is served.
fn group_plural(crd: &Value) -> Option<(String, String)> {
    let group = crd.pointer("/spec/group").and_then(Value::as_str)?;
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str)?;
    Some((group.to_string(), plural.to_string()))
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
    let mut defined = BTreeSet::new();
    for kv in &listed.kvs {
        let Ok(mut crd) = objects::decode(&kv.value, kv.mod_revision) else {
            continue;
        };
        if let Some(names) = group_plural(&crd) {
            defined.insert(names);
        }
        let resources = resources_of(&crd);
        if resources.is_empty() {
            continue;
        }
        wanted.extend(resources);
        let mut changed = false;
        if !established(&crd) {
            set_conditions(&mut crd);
            changed = true;
        }
        changed |= record_storage_version(&mut crd);
        if changed {
            let _ = api
                .store
                .update(&kv.key, objects::encode(&crd), kv.mod_revision, 0)
                .await;
        }
    }
    let served: BTreeSet<(String, String, String)> = wanted
        .iter()
        .map(|r| {
            let info = &r.resource.info;
            (
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            )
        })
        .collect();
    let mut gone = BTreeSet::new();
    for r in api.custom_resources() {
        let info = &r.info;
        let key = (
            info.group.clone(),
            info.version.clone(),
            info.plural.clone(),
        );
        if served.contains(&key) {
            continue;
        }
        if defined.contains(&(info.group.clone(), info.plural.clone())) {
            // The CRD is still there but stopped serving this version: 404 from now on.
            api.registry
                .remove_version(&info.group, &info.version, &info.plural);
        } else {
            gone.insert((info.group.clone(), info.plural.clone()));
        }
    }
    // Resources whose CRD is gone: unregister them and delete any objects left
    // (normally the cleanup finalizer emptied them first).
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

/// Adds the storage version to `status.storedVersions` if missing, as the CRD
/// strategy does; true if the CRD changed.
fn record_storage_version(crd: &mut Value) -> bool {
    let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v.get("name"))
        .cloned()
    else {
        return false;
    };
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let stored = &mut crd["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    match stored.as_array_mut() {
        Some(list) if !list.contains(&storage) => {
            list.push(storage);
            true
        }
        _ => false,
    }
}

/// Sets (or replaces) the CRD condition of `type`.
fn set_condition(crd: &mut Value, kind: &str, reason: &str, message: &str) {
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let conditions = &mut crd["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let condition = json!({
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastTransitionTime": objects::now_rfc3339(),
    });
    if let Some(list) = conditions.as_array_mut() {
        match list.iter_mut().find(|c| c["type"] == kind) {
            Some(existing) => *existing = condition,
            None => list.push(condition),
        }
    }
}

/// What deleting a CRD does first: the cleanup finalizer and a `Terminating` condition.
pub fn mark_terminating(crd: &mut Value) {
    let meta = objects::metadata_mut(crd);
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f == CLEANUP_FINALIZER)
    {
        list.push(json!(CLEANUP_FINALIZER));
    }
    set_condition(
        crd,
        "Terminating",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

fn terminating(crd: &Value) -> bool {
    crd.pointer("/metadata/deletionTimestamp").is_some()
        && crd
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|v| v == CLEANUP_FINALIZER))
}

/// Runs the CRD cleanup finalizer until the API is dropped.
pub async fn run(api: Arc<Api>) {
    let Some(crds) = api
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return;
    };
    let cache = api.cache(&crds);
    crate::finalizer_loop::run(cache, "custom resource", terminating, |name| {
        let api = api.clone();
        async move { cleanup(&api, &name).await }
    })
    .await;
}

/// Deletes what is left of a terminating CRD's objects; true once the CRD is released.
async fn cleanup(api: &Api, name: &str) -> Result<bool, kite_api::Status> {
    let Some(crds) = api
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return Ok(true);
    };
    let key = objects::key(&crds, None, name);
    let (_, kv) = api
        .store
        .get(&key, 0)
        .await
        .map_err(crate::errors::from_store)?;
    let Some(kv) = kv else {
        return Ok(true);
    };
    let mut crd = objects::decode(&kv.value, kv.mod_revision).map_err(crate::errors::internal)?;
    if !terminating(&crd) {
        return Ok(true);
    }
    let Some((group, plural)) = group_plural(&crd) else {
        return Ok(true);
    };
    let resource = api
        .registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.plural == plural)
        .max_by_key(|r| r.preferred);
    let prefix = format!("/registry/{group}/{plural}/");
    let listed = api
        .store
        .list(&prefix, None, 0, 0)
        .await
        .map_err(crate::errors::from_store)?;
    let remaining = match resource {
        Some(resource) => {
            // One delete-collection per namespace, through the ordinary delete path.
            let namespaces: BTreeSet<Option<String>> = listed
                .kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
                .map(|o| Some(objects::namespace(&o).to_string()).filter(|n| !n.is_empty()))
                .collect();
            let headers = HeaderMap::new();
            let user = UserInfo {
                name: "system:serviceaccount:kube-system:crd-finalizer".into(),
                groups: vec![
                    "system:masters".into(),
                    crate::authn::AUTHENTICATED_GROUP.into(),
                ],
            };
            for namespace in namespaces {
                let call = Call {
                    api,
                    request: ResourceRequest {
                        group: resource.group.clone(),
                        version: resource.version.clone(),
                        namespace: namespace.filter(|_| resource.namespaced),
                        resource: resource.plural.clone(),
                        name: None,
                        subresource: None,
                        subpath: None,
                        verb: Verb::DeleteCollection,
                    },
                    resource: resource.clone(),
                    query: "",
                    headers: &headers,
                    body: Bytes::new(),
                    user: &user,
                    upgrade: None,
                };
                crate::handlers::delete::delete_collection(&call).await?;
            }
            api.store
                .list(&prefix, None, 0, 0)
                .await
                .map_err(crate::errors::from_store)?
                .kvs
                .len()
        }
        // Not served at all: nothing can hold its objects, remove them outright.
        None => {
            for kv in listed.kvs {
                let _ = api.store.delete(&kv.key, None).await;
            }
            0
        }
    };
    if remaining > 0 {
        let progress = crd
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Terminating"))
            .is_some_and(|c| c["reason"] == "InstanceDeletionInProgress");
        if !progress {
            set_condition(
                &mut crd,
                "Terminating",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            );
            let _ = api
                .store
                .update(&key, objects::encode(&crd), kv.mod_revision, 0)
                .await;
        }
        return Ok(false);
    }
    // Every object is gone: drop the finalizer; with none left the CRD goes too.
    let finalizers: Vec<Value> = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter(|v| *v != CLEANUP_FINALIZER)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if finalizers.is_empty() {
        let _ = api
            .store
            .delete(&key, Some(kv.mod_revision))
            .await
            .map_err(crate::errors::from_store)?;
    } else {
        set_condition(
            &mut crd,
            "Terminating",
            "InstanceDeletionCompleted",
            "removed all instances",
        );
        objects::metadata_mut(&mut crd).insert("finalizers".into(), json!(finalizers));
        let _ = api
            .store
            .update(&key, objects::encode(&crd), kv.mod_revision, 0)
            .await
            .map_err(crate::errors::from_store)?;
    }
    sync(api).await;
    Ok(true)
}

/// Checks the schemas of a CRD's versions are structural, as
/// apiextensions-apiserver does before accepting it.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, version) in versions.iter().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            match schema.get("type").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(
                    format!("{path}.type"),
                    "must not be empty at the root",
                )),
                Some("object") => {}
                Some(other) => errs.push(FieldError::invalid(
                    format!("{path}.type"),
                    other,
                    "must be object at the root",
                )),
            }
            structural(schema, &path, &mut errs);
        }
    }
    errs
}

/// Every specified field needs a `type`, unless it is int-or-string or keeps unknown fields.
fn structural(schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let children = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (format!("{path}.properties[{k}]"), v, "object fields"))
        .chain(
            schema
                .get("items")
                .filter(|v| v.is_object())
                .map(|v| (format!("{path}.items"), v, "array items")),
        )
        .chain(
            schema
                .get("additionalProperties")
                .filter(|v| v.is_object())
                .map(|v| (format!("{path}.additionalProperties"), v, "object fields")),
        );
    for (child_path, child, what) in children {
        let flag = |k: &str| child.get(k).and_then(Value::as_bool).unwrap_or(false);
        let typed = child
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if !typed
            && !flag("x-kubernetes-int-or-string")
            && !flag("x-kubernetes-preserve-unknown-fields")
        {
            errs.push(FieldError::required(
                format!("{child_path}.type"),
                format!("must not be empty for specified {what}"),
            ));
        }
        structural(child, &child_path, errs);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(versions: Value) -> Value {
        json!({
            "metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "kind": "Gadget"}, "versions": versions},
        })
    }

    #[test]
    fn every_served_version_carries_its_schema_and_the_storage_version() {
        let c = crd(json!([
            {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v1alpha1", "served": false, "storage": false},
        ]));
        let served = resources_of(&c);
        let versions: Vec<&str> = served
            .iter()
            .map(|s| s.resource.info.version.as_str())
            .collect();
        assert_eq!(versions, ["v1beta1", "v1"]);
        // v1 outranks v1beta1 whichever is stored.
        assert!(served[1].resource.info.preferred && !served[0].resource.info.preferred);
        let beta = served[0].resource.info.custom.clone().expect("custom");
        assert_eq!(beta.storage_version, "v1");
        assert_eq!(beta.storage_schema, json!({"type": "object"}));
        assert_eq!(beta.schema["x-kubernetes-preserve-unknown-fields"], true);
        assert!(!beta.terminating);
    }

    #[test]
    fn stored_versions_accumulate() {
        let mut c = crd(json!([{"name": "v1", "served": true, "storage": true}]));
        c["status"] = json!({"storedVersions": ["v1beta1"]});
        assert!(record_storage_version(&mut c));
        assert_eq!(c["status"]["storedVersions"], json!(["v1beta1", "v1"]));
        assert!(!record_storage_version(&mut c));
    }

    #[test]
    fn deleting_adds_the_cleanup_finalizer_once() {
        let mut c = crd(json!([]));
        mark_terminating(&mut c);
        mark_terminating(&mut c);
        assert_eq!(c["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        let conditions = c["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["type"], "Terminating");
        assert_eq!(conditions[0]["reason"], "InstanceDeletionPending");
        c["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(terminating(&c));
    }

    #[test]
    fn non_structural_schemas_are_rejected() {
        let c = crd(
            json!([{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"properties": {"a": {"type": "string"}, "b": {"items": {}, "type": "array"}}},
                    "free": {"x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true},
                },
            }}}]),
        );
        let messages: Vec<String> = validate(&c).iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].items.type: Required value: must not be empty for specified array items",
            ]
        );
        let root = crd(json!([{"name": "v1", "schema": {"openAPIV3Schema": {"type": "string"}}}]));
        assert_eq!(
            validate(&root)[0].to_string(),
            "spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
        );
    }
}
