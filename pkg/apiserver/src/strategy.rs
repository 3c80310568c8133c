//! Per-kind behaviour on writes: the only place a kind's write rules live.
//!
//! Server-managed metadata (uid, creationTimestamp, generation), the split
//! between the main resource and its `status` subresource, defaulting and
//! validation. The HTTP handlers are generic and call into here.

use crate::objects;
use bytes::Bytes;
use kite_api::{FieldError, ResourceInfo};
use serde_json::{Value, json};
use std::borrow::Cow;

/// Kinds whose `metadata.generation` counts spec changes (as their Kubernetes strategies do).
fn tracks_generation(resource: &ResourceInfo) -> bool {
    matches!(
        (resource.group.as_str(), resource.kind.as_str()),
        (
            "apps",
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        ) | ("", "ReplicationController")
            | ("batch", "Job" | "CronJob")
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("admissionregistration.k8s.io", _)
    ) || is_custom(resource)
}

/// Whether the resource comes from a CRD.
pub fn is_custom(resource: &ResourceInfo) -> bool {
    resource.definition.is_empty()
}

/// Whether the resource has a `status` subresource (so the main resource ignores status).
pub fn has_status(resource: &ResourceInfo) -> bool {
    resource.subresource("status").is_some()
}

/// Fills server-managed fields of a new object and applies defaults.
pub fn prepare_for_create(resource: &ResourceInfo, obj: &mut Value, namespace: Option<&str>) {
    obj["apiVersion"] = json!(resource.api_version());
    obj["kind"] = json!(resource.kind);
    let meta = objects::metadata_mut(obj);
    match namespace {
        Some(ns) if resource.namespaced => {
            meta.insert("namespace".into(), json!(ns));
        }
        _ => {
            meta.remove("namespace");
        }
    }
    meta.insert("uid".into(), json!(objects::new_uid()));
    meta.insert("creationTimestamp".into(), json!(objects::now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if tracks_generation(resource) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    // A create cannot set status of kinds with a status subresource.
    if has_status(resource)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    if is_custom(resource) {
        prune_and_default(resource, obj);
        return;
    }
    initial_status(resource, obj);
    fold_string_data(resource, obj);
    kite_api::defaults::apply(&resource.group, &resource.kind, obj);
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => kite_api::defaults::prepare_pod_for_create(obj),
        ("batch", "Job") => {
            let uid = objects::meta_str(obj, "uid").to_string();
            kite_api::defaults::job_selector(obj, &uid);
        }
        _ => {}
    }
}

/// A custom object as kube-apiserver decodes it: fields its version's schema
/// does not declare are pruned and the schema's defaults applied.
fn prune_and_default(resource: &ResourceInfo, obj: &mut Value) {
    if let Some(custom) = &resource.custom {
        kite_api::structural::prepare(&custom.schema, obj);
    }
}

/// An object read from storage, as served at the requested version. Like
/// kube-apiserver's storage decoder, a custom object is pruned and defaulted
/// by the storage version's schema, then converted (strategy `None`: only
/// `apiVersion` changes) and pruned by the requested version's schema.
/// Built-in objects are served as stored.
pub fn from_storage(resource: &ResourceInfo, obj: &mut Value) {
    let Some(custom) = &resource.custom else {
        // Built-in kinds two APIs share (Events, HPAs) are stored in one version.
        if converts(resource) {
            *obj = kite_api::conversion::convert(std::mem::take(obj), &resource.api_version());
        }
        return;
    };
    if !obj.is_object() {
        return;
    }
    kite_api::structural::prepare(&custom.storage_schema, obj);
    obj["apiVersion"] = json!(resource.api_version());
    if custom.storage_version != resource.version {
        kite_api::structural::prune(&custom.schema, obj);
    }
}

/// Whether a built-in resource is stored in another version than it is served in.
fn converts(resource: &ResourceInfo) -> bool {
    kite_api::conversion::storage(&resource.group, &resource.plural)
        .is_some_and(|s| s.api_version != resource.api_version())
}

/// [`from_storage`] on serialised bytes (lists and watches); built-in objects
/// pass through without being parsed.
pub fn serve_bytes(resource: &ResourceInfo, stored: &Bytes) -> Bytes {
    if resource.custom.is_none() && !converts(resource) {
        return stored.clone();
    }
    match serde_json::from_slice::<Value>(stored) {
        Ok(mut obj) => {
            from_storage(resource, &mut obj);
            Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
        }
        Err(_) => stored.clone(),
    }
}

/// The form an object is stored in: custom objects of every served version
/// are converted to the CRD's storage version (only `apiVersion` changes) and
/// pruned by its schema, as kube-apiserver's converter does.
pub fn for_storage<'a>(resource: &ResourceInfo, obj: &'a Value) -> Cow<'a, Value> {
    match &resource.custom {
        Some(custom) if custom.storage_version != resource.version && obj.is_object() => {
            let mut stored = obj.clone();
            stored["apiVersion"] = json!(format!("{}/{}", resource.group, custom.storage_version));
            kite_api::structural::prune(&custom.storage_schema, &mut stored);
            Cow::Owned(stored)
        }
        _ => Cow::Borrowed(obj),
    }
}

