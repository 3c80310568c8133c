//! Validation of the smaller groups: RBAC, networking (Ingress, NetworkPolicy),
//! coordination (Lease), discovery (EndpointSlice), policy (PodDisruptionBudget),
//! autoscaling (HorizontalPodAutoscaler), scheduling (PriorityClass), storage
//! (StorageClass) and admission webhooks.

use super::FieldError;
use super::core::is_cidr;
use super::meta::validate_label_selector;
use super::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip,
    is_valid_port_name, is_valid_port_num,
};
use super::util::{
    arr_of, child, get, has, immutable, index, int_of, invalid_each, non_negative, one_of,
    positive, str_of,
};
use serde_json::Value;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Validates a new object of `kind` in `group`.
pub(crate) fn validate(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    match (group, kind) {
        (RBAC, "Role" | "ClusterRole") => rbac_rules(obj, kind == "Role"),
        (RBAC, "RoleBinding" | "ClusterRoleBinding") => rbac_binding(obj, kind == "RoleBinding"),
        ("networking.k8s.io", "Ingress") => ingress(get(obj, "spec")),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(get(obj, "spec")),
        ("coordination.k8s.io", "Lease") => {
            let mut errs = Vec::new();
            positive(&mut errs, get(obj, "spec"), "leaseDurationSeconds", "spec");
            non_negative(&mut errs, get(obj, "spec"), "leaseTransitions", "spec");
            errs
        }
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(obj),
        ("policy", "PodDisruptionBudget") => pdb(get(obj, "spec")),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(get(obj, "spec")),
        ("scheduling.k8s.io", "PriorityClass") => priority_class(obj),
        ("storage.k8s.io", "StorageClass") => storage_class(obj),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => webhooks(obj, false),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => webhooks(obj, true),
        _ => Vec::new(),
    }
}

/// Validates an update of an object of `kind` in `group`.
pub(crate) fn validate_update(
    group: &str,
    kind: &str,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let mut errs = validate(group, kind, new);
    match (group, kind) {
        (RBAC, "RoleBinding" | "ClusterRoleBinding")
            if get(new, "roleRef") != get(old, "roleRef") =>
        {
            errs.push(FieldError::invalid(
                "roleRef",
                get(new, "roleRef").clone(),
                "cannot change roleRef",
            ));
        }
        ("discovery.k8s.io", "EndpointSlice") => immutable(&mut errs, new, old, "addressType", ""),
        ("scheduling.k8s.io", "PriorityClass") => {
            if get(new, "value") != get(old, "value") {
                errs.push(FieldError::forbidden(
                    "value",
                    "may not be changed in an update.",
                ));
            }
            immutable(&mut errs, new, old, "preemptionPolicy", "");
        }
        ("storage.k8s.io", "StorageClass") => {
            for f in ["parameters", "provisioner", "reclaimPolicy"] {
                if get(new, f) != get(old, f) {
                    errs.push(FieldError::forbidden(
                        f,
                        format!("updates to {f} are forbidden."),
                    ));
                }
            }
            immutable(&mut errs, new, old, "volumeBindingMode", "");
        }
        _ => {}
    }
    errs
}

