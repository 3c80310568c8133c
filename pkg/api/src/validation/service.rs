//! Service validation: ports, types, cluster IPs, traffic policies, and the
//! update rule that allocated cluster IPs never change.

use super::FieldError;
use super::meta::validate_labels;
use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip, is_valid_port_name,
    is_valid_port_num,
};
use super::util::{arr_of, child, get, index, int_of, invalid_each, one_of, str_of};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Validates a Service.
pub(crate) fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = get(obj, "spec");
    let ty = str_of(spec, "type");
    let headless = str_of(spec, "clusterIP") == "None";
    let ports = arr_of(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    one_of(
        &mut errs,
        spec,
        "type",
        "spec",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        true,
    );
    if ty == "ExternalName" {
        let name = str_of(spec, "externalName");
        if name.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            invalid_each(
                &mut errs,
                "spec.externalName",
                name,
                is_dns1123_subdomain(name.trim_end_matches('.')),
            );
        }
        if !str_of(spec, "clusterIP").is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
            ));
        }
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut pairs = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        let name = str_of(p, "name");
        if name.is_empty() {
            if require_name {
                errs.push(FieldError::required(child(&pp, "name"), ""));
            }
        } else {
            invalid_each(&mut errs, &child(&pp, "name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&pp, "name"), name));
            }
        }
        let port = int_of(p, "port").unwrap_or(0);
        for m in is_valid_port_num(port) {
            errs.push(FieldError::invalid(child(&pp, "port"), port, m));
        }
        one_of(&mut errs, p, "protocol", &pp, &["SCTP", "TCP", "UDP"], true);
        match get(p, "targetPort") {
            Value::Number(n) => {
                let n = n.as_i64().unwrap_or(0);
                for m in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(child(&pp, "targetPort"), n, m));
                }
            }
            Value::String(s) => invalid_each(
                &mut errs,
                &child(&pp, "targetPort"),
                s,
                is_valid_port_name(s),
            ),
            _ => {}
        }
        let app = str_of(p, "appProtocol");
        if !app.is_empty() {
            invalid_each(
                &mut errs,
                &child(&pp, "appProtocol"),
                app,
                is_qualified_name(app),
            );
        }
        if int_of(p, "nodePort").unwrap_or(0) != 0 && (ty == "ClusterIP" || ty == "ExternalName") {
            errs.push(FieldError::forbidden(
                child(&pp, "nodePort"),
                format!("may not be used when `type` is '{ty}'"),
            ));
        }
        if !pairs.insert((port, str_of(p, "protocol"))) {
            errs.push(FieldError::duplicate(
                &pp,
                json!({"port": port, "protocol": str_of(p, "protocol")}),
            ));
        }
    }
    errs.extend(validate_labels(spec.get("selector"), "spec.selector"));
    one_of(
        &mut errs,
        spec,
        "sessionAffinity",
        "spec",
        &["ClientIP", "None"],
        true,
    );
    if str_of(spec, "sessionAffinity") == "ClientIP" {
        if let Some(t) = spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .and_then(Value::as_i64)
            && !(1..=86400).contains(&t)
        {
            errs.push(FieldError::invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                t,
                "must be greater than 0 and less than 86400",
            ));
        }
    } else if spec
        .get("sessionAffinityConfig")
        .is_some_and(|c| !c.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.sessionAffinityConfig",
            format!(
                "must not be set when session affinity is {}",
                str_of(spec, "sessionAffinity")
            ),
        ));
    }
    validate_cluster_ips(spec, ty, &mut errs);
    for (i, ip) in arr_of(spec, "externalIPs").iter().enumerate() {
        let s = ip.as_str().unwrap_or("");
        invalid_each(&mut errs, &index("spec.externalIPs", i), s, is_valid_ip(s));
    }
    one_of(
        &mut errs,
        spec,
        "externalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
        false,
    );
    one_of(
        &mut errs,
        spec,
        "internalTrafficPolicy",
        "spec",
        &["Cluster", "Local"],
        false,
    );
    one_of(
        &mut errs,
        spec,
        "ipFamilyPolicy",
        "spec",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
        false,
    );
    let mut families = HashSet::new();
    for (i, f) in arr_of(spec, "ipFamilies").iter().enumerate() {
        let s = f.as_str().unwrap_or("");
        if s != "IPv4" && s != "IPv6" {
            errs.push(FieldError::not_supported(
                index("spec.ipFamilies", i),
                s,
                &["IPv4", "IPv6"],
            ));
        } else if !families.insert(s) {
            errs.push(FieldError::duplicate(index("spec.ipFamilies", i), s));
        }
    }
    let external =
        ty == "NodePort" || ty == "LoadBalancer" || !arr_of(spec, "externalIPs").is_empty();
    if !external && !str_of(spec, "externalTrafficPolicy").is_empty() {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            str_of(spec, "externalTrafficPolicy"),
            "may only be set for externally-accessible services",
        ));
    }
    if ty == "LoadBalancer"
        && spec
            .get("allocateLoadBalancerNodePorts")
            .is_none_or(Value::is_null)
    {
        errs.push(FieldError::required(
            "spec.allocateLoadBalancerNodePorts",
            "",
        ));
    }
    if int_of(spec, "healthCheckNodePort").unwrap_or(0) != 0
        && !(ty == "LoadBalancer" && str_of(spec, "externalTrafficPolicy") == "Local")
    {
        errs.push(FieldError::invalid(
            "spec.healthCheckNodePort",
            int_of(spec, "healthCheckNodePort").unwrap_or(0),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    errs
}

fn validate_cluster_ips(spec: &Value, ty: &str, errs: &mut Vec<FieldError>) {
    let ips: Vec<&str> = match arr_of(spec, "clusterIPs") {
        [] => match str_of(spec, "clusterIP") {
            "" => Vec::new(),
            ip => vec![ip],
        },
        list => list.iter().map(|v| v.as_str().unwrap_or("")).collect(),
    };
    let primary = str_of(spec, "clusterIP");
    if !primary.is_empty() && ips.first().is_some_and(|p| *p != primary) {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            json!(ips),
            "first value must match `clusterIP`",
        ));
    }
    for (i, ip) in ips.iter().enumerate() {
        let p = index("spec.clusterIPs", i);
        if *ip == "None" {
            if i > 0 || ips.len() > 1 {
                errs.push(FieldError::invalid(
                    &p,
                    *ip,
                    "'None' must be the first and only value",
                ));
            } else if ty == "NodePort" || ty == "LoadBalancer" {
                errs.push(FieldError::invalid(
                    &p,
                    *ip,
                    format!("may not be set to 'None' for {ty} services"),
                ));
            }
            continue;
        }
        invalid_each(errs, &p, ip, is_valid_ip(ip));
    }
}