/// The stored bytes of an object: [`for_storage`], encoded as the store keeps objects.
pub fn encode(resource: &ResourceInfo, obj: &Value) -> Bytes {
    objects::encode(&for_storage(resource, obj))
}

/// Work a delete request does before the generic delete: a CRD gets the
/// `customresourcecleanup.apiextensions.k8s.io` finalizer and a `Terminating`
/// condition, so its objects are removed before it goes (see [`crate::crd`]).
pub fn prepare_for_delete(resource: &ResourceInfo, obj: &mut Value) {
    if resource.group == "apiextensions.k8s.io"
        && resource.kind == "CustomResourceDefinition"
        && obj.pointer("/metadata/deletionTimestamp").is_none()
    {
        crate::crd::mark_terminating(obj);
    }
}

/// Status kube-apiserver sets on create for kinds that start with one.
fn initial_status(resource: &ResourceInfo, obj: &mut Value) {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("", "Pod") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "Service") => {
            obj["status"] = json!({"loadBalancer": {}});
        }
        // Status fields Kubernetes' Go types serialise even when zero (no
        // omitempty); clients such as the Python one reject an object without them.
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            obj["status"] = json!({"replicas": 0});
        }
        ("apps", "StatefulSet") => {
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        ("apps", "DaemonSet") => {
            obj["status"] = json!({
                "currentNumberScheduled": 0,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 0,
                "numberReady": 0,
            });
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            obj["status"] = if resource.version == "v1" {
                json!({"currentReplicas": 0, "desiredReplicas": 0})
            } else {
                json!({"desiredReplicas": 0})
            };
        }
        ("policy", "PodDisruptionBudget") => {
            obj["status"] = json!({
                "disruptionsAllowed": 0,
                "currentHealthy": 0,
                "desiredHealthy": 0,
                "expectedPods": 0,
            });
        }
        ("apps", _) | ("batch", _) | ("policy", _) | ("autoscaling", _) if has_status(resource) => {
            obj["status"] = json!({});
        }
        _ => {}
    }
}

