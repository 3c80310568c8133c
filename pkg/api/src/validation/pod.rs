//! Pod spec validation (pods and every pod template) and the Pod update rule.
//!
//! Messages follow `pkg/apis/core/validation` of Kubernetes 1.33. Checks run
//! on defaulted objects, so a missing `restartPolicy` reads as `Required`.

use super::FieldError;
use super::meta::{validate_labels, validate_template_meta};
use super::names::{
    inclusive_range_error, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_env_var_name, is_qualified_name, is_valid_port_name, is_valid_port_num,
};
use super::quantity::Quantity;
use super::util::{
    arr_of, child, get, has, index, int_of, invalid_each, key, non_negative, one_of, str_of,
};
use serde_json::Value;
use std::collections::HashSet;

/// Every volume source field of a `Volume`; exactly one must be set (defaulting adds
/// `emptyDir` when none is).
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];
const HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates a Pod object's spec (metadata is checked by the caller).
pub fn validate_pod(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_pod_spec(get(obj, "spec"), "spec");
    let spec = get(obj, "spec");
    for list in ["containers", "initContainers"] {
        for (i, c) in arr_of(spec, list).iter().enumerate() {
            let image = str_of(c, "image");
            if !image.is_empty() && image.trim() != image {
                errs.push(FieldError::invalid(
                    child(&index(&child("spec", list), i), "image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// Validates a `PodTemplateSpec` at `path` (e.g. `spec.template`).
pub fn validate_pod_template(tmpl: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = validate_template_meta(get(tmpl, "metadata"), &child(path, "metadata"));
    errs.extend(validate_pod_spec(get(tmpl, "spec"), &child(path, "spec")));
    errs
}

/// Validates a `PodSpec` at `path`.
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(spec, path, &mut errs);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut names = HashSet::new();
    if arr_of(spec, "containers").is_empty() {
        errs.push(FieldError::required(child(path, "containers"), ""));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let lp = child(path, list);
        for (i, c) in arr_of(spec, list).iter().enumerate() {
            let cp = index(&lp, i);
            let name = str_of(c, "name");
            if name.is_empty() {
                errs.push(FieldError::required(child(&cp, "name"), ""));
            } else {
                invalid_each(&mut errs, &child(&cp, "name"), name, is_dns1123_label(name));
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(child(&cp, "name"), name));
                }
            }
            validate_container(c, &cp, &volumes, host_network, list, &mut errs);
        }
    }
    one_of(
        &mut errs,
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
        true,
    );
    one_of(
        &mut errs,
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        true,
    );
    if str_of(spec, "dnsPolicy") == "None" && !has(spec, "dnsConfig") {
        errs.push(FieldError::required(
            child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            ads,
            inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for field in ["hostname", "subdomain"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            invalid_each(&mut errs, &child(path, field), v, is_dns1123_label(v));
        }
    }
    for field in ["serviceAccountName", "priorityClassName"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            invalid_each(&mut errs, &child(path, field), v, is_dns1123_subdomain(v));
        }
    }
    validate_tolerations(spec, path, &mut errs);
    errs
}

fn validate_volumes<'a>(
    spec: &'a Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    let vp = child(path, "volumes");
    for (i, v) in arr_of(spec, "volumes").iter().enumerate() {
        let p = index(&vp, i);
        let name = str_of(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            invalid_each(errs, &child(&p, "name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| has(v, s))
            .collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&p, "must specify a volume type")),
            [one] => validate_volume_source(v, one, &child(&p, one), errs),
            [_, rest @ ..] => {
                for extra in rest {
                    errs.push(FieldError::forbidden(
                        child(&p, extra),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
    }
    names
}

fn validate_volume_source(v: &Value, source: &str, p: &str, errs: &mut Vec<FieldError>) {
    let s = get(v, source);
    let required = |errs: &mut Vec<FieldError>, field: &str| {
        if str_of(s, field).is_empty() {
            errs.push(FieldError::required(child(p, field), ""));
        }
    };
    match source {
        "configMap" => required(errs, "name"),
        "secret" => required(errs, "secretName"),
        "persistentVolumeClaim" => required(errs, "claimName"),
        "hostPath" => {
            required(errs, "path");
            one_of(
                errs,
                s,
                "type",
                p,
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
                false,
            );
        }
        "nfs" => {
            required(errs, "server");
            required(errs, "path");
        }
        _ => {}
    }
    if let Some(mode) = int_of(s, "defaultMode")
        && !(0..=0o777).contains(&mode)
    {
        errs.push(FieldError::invalid(
            child(p, "defaultMode"),
            mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
    for (i, item) in arr_of(s, "items").iter().enumerate() {
        let ip = index(&child(p, "items"), i);
        let k = str_of(item, "key");
        if matches!(source, "configMap" | "secret") && k.is_empty() {
            errs.push(FieldError::required(child(&ip, "key"), ""));
        }
        let path = str_of(item, "path");
        if path.is_empty() {
            errs.push(FieldError::required(child(&ip, "path"), ""));
        } else {
            relative_path(path, &child(&ip, "path"), errs);
        }
    }
}

fn relative_path(path: &str, p: &str, errs: &mut Vec<FieldError>) {
    if path.starts_with('/') {
        errs.push(FieldError::invalid(p, path, "must be a relative path"));
    }
    if path.split('/').any(|seg| seg == "..") {
        errs.push(FieldError::invalid(p, path, "must not contain '..'"));
    }
}

fn validate_container(
    c: &Value,
    cp: &str,
    volumes: &HashSet<&str>,
    host_network: bool,
    list: &str,
    errs: &mut Vec<FieldError>,
) {
    if str_of(c, "image").is_empty() && list != "ephemeralContainers" {
        errs.push(FieldError::required(child(cp, "image"), ""));
    }
    one_of(
        errs,
        c,
        "imagePullPolicy",
        cp,
        &["Always", "IfNotPresent", "Never"],
        true,
    );
    match str_of(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            child(cp, "terminationMessagePolicy"),
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
        other => errs.push(FieldError::invalid(
            child(cp, "terminationMessagePolicy"),
            other,
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
    }
    validate_ports(c, cp, host_network, errs);
    validate_env(c, cp, errs);
    validate_mounts(c, cp, volumes, errs);
    let sidecar = list == "initContainers" && str_of(c, "restartPolicy") == "Always";
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = c.get(probe).filter(|p| !p.is_null()) else {
            continue;
        };
        let pp = child(cp, probe);
        if list == "initContainers" && !sidecar || list == "ephemeralContainers" {
            let why = if list == "initContainers" {
                "may not be set for init containers without restartPolicy=Always"
            } else {
                "may not be set for ephemeral containers"
            };
            errs.push(FieldError::forbidden(pp, why));
            continue;
        }
        validate_probe(p, &pp, probe, errs);
    }
    if let Some(lc) = c.get("lifecycle").filter(|l| !l.is_null()) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lc.get(hook).filter(|h| !h.is_null()) {
                let hp = child(&child(cp, "lifecycle"), hook);
                let mut handlers: Vec<&str> =
                    HANDLERS.iter().copied().filter(|k| has(h, k)).collect();
                if has(h, "sleep") {
                    handlers.push("sleep");
                }
                validate_handlers(h, &hp, &handlers, errs);
            }
        }
    }
    validate_resources(get(c, "resources"), &child(cp, "resources"), errs);
    if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
        if list == "initContainers" {
            if rp != "Always" {
                errs.push(FieldError::not_supported(
                    child(cp, "restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        } else {
            errs.push(FieldError::forbidden(
                child(cp, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
}

fn validate_ports(c: &Value, cp: &str, host_network: bool, errs: &mut Vec<FieldError>) {
    let pp = child(cp, "ports");
    let mut names = HashSet::new();
    for (i, port) in arr_of(c, "ports").iter().enumerate() {
        let p = index(&pp, i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            invalid_each(errs, &child(&p, "name"), name, is_valid_port_name(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        let container_port = int_of(port, "containerPort").unwrap_or(0);
        if container_port == 0 {
            errs.push(FieldError::required(child(&p, "containerPort"), ""));
        } else {
            for m in is_valid_port_num(container_port) {
                errs.push(FieldError::invalid(
                    child(&p, "containerPort"),
                    container_port,
                    m,
                ));
            }
        }
        let host_port = int_of(port, "hostPort").unwrap_or(0);
        if host_port != 0 {
            for m in is_valid_port_num(host_port) {
                errs.push(FieldError::invalid(child(&p, "hostPort"), host_port, m));
            }
        }
        if host_network && host_port != 0 && host_port != container_port {
            errs.push(FieldError::invalid(
                child(&p, "hostPort"),
                host_port,
                "must match `containerPort` when `hostNetwork` is true",
            ));
        }
        one_of(errs, port, "protocol", &p, &["SCTP", "TCP", "UDP"], true);
    }
}

fn validate_env(c: &Value, cp: &str, errs: &mut Vec<FieldError>) {
    let ep = child(cp, "env");
    for (i, e) in arr_of(c, "env").iter().enumerate() {
        let p = index(&ep, i);
        let name = str_of(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            invalid_each(errs, &child(&p, "name"), name, is_env_var_name(name));
        }
        let Some(from) = e.get("valueFrom").filter(|v| !v.is_null()) else {
            continue;
        };
        let fp = child(&p, "valueFrom");
        let sources: Vec<&str> = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ]
        .into_iter()
        .filter(|s| has(from, s))
        .collect();
        if !str_of(e, "value").is_empty() {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        match sources.as_slice() {
            [] => errs.push(FieldError::invalid(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )),
            [one] => {
                let s = get(from, one);
                let sp = child(&fp, one);
                match *one {
                    "configMapKeyRef" | "secretKeyRef" => {
                        if str_of(s, "name").is_empty() {
                            errs.push(FieldError::required(child(&sp, "name"), ""));
                        }
                        let k = str_of(s, "key");
                        if k.is_empty() {
                            errs.push(FieldError::required(child(&sp, "key"), ""));
                        } else {
                            invalid_each(errs, &child(&sp, "key"), k, is_config_map_key(k));
                        }
                    }
                    "fieldRef" => {
                        if str_of(s, "fieldPath").is_empty() {
                            errs.push(FieldError::required(child(&sp, "fieldPath"), ""));
                        }
                    }
                    _ => {
                        if str_of(s, "resource").is_empty() {
                            errs.push(FieldError::required(child(&sp, "resource"), ""));
                        }
                    }
                }
            }
            _ => errs.push(FieldError::invalid(&fp, "", "may not have more than one field specified at a time")),
        }
    }
}

fn validate_mounts(c: &Value, cp: &str, volumes: &HashSet<&str>, errs: &mut Vec<FieldError>) {
    let mp = child(cp, "volumeMounts");
    let mut paths = HashSet::new();
    for (i, m) in arr_of(c, "volumeMounts").iter().enumerate() {
        let p = index(&mp, i);
        let name = str_of(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(name) {
            errs.push(FieldError::not_found(child(&p, "name"), name));
        }
        let path = str_of(m, "mountPath");
        if path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if !paths.insert(path) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                path,
                "must be unique",
            ));
        }
        let sub = str_of(m, "subPath");
        if !sub.is_empty() {
            relative_path(sub, &child(&p, "subPath"), errs);
        }
    }
}

fn validate_probe(p: &Value, pp: &str, which: &str, errs: &mut Vec<FieldError>) {
    let handlers: Vec<&str> = HANDLERS.iter().copied().filter(|k| has(p, k)).collect();
    validate_handlers(p, pp, &handlers, errs);
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        non_negative(errs, p, field, pp);
    }
    if which != "readinessProbe"
        && let Some(n) = int_of(p, "successThreshold")
        && n != 1
    {
        errs.push(FieldError::invalid(
            child(pp, "successThreshold"),
            n,
            "must be 1",
        ));
    }
    if let Some(t) = int_of(p, "terminationGracePeriodSeconds") {
        if which == "readinessProbe" {
            errs.push(FieldError::invalid(
                child(pp, "terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            errs.push(FieldError::invalid(
                child(pp, "terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
}

fn validate_handlers(h: &Value, hp: &str, handlers: &[&str], errs: &mut Vec<FieldError>) {
    match handlers {
        [] => errs.push(FieldError::required(hp, "must specify a handler type")),
        [one] => match *one {
            "httpGet" => {
                let g = get(h, "httpGet");
                let gp = child(hp, "httpGet");
                if str_of(g, "path").is_empty() {
                    errs.push(FieldError::required(child(&gp, "path"), ""));
                }
                port_num_or_name(get(g, "port"), &child(&gp, "port"), errs);
                one_of(errs, g, "scheme", &gp, &["HTTP", "HTTPS"], false);
            }
            "tcpSocket" => port_num_or_name(
                get(get(h, "tcpSocket"), "port"),
                &child(&child(hp, "tcpSocket"), "port"),
                errs,
            ),
            "grpc" => {
                let port = int_of(get(h, "grpc"), "port").unwrap_or(0);
                for m in is_valid_port_num(port) {
                    errs.push(FieldError::invalid(
                        child(&child(hp, "grpc"), "port"),
                        port,
                        m,
                    ));
                }
            }
            "exec" if arr_of(get(h, "exec"), "command").is_empty() => {
                errs.push(FieldError::required(
                    child(&child(hp, "exec"), "command"),
                    "",
                ));
            }
            _ => {}
        },
        [_, rest @ ..] => {
            for extra in rest {
                errs.push(FieldError::forbidden(
                    child(hp, extra),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
}

fn port_num_or_name(port: &Value, p: &str, errs: &mut Vec<FieldError>) {
    match port {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(p, n, m));
            }
        }
        Value::String(s) if s.parse::<i64>().is_ok() => {
            let n = s.parse::<i64>().unwrap_or(0);
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(p, n, m));
            }
        }
        Value::String(s) if !s.is_empty() => invalid_each(errs, p, s, is_valid_port_name(s)),
        _ => errs.push(FieldError::required(p, "")),
    }
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Validates `ResourceRequirements` at `rp` (e.g. `spec.containers[0].resources`).
pub fn validate_resources(r: &Value, rp: &str, errs: &mut Vec<FieldError>) {
    let lp = child(rp, "limits");
    let qp = child(rp, "requests");
    let parse =
        |list: &str, name: &str, v: &Value, errs: &mut Vec<FieldError>| -> Option<Quantity> {
            let p = key(&child(rp, list), name);
            invalid_each(errs, &p, name, is_qualified_name(name));
            let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
                || name.starts_with("hugepages-")
                || !is_native(name);
            if !standard {
                errs.push(FieldError::invalid(
                    &p,
                    name,
                    "must be a standard resource for containers",
                ));
            }
            match Quantity::from_json(v) {
                Ok(q) => {
                    if q.is_negative() {
                        errs.push(FieldError::invalid(
                            &p,
                            q.canonical(),
                            "must be greater than or equal to 0",
                        ));
                    }
                    Some(q)
                }
                Err(e) => {
                    errs.push(FieldError::invalid(&p, v.clone(), e.to_string()));
                    None
                }
            }
        };
    let limits: Vec<(&str, Option<Quantity>)> = super::util::obj_of(r, "limits")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), parse("limits", k, v, errs)))
                .collect()
        })
        .unwrap_or_default();
    for (name, v) in super::util::obj_of(r, "requests").into_iter().flatten() {
        let Some(q) = parse("requests", name, v, errs) else {
            continue;
        };
        let overcommit = is_native(name) && !name.starts_with("hugepages-");
        match limits.iter().find(|(l, _)| l == name) {
            Some((_, Some(lq))) => {
                if q != *lq && !overcommit {
                    errs.push(FieldError::invalid(
                        &qp,
                        q.canonical(),
                        format!("must be equal to {name} limit of {lq}"),
                    ));
                } else if q > *lq {
                    errs.push(FieldError::invalid(
                        &qp,
                        q.canonical(),
                        format!("must be less than or equal to {name} limit of {lq}"),
                    ));
                }
            }
            Some((_, None)) => {}
            None if !overcommit => errs.push(FieldError::required(
                &lp,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}

fn validate_tolerations(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let tp = child(path, "tolerations");
    for (i, t) in arr_of(spec, "tolerations").iter().enumerate() {
        let p = index(&tp, i);
        let k = str_of(t, "key");
        if !k.is_empty() {
            invalid_each(errs, &child(&p, "key"), k, is_qualified_name(k));
        }
        let op = str_of(t, "operator");
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        match op {
            "" | "Equal" => {}
            "Exists" => {
                let v = str_of(t, "value");
                if !v.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        v,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        let effect = str_of(t, "effect");
        if has(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        one_of(
            errs,
            t,
            "effect",
            &p,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            false,
        );
    }
}

/// Validates a Pod update: the new spec, and that only mutable fields changed.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_pod(new);
    let (ns, os) = (get(new, "spec"), get(old, "spec"));
    let mut munged = ns.clone();
    // Images may change.
    for list in ["containers", "initContainers"] {
        let old_list = arr_of(os, list);
        if let Some(items) = munged.get_mut(list).and_then(Value::as_array_mut)
            && items.len() == old_list.len()
        {
            for (c, o) in items.iter_mut().zip(old_list) {
                if let (Some(m), Some(img)) = (c.as_object_mut(), o.get("image")) {
                    m.insert("image".into(), img.clone());
                }
            }
        }
    }
    // activeDeadlineSeconds may be set, or lowered.
    let (new_ads, old_ads) = (
        int_of(ns, "activeDeadlineSeconds"),
        int_of(os, "activeDeadlineSeconds"),
    );
    match (new_ads, old_ads) {
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(n), Some(o)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    set_or_remove(
        &mut munged,
        "activeDeadlineSeconds",
        os.get("activeDeadlineSeconds"),
    );
    // Tolerations may only be added.
    let new_tol = arr_of(ns, "tolerations");
    if arr_of(os, "tolerations")
        .iter()
        .all(|t| new_tol.contains(t))
    {
        set_or_remove(&mut munged, "tolerations", os.get("tolerations"));
    }
    // A negative grace period may become 1.
    if int_of(os, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
        && int_of(ns, "terminationGracePeriodSeconds") == Some(1)
    {
        set_or_remove(
            &mut munged,
            "terminationGracePeriodSeconds",
            os.get("terminationGracePeriodSeconds"),
        );
    }
    // Scheduling gates may be removed.
    let old_gates = arr_of(os, "schedulingGates");
    if arr_of(ns, "schedulingGates")
        .iter()
        .all(|g| old_gates.contains(g))
    {
        set_or_remove(&mut munged, "schedulingGates", os.get("schedulingGates"));
    }
    if munged != *os {
        let mut diff = String::new();
        let keys: std::collections::BTreeSet<&String> = munged
            .as_object()
            .into_iter()
            .chain(os.as_object())
            .flat_map(|m| m.keys())
            .collect();
        for k in keys {
            let (a, b) = (get(os, k), get(&munged, k));
            if a != b {
                diff.push_str(&format!("\n  - {k}: {a}\n  + {k}: {b}"));
            }
        }
        errs.push(FieldError::forbidden(
            "spec",
            format!("{POD_UPDATE_FORBIDDEN}{diff}"),
        ));
    }
    errs
}

fn set_or_remove(v: &mut Value, field: &str, value: Option<&Value>) {
    if let Some(m) = v.as_object_mut() {
        match value {
            Some(x) => {
                m.insert(field.into(), x.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p"}, "spec": spec});
        crate::defaults::apply("", "Pod", &mut p);
        p
    }

    fn check(spec: Value, expected: &[&str]) {
        let got: Vec<String> = validate_pod(&pod(spec.clone()))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "for {spec}");
    }

    #[test]
    fn valid_pods_pass() {
        check(
            json!({"containers": [{"name": "c", "image": "nginx"}]}),
            &[],
        );
        check(
            json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                "livenessProbe": {"httpGet": {"port": "http"}},
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "128Mi"}}}],
                "volumes": [{"name": "data", "emptyDir": {}}]}),
            &[],
        );
    }

    #[test]
    fn container_messages() {
        check(
            json!({"containers": []}),
            &["spec.containers: Required value"],
        );
        check(
            json!({"containers": [{"name": "c"}, {"name": "c", "image": "x"}]}),
            &[
                "spec.containers[0].image: Required value",
                "spec.containers[1].name: Duplicate value: \"c\"",
            ],
        );
        check(
            json!({"containers": [{"name": "C", "image": "x"}]}),
            &[
                "spec.containers[0].name: Invalid value: \"C\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0}]}]}),
            &[
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[1].containerPort: Required value",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}),
            &[
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "-1"}}}]}),
            &[
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/d"}]}]}),
            &["spec.containers[0].volumeMounts[0].name: Not found: \"nope\""],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "livenessProbe": {"periodSeconds": 5}}]}),
            &["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "readinessProbe": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 80}}}]}),
            &[
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x", "livenessProbe": {"exec": {"command": ["a"]}, "successThreshold": 2}}]}),
            &["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
        );
    }

    #[test]
    fn pod_level_messages() {
        check(
            json!({"restartPolicy": "Sometimes", "dnsPolicy": "Google", "containers": [{"name": "c", "image": "x"}]}),
            &[
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}),
            &[
                "spec.volumes[1].name: Duplicate value: \"v\"",
                "spec.volumes[1].emptyDir: Forbidden: may not specify more than 1 volume type",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
            &[
                "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
            ],
        );
        check(
            json!({"containers": [{"name": "c", "image": "x"}], "activeDeadlineSeconds": 0}),
            &[
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ],
        );
    }

    #[test]
    fn pod_updates_allow_only_mutable_fields() {
        let old = pod(json!({"containers": [{"name": "c", "image": "nginx:1"}]}));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        assert!(validate_pod_update(&new, &old).is_empty());
        let mut bad = old.clone();
        bad["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let errs = validate_pod_update(&bad, &old);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"));
    }
}
