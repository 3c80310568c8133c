//! Core (`v1`) kinds other than Pod and Service: ConfigMap, Secret,
//! Namespace, Node, PersistentVolumeClaim, PersistentVolume.

use super::FieldError;
use super::names::{is_config_map_key, is_qualified_name};
use super::quantity::Quantity;
use super::util::{
    arr_of, child, get, immutable, index, invalid_each, key, obj_of, one_of, str_of,
};
use serde_json::Value;

/// The most bytes a ConfigMap's or Secret's data may hold.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

/// Validates a new core object of `kind`.
pub(crate) fn validate(kind: &str, obj: &Value) -> Vec<FieldError> {
    match kind {
        "ConfigMap" => config_map(obj),
        "Secret" => secret(obj),
        "Namespace" => namespace(obj),
        "Node" => node(obj),
        "PersistentVolumeClaim" => pvc_spec(get(obj, "spec"), "spec"),
        "PersistentVolume" => pv(obj),
        _ => Vec::new(),
    }
}

/// Validates an update of a core object of `kind`.
pub(crate) fn validate_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(kind, new);
    match kind {
        "ConfigMap" | "Secret" => {
            if kind == "Secret" {
                immutable(&mut errs, new, old, "type", "");
            }
            if old.get("immutable").and_then(Value::as_bool) == Some(true) {
                if new.get("immutable").and_then(Value::as_bool) != Some(true) {
                    errs.push(FieldError::forbidden(
                        "immutable",
                        "field is immutable when `immutable` is set",
                    ));
                }
                for f in ["data", "binaryData", "stringData"] {
                    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
                    let (n, o) = (get(new, f), get(old, f));
                    if n != o && !(empty(n) && empty(o)) {
                        errs.push(FieldError::forbidden(
                            f,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
        }
        "PersistentVolumeClaim" => pvc_update(new, old, &mut errs),
        _ => {}
    }
    errs
}

fn data_keys(obj: &Value, field: &str, other: Option<&str>, errs: &mut Vec<FieldError>) -> usize {
    let mut size = 0;
    for (k, v) in obj_of(obj, field).into_iter().flatten() {
        invalid_each(errs, &key(field, k), k, is_config_map_key(k));
        if let Some(other) = other
            && obj_of(obj, other).is_some_and(|m| m.contains_key(k))
        {
            errs.push(FieldError::invalid(
                key(field, k),
                k.as_str(),
                format!("duplicate of key present in {other}"),
            ));
        }
        size += k.len() + v.as_str().map_or(0, str::len);
    }
    size
}

fn config_map(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut size = data_keys(obj, "data", Some("binaryData"), &mut errs);
    size += data_keys(obj, "binaryData", None, &mut errs);
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errs
}

fn base64_len(s: &str) -> usize {
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(pad)
}

fn secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    data_keys(obj, "data", None, &mut errs);
    data_keys(obj, "stringData", None, &mut errs);
    let data = obj_of(obj, "data");
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_str().map_or(0, base64_len))
        .sum();
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has_key = |k: &str| {
        data.is_some_and(|m| m.contains_key(k))
            || obj_of(obj, "stringData").is_some_and(|m| m.contains_key(k))
    };
    let mut need = |k: &str| {
        if !has_key(k) {
            errs.push(FieldError::required(key("data", k), ""));
        }
    };
    match str_of(obj, "type") {
        "kubernetes.io/dockercfg" => need(".dockercfg"),
        "kubernetes.io/dockerconfigjson" => need(".dockerconfigjson"),
        "kubernetes.io/ssh-auth" => need("ssh-privatekey"),
        "kubernetes.io/tls" => {
            need("tls.crt");
            need("tls.key");
        }
        "kubernetes.io/basic-auth" if !has_key("username") && !has_key("password") => {
            errs.push(FieldError::required(key("data", "username"), ""));
            errs.push(FieldError::required(key("data", "password"), ""));
        }
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "" => errs.push(FieldError::required("type", "")),
        _ => {}
    }
    errs
}

fn finalizer_name(f: &str, path: &str, errs: &mut Vec<FieldError>) {
    invalid_each(errs, path, f, is_qualified_name(f));
    if !f.contains('/') && f != "kubernetes" && f != "orphan" && f != "foregroundDeletion" {
        errs.push(FieldError::invalid(
            path,
            f,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

fn namespace(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in arr_of(get(obj, "spec"), "finalizers").iter().enumerate() {
        finalizer_name(
            f.as_str().unwrap_or(""),
            &index("spec.finalizers", i),
            &mut errs,
        );
    }
    errs
}

fn node(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, t) in arr_of(get(obj, "spec"), "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let k = str_of(t, "key");
        invalid_each(&mut errs, &child(&p, "key"), k, is_qualified_name(k));
        one_of(
            &mut errs,
            t,
            "effect",
            &p,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            true,
        );
        if !seen.insert((k, str_of(t, "effect"))) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{k}:{}", str_of(t, "effect")),
            ));
        }
    }
    let cidr = str_of(get(obj, "spec"), "podCIDR");
    if !cidr.is_empty() && !is_cidr(cidr) {
        errs.push(FieldError::invalid(
            "spec.podCIDRs[0]",
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
    errs
}

/// Whether `s` is `address/prefix` with a prefix that fits the address family.
pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// Validates a `PersistentVolumeClaimSpec` at `path`.
pub(crate) fn pvc_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = arr_of(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            child(path, "accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        let s = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&s) {
            errs.push(FieldError::not_supported(
                child(path, "accessModes"),
                s,
                ACCESS_MODES,
            ));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            child(path, "accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage = spec.pointer("/resources/requests/storage");
    let rp = key(&child(path, "resources"), "storage");
    match storage.map(Quantity::from_json) {
        None => errs.push(FieldError::required(rp, "")),
        Some(Ok(q)) if q.nanos() <= 0 => errs.push(FieldError::invalid(
            rp,
            q.canonical(),
            "must be greater than zero",
        )),
        Some(Err(e)) => errs.push(FieldError::invalid(
            rp,
            storage.cloned().unwrap_or(Value::Null),
            e.to_string(),
        )),
        Some(Ok(_)) => {}
    }
    one_of(
        &mut errs,
        spec,
        "volumeMode",
        path,
        &["Block", "Filesystem"],
        false,
    );
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(super::meta::validate_label_selector(
            sel,
            &child(path, "selector"),
        ));
    }
    errs
}

fn pvc_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (ns, os) = (get(new, "spec"), get(old, "spec"));
    let strip = |s: &Value| {
        let mut s = s.clone();
        if let Some(m) = s.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                r.remove("requests");
            }
        }
        s
    };
    let (mut a, b) = (strip(ns), strip(os));
    // A claim made before any default class existed may get one later
    // (retroactive default StorageClass assignment).
    if os.get("storageClassName").is_none_or(Value::is_null)
        && let (Some(m), Some(class)) = (a.as_object_mut(), ns.get("storageClassName"))
        && !class.is_null()
    {
        match b.get("storageClassName") {
            Some(old) => m.insert("storageClassName".into(), old.clone()),
            None => m.remove("storageClassName"),
        };
    }
    // The binder may set volumeName once.
    if str_of(os, "volumeName").is_empty() {
        if let (Some(m), Some(v)) = (a.as_object_mut(), b.get("volumeName")) {
            m.insert("volumeName".into(), v.clone());
        }
        if let (Some(m), None) = (a.as_object_mut(), b.get("volumeName")) {
            m.remove("volumeName");
        }
    }
    let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let requests_changed = ns.pointer("/resources/requests") != os.pointer("/resources/requests");
    if a != b || (requests_changed && !bound) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
        return;
    }
    let q = |s: &Value| {
        s.pointer("/resources/requests/storage")
            .and_then(|v| Quantity::from_json(v).ok())
    };
    if let (Some(n), Some(o)) = (q(ns), q(os))
        && n < o
    {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
}

fn pv(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = get(obj, "spec");
    if arr_of(spec, "accessModes").is_empty() {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    if spec.pointer("/capacity/storage").is_none() {
        errs.push(FieldError::required("spec.capacity", ""));
    }
    one_of(
        &mut errs,
        spec,
        "persistentVolumeReclaimPolicy",
        "spec",
        &["Delete", "Recycle", "Retain"],
        false,
    );
    one_of(
        &mut errs,
        spec,
        "volumeMode",
        "spec",
        &["Block", "Filesystem"],
        false,
    );
    const SOURCES: &[&str] = &[
        "hostPath",
        "local",
        "nfs",
        "csi",
        "iscsi",
        "fc",
        "rbd",
        "cephfs",
        "glusterfs",
        "awsElasticBlockStore",
        "gcePersistentDisk",
        "azureDisk",
        "azureFile",
        "cinder",
        "flexVolume",
        "flocker",
        "vsphereVolume",
        "quobyte",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "storageos",
    ];
    let sources: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| super::util::has(spec, s))
        .collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required("spec", "must specify a volume type")),
        [_] => {}
        [_, rest @ ..] => {
            for extra in rest {
                errs.push(FieldError::forbidden(
                    child("spec", extra),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn config_map_and_secret_messages() {
        assert!(
            validate(
                "ConfigMap",
                &json!({"data": {"app.properties": "x", "KEY_1": "y"}})
            )
            .is_empty()
        );
        assert_eq!(
            msgs(validate("ConfigMap", &json!({"data": {"a b": "x"}}))),
            [
                "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ]
        );
        assert_eq!(
            msgs(validate(
                "ConfigMap",
                &json!({"data": {"k": "x".repeat(MAX_DATA_SIZE)}})
            )),
            ["Too long: may not be more than 1048576 bytes"]
        );
        assert_eq!(
            msgs(validate(
                "Secret",
                &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
            )),
            ["data[tls.key]: Required value"]
        );
        assert!(
            validate(
                "Secret",
                &json!({"type": "Opaque", "stringData": {"password": "x"}})
            )
            .is_empty()
        );
    }

    #[test]
    fn immutable_config_maps_and_secret_types() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let new = json!({"immutable": true, "data": {"a": "2"}});
        assert_eq!(
            msgs(validate_update("ConfigMap", &new, &old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let old = json!({"type": "Opaque"});
        let new = json!({"type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": "eA=="}});
        assert_eq!(
            msgs(validate_update("Secret", &new, &old)),
            ["type: Invalid value: \"kubernetes.io/ssh-auth\": field is immutable"]
        );
    }

    #[test]
    fn claims() {
        let claim = |storage: &str| json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}, "volumeMode": "Filesystem"}});
        assert!(validate("PersistentVolumeClaim", &claim("1Gi")).is_empty());
        assert_eq!(
            msgs(validate(
                "PersistentVolumeClaim",
                &json!({"spec": {"accessModes": ["ReadWriteSome"]}})
            )),
            [
                "spec.accessModes: Unsupported value: \"ReadWriteSome\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources[storage]: Required value",
            ]
        );
        let mut bound = claim("1Gi");
        bound["status"] = json!({"phase": "Bound"});
        assert!(validate_update("PersistentVolumeClaim", &claim("2Gi"), &bound).is_empty());
        assert_eq!(
            msgs(validate_update(
                "PersistentVolumeClaim",
                &claim("2Gi"),
                &claim("1Gi")
            )),
            [
                "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
            ]
        );
        // A class may be set once, where there was none; never changed.
        let mut classed = claim("1Gi");
        classed["spec"]["storageClassName"] = json!("local-path");
        assert!(validate_update("PersistentVolumeClaim", &classed, &claim("1Gi")).is_empty());
        let mut other = classed.clone();
        other["spec"]["storageClassName"] = json!("fast");
        assert_eq!(
            validate_update("PersistentVolumeClaim", &other, &classed).len(),
            1
        );
        let mut empty = claim("1Gi");
        empty["spec"]["storageClassName"] = json!("");
        assert_eq!(
            validate_update("PersistentVolumeClaim", &classed, &empty).len(),
            1
        );
    }

    #[test]
    fn namespaces_and_nodes() {
        assert!(
            validate(
                "Namespace",
                &json!({"spec": {"finalizers": ["kubernetes"]}})
            )
            .is_empty()
        );
        assert_eq!(
            msgs(validate(
                "Node",
                &json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}})
            )),
            [
                "spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
            ]
        );
    }
}