/// Validates a Service update: the new Service, and that cluster IPs and the primary family keep their values.
pub(crate) fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(new);
    let (ns, os) = (get(new, "spec"), get(old, "spec"));
    if str_of(ns, "type") == "ExternalName" || str_of(os, "type") == "ExternalName" {
        return errs;
    }
    let ips = |s: &Value| -> Vec<String> {
        match arr_of(s, "clusterIPs") {
            [] => match str_of(s, "clusterIP") {
                "" => Vec::new(),
                ip => vec![ip.to_string()],
            },
            list => list
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect(),
        }
    };
    let (new_ips, old_ips) = (ips(ns), ips(os));
    let (nh, oh) = (
        new_ips.first().is_some_and(|i| i == "None"),
        old_ips.first().is_some_and(|i| i == "None"),
    );
    if !(nh && oh) {
        if new_ips.len() == old_ips.len() {
            for (i, (a, b)) in new_ips.iter().zip(&old_ips).enumerate() {
                if a != b {
                    errs.push(FieldError::invalid(
                        index("spec.clusterIPs", i),
                        json!(new_ips),
                        "may not change once set",
                    ));
                }
            }
        } else if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                json!(new_ips),
                "primary clusterIP can not be unset",
            ));
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                json!(new_ips),
                "may not change once set",
            ));
        }
    }
    let (nf, of) = (arr_of(ns, "ipFamilies"), arr_of(os, "ipFamilies"));
    if let (Some(a), Some(b)) = (nf.first(), of.first())
        && a != b
    {
        errs.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            Value::Array(nf.to_vec()),
            "may not change once set",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web"}, "spec": spec});
        crate::defaults::apply("", "Service", &mut s);
        s
    }

    fn check(spec: Value, expected: &[&str]) {
        let got: Vec<String> = validate(&svc(spec.clone()))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "for {spec}");
    }

    #[test]
    fn service_messages() {
        check(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            &[],
        );
        check(json!({"clusterIP": "None"}), &[]);
        check(
            json!({"type": "ExternalName", "externalName": "example.com."}),
            &[],
        );
        check(
            json!({"selector": {"app": "web"}}),
            &["spec.ports: Required value"],
        );
        check(
            json!({"ports": [{"port": 80}, {"port": 70000, "name": "b"}]}),
            &[
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        );
        check(
            json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}),
            &["spec.ports[1].name: Duplicate value: \"a\""],
        );
        check(
            json!({"type": "Magic", "ports": [{"port": 80}]}),
            &[
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        );
        check(
            json!({"clusterIP": "10.43.0.300", "ports": [{"port": 80}]}),
            &[
                "spec.clusterIPs[0]: Invalid value: \"10.43.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        );
        check(
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        );
        check(
            json!({"selector": {"app": "a b"}, "ports": [{"port": 80}]}),
            &[
                "spec.selector: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        );
    }

    #[test]
    fn cluster_ip_may_not_change() {
        let old = svc(
            json!({"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"], "ports": [{"port": 53}]}),
        );
        let mut new = old.clone();
        assert!(validate_update(&new, &old).is_empty());
        new["spec"]["clusterIP"] = json!("10.43.0.11");
        new["spec"]["clusterIPs"] = json!(["10.43.0.11"]);
        assert_eq!(
            validate_update(&new, &old)[0].to_string(),
            "spec.clusterIPs[0]: Invalid value: [\"10.43.0.11\"]: may not change once set"
        );
    }
}