/// Carries server-managed metadata and (for the main resource) status over from the old object.
pub fn prepare_for_update(resource: &ResourceInfo, new: &mut Value, old: &Value) {
    new["apiVersion"] = json!(resource.api_version());
    new["kind"] = json!(resource.kind);
    if has_status(resource) {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    keep_server_metadata(new, old);
    prune_and_default(resource, new);
    if !is_custom(resource) {
        if resource.group.is_empty() && resource.kind == "Service" {
            keep_service_allocations(new, old);
        }
        fold_string_data(resource, new);
        kite_api::defaults::apply(&resource.group, &resource.kind, new);
    }
    if resource.group.is_empty() && resource.kind == "Namespace" {
        // spec.finalizers only changes through namespaces/<name>/finalize.
        match old.pointer("/spec/finalizers") {
            Some(f) => new["spec"]["finalizers"] = f.clone(),
            None => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
    }
    if tracks_generation(resource) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed = spec_of(new) != spec_of(old);
        objects::metadata_mut(new).insert(
            "generation".into(),
            json!(if changed { generation + 1 } else { generation }),
        );
    }
}

/// A status update: the old object with the new status.
pub fn prepare_for_status_update(resource: &ResourceInfo, new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    out["apiVersion"] = json!(resource.api_version());
    out["kind"] = json!(resource.kind);
    match new.get("status") {
        Some(status) => out["status"] = status.clone(),
        None => {
            if let Some(map) = out.as_object_mut() {
                map.remove("status");
            }
        }
    }
    prune_and_default(resource, &mut out);
    if is_csr(resource) {
        crate::csr::keep_decisions(&mut out, old);
    }
    // Status writers may still move labels and annotations (kubelets and controllers do).
    out
}

/// `certificatesigningrequests/<name>/approval`: only the Approved and Denied
/// conditions change.
pub fn prepare_for_approval(resource: &ResourceInfo, new: &Value, old: &Value) -> Value {
    let mut out = crate::csr::prepare_for_approval(new, old);
    out["apiVersion"] = json!(resource.api_version());
    out["kind"] = json!(resource.kind);
    out
}

fn is_csr(resource: &ResourceInfo) -> bool {
    resource.group == "certificates.k8s.io" && resource.kind == "CertificateSigningRequest"
}

/// `namespaces/<name>/finalize`: only `spec.finalizers` changes.
pub fn prepare_for_finalize(resource: &ResourceInfo, new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    out["apiVersion"] = json!(resource.api_version());
    out["kind"] = json!(resource.kind);
    let finalizers = new
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    out["spec"]["finalizers"] = finalizers;
    out
}

fn keep_server_metadata(new: &mut Value, old: &Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = objects::metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(value) => {
                meta.insert(field.into(), value.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    meta.remove("selfLink");
}

/// Everything but metadata and status: what a spec change means for generation.
fn spec_of(obj: &Value) -> Value {
    let mut rest = obj.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    rest
}

/// A Secret's write-only `stringData` is folded into `data` (base64), overriding
/// keys it shares, as the Secret's v1 conversion does.
fn fold_string_data(resource: &ResourceInfo, obj: &mut Value) {
    use base64::Engine;
    if !(resource.group.is_empty() && resource.kind == "Secret") {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// A Service update that leaves out its allocated cluster IPs or node ports keeps them,
/// as kube-apiserver's Service strategy does.
fn keep_service_allocations(new: &mut Value, old: &Value) {
    for field in ["clusterIP", "clusterIPs"] {
        let missing = new
            .pointer(&format!("/spec/{field}"))
            .is_none_or(|v| v.is_null() || v == "");
        if missing && let Some(value) = old.pointer(&format!("/spec/{field}")) {
            new["spec"][field] = value.clone();
        }
    }
    let old_ports = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for port in ports {
            if port
                .get("nodePort")
                .is_some_and(|p| p.as_i64().unwrap_or(0) != 0)
            {
                continue;
            }
            let same = old_ports.iter().find(|o| {
                o.get("port") == port.get("port")
                    && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        == port
                            .get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("TCP")
            });
            if let Some(node_port) = same.and_then(|o| o.get("nodePort")) {
                port["nodePort"] = node_port.clone();
            }
        }
    }
}

/// The kind's validation on create (`old` is `None`) or update.
pub fn validate(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    if objects::name(obj).is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    if is_custom(resource) {
        let mut errors = kite_api::validation::validate_object_meta(
            obj.get("metadata").unwrap_or(&Value::Null),
            kite_api::validation::validate_name("", "CustomResource"),
            "metadata",
        );
        if let Some(custom) = &resource.custom {
            errors.extend(match old {
                None => kite_api::structural::validate(&custom.schema, obj),
                Some(old) => kite_api::structural::validate_update(&custom.schema, obj, old),
            });
        }
        return errors;
    }
    if resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition" {
        let mut errors = match old {
            None => kite_api::validation::validate_create(&resource.group, &resource.kind, obj),
            Some(old) => {
                kite_api::validation::validate_update(&resource.group, &resource.kind, obj, old)
            }
        };
        errors.extend(crate::crd::validate(obj));
        return errors;
    }
    match old {
        None => kite_api::validation::validate_create(&resource.group, &resource.kind, obj),
        Some(old) => {
            kite_api::validation::validate_update(&resource.group, &resource.kind, obj, old)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(plural: &str) -> ResourceInfo {
        kite_api::resources::builtin()
            .into_iter()
            .find(|r| r.plural == plural)
            .expect("resource")
    }

    #[test]
    fn generation_counts_only_spec_changes() {
        let deploy = resource("deployments");
        let mut old = json!({"metadata": {"name": "w"}, "spec": {"replicas": 1}});
        prepare_for_create(&deploy, &mut old, Some("default"));
        assert_eq!(old["metadata"]["generation"], 1);
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        prepare_for_update(&deploy, &mut relabelled, &old);
        assert_eq!(relabelled["metadata"]["generation"], 1);
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        prepare_for_update(&deploy, &mut scaled, &old);
        assert_eq!(scaled["metadata"]["generation"], 2);
    }

    #[test]
    fn main_resource_updates_ignore_status_and_status_updates_ignore_spec() {
        let deploy = resource("deployments");
        let old = json!({"metadata": {"name": "w", "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new =
            json!({"metadata": {"name": "w"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        prepare_for_update(&deploy, &mut new, &old);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["uid"], "u");
        let status = prepare_for_status_update(
            &deploy,
            &json!({"spec": {"replicas": 5}, "status": {"replicas": 2}}),
            &old,
        );
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 2);
    }

    /// `gadgets.example.com` served at `version`, stored at v1.
    fn gadgets(version: &str) -> ResourceInfo {
        let crd = json!({
            "metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "names": {"plural": "gadgets", "kind": "Gadget"}, "versions": [
                {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"old": {"type": "string"}, "size": {"type": "integer", "default": 5}}}}}}},
                {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 10, "minimum": 1}}}}}}},
            ]},
        });
        crate::crd::resources_of(&crd)
            .into_iter()
            .map(|v| v.resource.info)
            .find(|r| r.version == version)
            .expect("served version")
    }

    #[test]
    fn custom_objects_are_pruned_defaulted_validated_and_stored_at_the_storage_version() {
        let beta = gadgets("v1beta1");
        let mut obj = json!({"metadata": {"name": "g"}, "spec": {"old": "x", "junk": 1}});
        prepare_for_create(&beta, &mut obj, Some("default"));
        assert_eq!(obj["apiVersion"], "example.com/v1beta1");
        assert_eq!(obj["spec"], json!({"old": "x", "size": 5}));
        let stored = for_storage(&beta, &obj).into_owned();
        assert_eq!(stored["apiVersion"], "example.com/v1");
        assert_eq!(stored["spec"], json!({"size": 5}));
        let mut served = stored.clone();
        from_storage(&gadgets("v1beta1"), &mut served);
        assert_eq!(served["apiVersion"], "example.com/v1beta1");
        let v1 = gadgets("v1");
        let mut bad = json!({"metadata": {"name": "g"}, "spec": {"size": 0}});
        prepare_for_create(&v1, &mut bad, Some("default"));
        let errors: Vec<String> = validate(&v1, &bad, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            ["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
        );
        // The stored object predates the rule: an unrelated update still goes through.
        let mut relabelled = bad.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        prepare_for_update(&v1, &mut relabelled, &bad);
        assert!(validate(&v1, &relabelled, Some(&bad)).is_empty());
    }

    #[test]
    fn configmaps_have_no_generation_and_namespaces_start_active() {
        let mut cm = json!({"metadata": {"name": "c"}});
        prepare_for_create(&resource("configmaps"), &mut cm, Some("default"));
        assert!(cm["metadata"].get("generation").is_none());
        assert_eq!(cm["metadata"]["namespace"], "default");
        let mut ns = json!({"metadata": {"name": "n"}});
        prepare_for_create(&resource("namespaces"), &mut ns, None);
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["spec"]["finalizers"][0], "kubernetes");
    }
}
