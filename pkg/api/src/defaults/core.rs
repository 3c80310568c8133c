//! Core (`v1`) kinds other than Pod: Service, Namespace, Secret, volumes and
//! claims, ReplicationController, PodTemplate, Endpoints, Node, LimitRange.

use super::core_pod::{pod, pvc_spec, template_at, volume_source};
use super::{at, each, ensure_obj, present, set_default, set_default_str, str_at};
use crate::validation::quantity::canonicalize;
use serde_json::{Value, json};

pub(super) fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => pod(obj),
        "PodTemplate" => template_at(obj, "template"),
        "ReplicationController" => replication_controller(obj),
        "Service" => service(obj),
        "Namespace" => namespace(obj),
        "Secret" => set_default_str(obj, "type", "Opaque"),
        "PersistentVolumeClaim" => pvc(obj),
        "PersistentVolume" => pv(obj),
        "Endpoints" => each(obj, "subsets", |s| {
            each(s, "ports", |p| set_default_str(p, "protocol", "TCP"))
        }),
        "Node" => node(obj),
        "LimitRange" => limit_range(obj),
        _ => {}
    }
}

/// A PersistentVolumeClaim, also as embedded in StatefulSet claim templates.
pub(crate) fn pvc(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        pvc_spec(spec);
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

fn pv(obj: &mut Value) {
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_default_str(spec, "volumeMode", "Filesystem");
        volume_source(spec);
        if let Some(c) = spec.get_mut("capacity").and_then(Value::as_object_mut) {
            c.values_mut().for_each(canonicalize);
        }
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

fn replication_controller(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    let labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()));
    if let Some(labels) = labels {
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
            && let Some(m) = spec.as_object_mut()
        {
            m.insert("selector".into(), labels);
        }
        super::batch::copy_template_labels(obj);
    }
    if let Some(spec) = at(obj, "spec")
        && present(spec, "template")
    {
        template_at(spec, "template");
    }
}

fn service(obj: &mut Value) {
    let Some(spec) = ensure_obj(obj, "spec") else {
        return;
    };
    set_default_str(spec, "sessionAffinity", "None");
    match str_at(spec, "sessionAffinity") {
        "None" => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("sessionAffinityConfig");
            }
        }
        "ClientIP" => {
            if spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .is_none_or(Value::is_null)
                && let Some(m) = spec.as_object_mut()
            {
                m.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_default_str(spec, "type", "ClusterIP");
    each(spec, "ports", |p| {
        set_default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && let (Some(port), Some(m)) = (p.get("port").cloned(), p.as_object_mut()) {
            m.insert("targetPort".into(), port);
        }
    });
    let ty = str_at(spec, "type").to_string();
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && external_ips) {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default_str(spec, "internalTrafficPolicy", "Cluster");
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // ServiceStatus is not a pointer in Go: every Service shows `status: {loadBalancer: {}}`.
    if let Some(status) = ensure_obj(obj, "status") {
        set_default(status, "loadBalancer", json!({}));
        if ty == "LoadBalancer"
            && let Some(lb) = at(status, "loadBalancer")
        {
            each(lb, "ingress", |i| {
                if !str_at(i, "ip").is_empty() {
                    set_default_str(i, "ipMode", "VIP");
                }
            });
        }
    }
}

/// What the apiserver must allocate for a defaulted Service before storing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocations {
    /// A cluster IP per IP family is needed (`spec.clusterIP` unset, not headless, not ExternalName).
    pub cluster_ip: bool,
    /// Indices into `spec.ports` whose `nodePort` must be allocated.
    pub node_ports: Vec<usize>,
    /// `spec.healthCheckNodePort` must be allocated (LoadBalancer with `externalTrafficPolicy: Local`).
    pub health_check_node_port: bool,
}