fn rbac_rules(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, r) in arr_of(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if arr_of(r, "verbs").is_empty() {
            errs.push(FieldError::required(
                child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr_of(r, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr_of(r, "apiGroups").is_empty() || !arr_of(r, "resources").is_empty() {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    Value::Array(urls.to_vec()),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr_of(r, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr_of(r, "resources").is_empty() {
            errs.push(FieldError::required(
                child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    if let Some(agg) = obj.get("aggregationRule").filter(|a| !a.is_null()) {
        if namespaced {
            errs.push(FieldError::forbidden(
                "aggregationRule",
                "may not be set on Roles",
            ));
        }
        for (i, s) in arr_of(agg, "clusterRoleSelectors").iter().enumerate() {
            errs.extend(validate_label_selector(
                s,
                &index("aggregationRule.clusterRoleSelectors", i),
            ));
        }
    }
    errs
}

fn rbac_binding(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rr = get(obj, "roleRef");
    if str_of(rr, "apiGroup") != RBAC {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            str_of(rr, "apiGroup"),
            &[RBAC],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&str_of(rr, "kind")) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            str_of(rr, "kind"),
            kinds,
        ));
    }
    let name = str_of(rr, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        invalid_each(
            &mut errs,
            "roleRef.name",
            name,
            super::names::is_valid_path_segment_name(name),
        );
    }
    for (i, s) in arr_of(obj, "subjects").iter().enumerate() {
        let p = index("subjects", i);
        let name = str_of(s, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        match str_of(s, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    invalid_each(
                        &mut errs,
                        &child(&p, "name"),
                        name,
                        is_dns1123_subdomain(name),
                    );
                }
                if !str_of(s, "apiGroup").is_empty() {
                    errs.push(FieldError::not_supported(
                        child(&p, "apiGroup"),
                        str_of(s, "apiGroup"),
                        &[""],
                    ));
                }
                if !namespaced && str_of(s, "namespace").is_empty() {
                    errs.push(FieldError::required(child(&p, "namespace"), ""));
                }
            }
            "User" | "Group" => {
                if str_of(s, "apiGroup") != RBAC {
                    errs.push(FieldError::not_supported(
                        child(&p, "apiGroup"),
                        str_of(s, "apiGroup"),
                        &[RBAC],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

fn ingress_backend(b: &Value, p: &str, errs: &mut Vec<FieldError>) {
    let (svc, res) = (
        b.get("service").filter(|s| !s.is_null()),
        b.get("resource").filter(|s| !s.is_null()),
    );
    match (svc, res) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            p,
            b.clone(),
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            p,
            b.clone(),
            "resource or service backend is required",
        )),
        (Some(s), None) => {
            let sp = child(p, "service");
            let name = str_of(s, "name");
            if name.is_empty() {
                errs.push(FieldError::required(child(&sp, "name"), ""));
            } else {
                invalid_each(errs, &child(&sp, "name"), name, is_dns1035_label(name));
            }
            let port = get(s, "port");
            let (pname, pnum) = (str_of(port, "name"), int_of(port, "number").unwrap_or(0));
            let pp = child(&sp, "port");
            match (pname.is_empty(), pnum == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    &pp,
                    port.clone(),
                    "cannot set both port name & port number",
                )),
                (true, true) => {
                    errs.push(FieldError::required(&pp, "port name or number is required"))
                }
                (false, true) => {
                    invalid_each(errs, &child(&pp, "name"), pname, is_valid_port_name(pname))
                }
                (true, false) => {
                    for m in is_valid_port_num(pnum) {
                        errs.push(FieldError::invalid(child(&pp, "number"), pnum, m));
                    }
                }
            }
        }
        (None, Some(r)) => {
            if str_of(r, "kind").is_empty() {
                errs.push(FieldError::required(
                    child(&child(p, "resource"), "kind"),
                    "",
                ));
            }
            if str_of(r, "name").is_empty() {
                errs.push(FieldError::required(
                    child(&child(p, "resource"), "name"),
                    "",
                ));
            }
        }
    }
}

fn host(h: &str, p: &str, errs: &mut Vec<FieldError>) {
    if h.parse::<std::net::IpAddr>().is_ok() {
        errs.push(FieldError::invalid(
            p,
            h,
            "must be a DNS name, not an IP address",
        ));
        return;
    }
    let bare = h.strip_prefix("*.").unwrap_or(h);
    if h.contains('*') && !h.starts_with("*.") || bare.contains('*') {
        errs.push(FieldError::invalid(
            p,
            h,
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
        return;
    }
    invalid_each(errs, p, h, is_dns1123_subdomain(bare));
}

fn ingress(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = arr_of(spec, "rules");
    let default = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            Value::Array(Vec::new()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        ingress_backend(b, "spec.defaultBackend", &mut errs);
    }
    let class = str_of(spec, "ingressClassName");
    if !class.is_empty() {
        invalid_each(
            &mut errs,
            "spec.ingressClassName",
            class,
            is_dns1123_subdomain(class),
        );
    }
    for (i, r) in rules.iter().enumerate() {
        let rp = index("spec.rules", i);
        let h = str_of(r, "host");
        if !h.is_empty() {
            host(h, &child(&rp, "host"), &mut errs);
        }
        let Some(http) = r.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let pp = child(&child(&rp, "http"), "paths");
        if arr_of(http, "paths").is_empty() {
            errs.push(FieldError::required(&pp, ""));
        }
        for (j, path) in arr_of(http, "paths").iter().enumerate() {
            let p = index(&pp, j);
            let kind = str_of(path, "pathType");
            match kind {
                "" => errs.push(FieldError::required(
                    child(&p, "pathType"),
                    "pathType must be specified",
                )),
                "Exact" | "Prefix" | "ImplementationSpecific" => {}
                other => errs.push(FieldError::not_supported(
                    child(&p, "pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            let text = str_of(path, "path");
            if (kind == "Exact" || kind == "Prefix") && !text.starts_with('/') {
                errs.push(FieldError::invalid(
                    child(&p, "path"),
                    text,
                    "must be an absolute path",
                ));
            }
            ingress_backend(get(path, "backend"), &child(&p, "backend"), &mut errs);
        }
    }
    for (i, t) in arr_of(spec, "tls").iter().enumerate() {
        for (j, h) in arr_of(t, "hosts").iter().enumerate() {
            host(
                h.as_str().unwrap_or(""),
                &index(&child(&index("spec.tls", i), "hosts"), j),
                &mut errs,
            );
        }
    }
    errs
}

fn np_ports(rule: &Value, p: &str, errs: &mut Vec<FieldError>) {
    for (i, port) in arr_of(rule, "ports").iter().enumerate() {
        let pp = index(&child(p, "ports"), i);
        one_of(errs, port, "protocol", &pp, &["SCTP", "TCP", "UDP"], false);
        match get(port, "port") {
            Value::Number(n) => {
                let n = n.as_i64().unwrap_or(0);
                for m in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(child(&pp, "port"), n, m));
                }
            }
            Value::String(s) => invalid_each(errs, &child(&pp, "port"), s, is_valid_port_name(s)),
            _ => {}
        }
        if let Some(end) = int_of(port, "endPort") {
            match get(port, "port") {
                Value::Number(n) if n.as_i64().unwrap_or(0) <= end => {}
                Value::Number(_) => errs.push(FieldError::invalid(
                    child(&pp, "endPort"),
                    end,
                    "must be greater than or equal to `port`",
                )),
                _ => errs.push(FieldError::required(
                    child(&pp, "port"),
                    "must be specified when `endPort` is specified",
                )),
            }
        }
    }
}

fn np_peers(rule: &Value, field: &str, p: &str, errs: &mut Vec<FieldError>) {
    for (i, peer) in arr_of(rule, field).iter().enumerate() {
        let pp = index(&child(p, field), i);
        let n = ["podSelector", "namespaceSelector", "ipBlock"]
            .iter()
            .filter(|k| has(peer, k))
            .count();
        if n == 0 {
            errs.push(FieldError::required(&pp, "must specify a peer"));
        }
        if has(peer, "ipBlock") && n > 1 {
            errs.push(FieldError::forbidden(
                &pp,
                "may not specify both ipBlock and another peer",
            ));
        }
        for sel in ["podSelector", "namespaceSelector"] {
            if let Some(s) = peer.get(sel).filter(|s| !s.is_null()) {
                errs.extend(validate_label_selector(s, &child(&pp, sel)));
            }
        }
        if let Some(b) = peer.get("ipBlock").filter(|b| !b.is_null()) {
            let cidr = str_of(b, "cidr");
            if cidr.is_empty() {
                errs.push(FieldError::required(
                    child(&child(&pp, "ipBlock"), "cidr"),
                    "",
                ));
            } else if !is_cidr(cidr) {
                errs.push(FieldError::invalid(
                    child(&child(&pp, "ipBlock"), "cidr"),
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            }
        }
    }
}

fn network_policy(spec: &Value) -> Vec<FieldError> {
    let mut errs = validate_label_selector(get(spec, "podSelector"), "spec.podSelector");
    for (i, r) in arr_of(spec, "ingress").iter().enumerate() {
        let p = index("spec.ingress", i);
        np_ports(r, &p, &mut errs);
        np_peers(r, "from", &p, &mut errs);
    }
    for (i, r) in arr_of(spec, "egress").iter().enumerate() {
        let p = index("spec.egress", i);
        np_ports(r, &p, &mut errs);
        np_peers(r, "to", &p, &mut errs);
    }
    for (i, t) in arr_of(spec, "policyTypes").iter().enumerate() {
        let s = t.as_str().unwrap_or("");
        if s != "Ingress" && s != "Egress" {
            errs.push(FieldError::not_supported(
                index("spec.policyTypes", i),
                s,
                &["Ingress", "Egress"],
            ));
        }
    }
    if arr_of(spec, "policyTypes").len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            get(spec, "policyTypes").clone(),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

fn endpoint_slice(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = str_of(obj, "addressType");
    one_of(
        &mut errs,
        obj,
        "addressType",
        "",
        &["FQDN", "IPv4", "IPv6"],
        true,
    );
    let endpoints = arr_of(obj, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(FieldError::too_many("endpoints", endpoints.len(), 1000));
    }
    for (i, e) in endpoints.iter().enumerate() {
        let p = child(&index("endpoints", i), "addresses");
        let addrs = arr_of(e, "addresses");
        if addrs.is_empty() || addrs.len() > 100 {
            errs.push(FieldError::invalid(
                &p,
                addrs.len(),
                "must contain at least 1 address and no more than 100",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ap = index(&p, j);
            match ty {
                "IPv4" | "IPv6" => {
                    let msgs = is_valid_ip(a);
                    if !msgs.is_empty() {
                        invalid_each(&mut errs, &ap, a, msgs);
                    } else if a.contains(':') != (ty == "IPv6") {
                        errs.push(FieldError::invalid(
                            &ap,
                            a,
                            format!("must be an {ty} address"),
                        ));
                    }
                }
                "FQDN" => invalid_each(&mut errs, &ap, a, is_dns1123_subdomain(a)),
                _ => {}
            }
        }
    }
    for (i, port) in arr_of(obj, "ports").iter().enumerate() {
        let p = index("ports", i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            invalid_each(&mut errs, &child(&p, "name"), name, is_dns1123_label(name));
        }
        if let Some(n) = int_of(port, "port") {
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(child(&p, "port"), n, m));
            }
        }
        one_of(
            &mut errs,
            port,
            "protocol",
            &p,
            &["SCTP", "TCP", "UDP"],
            false,
        );
    }
    errs
}

fn int_or_percent(v: &Value, p: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Number(n) if n.as_i64().unwrap_or(-1) < 0 => {
            errs.push(FieldError::invalid(p, v.clone(), "must be greater than or equal to 0"))
        }
        Value::String(s) => match s.strip_suffix('%').and_then(|d| d.parse::<u64>().ok()) {
            None => errs.push(FieldError::invalid(
                p,
                s.as_str(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            Some(n) if n > 100 => errs.push(FieldError::invalid(p, s.as_str(), "must not be greater than 100%")),
            Some(_) => {}
        },
        _ => {}
    }
}

fn pdb(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if has(spec, "minAvailable") && has(spec, "maxUnavailable") {
        errs.push(FieldError::invalid(
            "spec",
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for f in ["minAvailable", "maxUnavailable"] {
        if let Some(v) = spec.get(f) {
            int_or_percent(v, &child("spec", f), &mut errs);
        }
    }
    if let Some(s) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(validate_label_selector(s, "spec.selector"));
    }
    one_of(
        &mut errs,
        spec,
        "unhealthyPodEvictionPolicy",
        "spec",
        &["AlwaysAllow", "IfHealthyBudget"],
        false,
    );
    errs
}

fn hpa(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let target = get(spec, "scaleTargetRef");
    for f in ["kind", "name"] {
        if str_of(target, f).is_empty() {
            errs.push(FieldError::required(child("spec.scaleTargetRef", f), ""));
        }
    }
    let min = int_of(spec, "minReplicas");
    if let Some(m) = min
        && m < 1
    {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            m,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_of(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if let Some(m) = min
        && max < m
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    if let Some(t) = int_of(spec, "targetCPUUtilizationPercentage")
        && t < 1
    {
        errs.push(FieldError::invalid(
            "spec.targetCPUUtilizationPercentage",
            t,
            "must be greater than 0",
        ));
    }
    errs
}

fn priority_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int_of(obj, "value").unwrap_or(0);
    let system = ["system-cluster-critical", "system-node-critical"].contains(&name);
    if name.starts_with("system-") && !system {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "priority class names with 'system-' prefix are reserved",
        ));
    } else if !system && value > 1_000_000_000 {
        errs.push(FieldError::forbidden(
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    one_of(
        &mut errs,
        obj,
        "preemptionPolicy",
        "",
        &["Never", "PreemptLowerPriority"],
        false,
    );
    errs
}

fn storage_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let prov = str_of(obj, "provisioner");
    if prov.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        invalid_each(
            &mut errs,
            "provisioner",
            prov,
            is_qualified_name(&prov.to_lowercase()),
        );
    }
    one_of(
        &mut errs,
        obj,
        "reclaimPolicy",
        "",
        &["Delete", "Retain"],
        false,
    );
    one_of(
        &mut errs,
        obj,
        "volumeBindingMode",
        "",
        &["Immediate", "WaitForFirstConsumer"],
        false,
    );
    errs
}

fn webhooks(obj: &Value, mutating: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, w) in arr_of(obj, "webhooks").iter().enumerate() {
        let p = index("webhooks", i);
        let name = str_of(w, "name");
        invalid_each(&mut errs, &child(&p, "name"), name, is_qualified_name(name));
        if name.split('.').count() < 3 {
            errs.push(FieldError::invalid(
                child(&p, "name"),
                name,
                "should be a domain with at least three segments separated by dots",
            ));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(child(&p, "name"), name));
        }
        match str_of(w, "sideEffects") {
            "" => errs.push(FieldError::required(
                child(&p, "sideEffects"),
                "must specify one of \"None\", \"NoneOnDryRun\"",
            )),
            "None" | "NoneOnDryRun" => {}
            other => errs.push(FieldError::not_supported(
                child(&p, "sideEffects"),
                other,
                &["None", "NoneOnDryRun"],
            )),
        }
        if arr_of(w, "admissionReviewVersions").is_empty() {
            errs.push(FieldError::required(
                child(&p, "admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        }
        let cc = get(w, "clientConfig");
        if has(cc, "url") == has(cc, "service") {
            errs.push(FieldError::required(
                child(&p, "clientConfig"),
                "exactly one of url or service is required",
            ));
        }
        if let Some(t) = int_of(w, "timeoutSeconds")
            && !(1..=30).contains(&t)
        {
            errs.push(FieldError::invalid(
                child(&p, "timeoutSeconds"),
                t,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        one_of(
            &mut errs,
            w,
            "failurePolicy",
            &p,
            &["Fail", "Ignore"],
            false,
        );
        one_of(
            &mut errs,
            w,
            "matchPolicy",
            &p,
            &["Equivalent", "Exact"],
            false,
        );
        if mutating {
            one_of(
                &mut errs,
                w,
                "reinvocationPolicy",
                &p,
                &["IfNeeded", "Never"],
                false,
            );
        }
        for sel in ["namespaceSelector", "objectSelector"] {
            if let Some(s) = w.get(sel).filter(|s| !s.is_null()) {
                errs.extend(validate_label_selector(s, &child(&p, sel)));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(group: &str, kind: &str, obj: Value, expected: &[&str]) {
        let mut obj = obj;
        crate::defaults::apply(group, kind, &mut obj);
        let got: Vec<String> = validate(group, kind, &obj)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn rbac() {
        check(
            RBAC,
            "Role",
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            &[],
        );
        check(
            RBAC,
            "ClusterRole",
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            &["rules[0].verbs: Required value: verbs must contain at least one value"],
        );
        check(
            RBAC,
            "ClusterRoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
            &[
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ],
        );
        let old = json!({"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "a"}});
        let new = json!({"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "b"}});
        assert_eq!(
            validate_update(RBAC, "RoleBinding", &new, &old)[0].to_string(),
            "roleRef: Invalid value: {\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"b\"}: cannot change roleRef"
        );
    }

    #[test]
    fn ingress_and_network_policy() {
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        check(
            "networking.k8s.io",
            "Ingress",
            json!({"spec": {"rules": [{"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}),
            &[],
        );
        check(
            "networking.k8s.io",
            "Ingress",
            json!({"spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [{"path": "/", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}),
            &[
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required",
            ],
        );
        check(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}}),
            &[
                "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ],
        );
    }

    #[test]
    fn pdb_hpa_priority_class_storage_class_lease() {
        check(
            "policy",
            "PodDisruptionBudget",
            json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            &[
                "spec: Invalid value: {\"maxUnavailable\":1,\"minAvailable\":1}: minAvailable and maxUnavailable cannot be both set",
            ],
        );
        check(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}}),
            &["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"],
        );
        check(
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 2_000_000_000}),
            &["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
        );
        check(
            "storage.k8s.io",
            "StorageClass",
            json!({}),
            &["provisioner: Required value"],
        );
        check(
            "coordination.k8s.io",
            "Lease",
            json!({"spec": {"leaseDurationSeconds": 0}}),
            &["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
        );
        let old = json!({"provisioner": "a.io/x", "parameters": {"a": "1"}});
        let new = json!({"provisioner": "a.io/x", "parameters": {"a": "2"}});
        assert_eq!(
            validate_update("storage.k8s.io", "StorageClass", &new, &old)[0].to_string(),
            "parameters: Forbidden: updates to parameters are forbidden."
        );
    }

    #[test]
    fn slices_and_webhooks() {
        check(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.42.0.5"]}], "ports": [{"port": 80}]}),
            &[],
        );
        check(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            json!({"webhooks": [{"name": "hook", "clientConfig": {"url": "https://x"}}]}),
            &[
                "webhooks[0].name: Invalid value: \"hook\": should be a domain with at least three segments separated by dots",
                "webhooks[0].sideEffects: Required value: must specify one of \"None\", \"NoneOnDryRun\"",
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            ],
        );
    }
}