/// Tells the apiserver which cluster IP and node ports a (defaulted) Service still needs.
pub fn service_allocations(obj: &Value) -> ServiceAllocations {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = str_at(spec, "type");
    let cluster_ip = str_at(spec, "clusterIP");
    let needs_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec
                .get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false));
    let node_ports = if needs_node_ports {
        spec.get("ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0)
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    ServiceAllocations {
        cluster_ip: ty != "ExternalName" && cluster_ip.is_empty(),
        node_ports,
        health_check_node_port: ty == "LoadBalancer"
            && str_at(spec, "externalTrafficPolicy") == "Local"
            && spec
                .get("healthCheckNodePort")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0,
    }
}

/// Fills `spec.ipFamilyPolicy` and `spec.ipFamilies` as the Service REST layer does,
/// for a cluster serving `cluster_families` (primary first, e.g. `["IPv4"]`).
///
/// Call after cluster IPs are allocated (families are then read from `spec.clusterIPs`).
pub fn service_ip_families(obj: &mut Value, cluster_families: &[&str]) {
    let Some(spec) = at(obj, "spec") else { return };
    if str_at(spec, "type") == "ExternalName" {
        return;
    }
    let headless = str_at(spec, "clusterIP") == "None";
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    let default_policy = if headless && !has_selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    set_default_str(spec, "ipFamilyPolicy", default_policy);
    let primary = cluster_families.first().copied().unwrap_or("IPv4");
    let from_ips: Vec<Value> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(Value::as_str)
                .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
                .map(|ip| json!(if ip.is_ipv4() { "IPv4" } else { "IPv6" }))
                .collect()
        })
        .unwrap_or_default();
    let families: Vec<Value> = if !from_ips.is_empty() {
        from_ips
    } else if str_at(spec, "ipFamilyPolicy") == "SingleStack" {
        vec![json!(primary)]
    } else if headless {
        let other = if primary == "IPv4" { "IPv6" } else { "IPv4" };
        vec![json!(primary), json!(other)]
    } else {
        cluster_families.iter().map(|f| json!(f)).collect()
    };
    if spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
        && let Some(m) = spec.as_object_mut()
    {
        m.insert("ipFamilies".into(), Value::Array(families));
    }
}

fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty()
        && let Some(labels) = ensure_obj(obj, "metadata").and_then(|m| ensure_obj(m, "labels"))
        && let Some(m) = labels.as_object_mut()
    {
        m.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(spec) = ensure_obj(obj, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(obj, "status") {
        set_default_str(status, "phase", "Active");
    }
}

fn node(obj: &mut Value) {
    if let Some(status) = at(obj, "status")
        && let Some(cap) = status.get("capacity").cloned()
    {
        set_default(status, "allocatable", cap);
    }
}

fn limit_range(obj: &mut Value) {
    let Some(spec) = at(obj, "spec") else { return };
    each(spec, "limits", |item| {
        if str_at(item, "type") != "Container" {
            return;
        }
        let max = item.get("max").cloned();
        let min = item.get("min").cloned();
        let Some(default) = ensure_obj(item, "default") else {
            return;
        };
        for (k, v) in max
            .as_ref()
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            set_default(default, k, v.clone());
        }
        let default = default.clone();
        let Some(req) = ensure_obj(item, "defaultRequest") else {
            return;
        };
        for source in [Some(&default), min.as_ref()] {
            for (k, v) in source.and_then(Value::as_object).into_iter().flatten() {
                set_default(req, k, v.clone());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::test_util::check;

    #[test]
    fn minimal_service() {
        check(
            "",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            json!({"metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                            "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"},
                   "status": {"loadBalancer": {}}}),
        );
    }

    #[test]
    fn node_port_and_load_balancer_services() {
        let mut svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}, {"port": 443, "nodePort": 30443}],
                                      "sessionAffinity": "ClientIP"}});
        apply("Service", &mut svc);
        let spec = &svc["spec"];
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ports"][0]["targetPort"], "http");
        assert_eq!(
            spec["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let alloc = service_allocations(&svc);
        assert_eq!(
            alloc,
            ServiceAllocations {
                cluster_ip: true,
                node_ports: vec![0],
                health_check_node_port: false
            }
        );
        let mut ext = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply("Service", &mut ext);
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(!service_allocations(&ext).cluster_ip);
    }

    #[test]
    fn ip_families_follow_the_cluster_and_headlessness() {
        let mut svc = json!({"spec": {"selector": {"a": "b"}, "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"]}});
        service_ip_families(&mut svc, &["IPv4"]);
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        service_ip_families(&mut headless, &["IPv4"]);
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    }

    #[test]
    fn namespace_secret_and_claims() {
        check(
            "",
            "Namespace",
            json!({"metadata": {"name": "dev"}}),
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
        check(
            "",
            "Secret",
            json!({"data": {}}),
            json!({"data": {}, "type": "Opaque"}),
        );
        check(
            "",
            "PersistentVolumeClaim",
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}),
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
                   "status": {"phase": "Pending"}}),
        );
        check(
            "",
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/d"}}}),
            json!({"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/d", "type": ""},
                            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
                   "status": {"phase": "Pending"}}),
        );
    }

    #[test]
    fn replication_controller_and_limit_range() {
        let mut rc = json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"image": "x:1"}]}}}});
        apply("ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut lr = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}});
        apply("LimitRange", &mut lr);
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "2", "memory": "1Mi"})
        );
    }
}
