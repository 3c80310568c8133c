//! Printers for cluster-level and networking kinds: RBAC, leases, storage and
//! priority classes, ingresses and ingress classes, endpoint slices,
//! certificate signing requests, runtime classes, webhook configurations and
//! network policies.

use super::format::{
    Clock, NONE, created_at, format_label_selector, human_seconds, int, list, text, text_or,
    with_more,
};
use super::{Col, Printer, Row};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) fn printer(group: &str, kind: &str) -> Option<(&'static [Col], Printer)> {
    let found: (&'static [Col], Printer) = match (group, kind) {
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => (ROLE, print_role),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            (ROLE_BINDING, print_role_binding)
        }
        ("coordination.k8s.io", "Lease") => (LEASE, print_lease),
        ("storage.k8s.io", "StorageClass") => (STORAGE_CLASS, print_storage_class),
        ("scheduling.k8s.io", "PriorityClass") => (PRIORITY_CLASS, print_priority_class),
        ("networking.k8s.io", "IngressClass") => (INGRESS_CLASS, print_ingress_class),
        ("networking.k8s.io", "Ingress") => (INGRESS, print_ingress),
        ("networking.k8s.io", "NetworkPolicy") => (NETWORK_POLICY, print_network_policy),
        ("discovery.k8s.io", "EndpointSlice") => (ENDPOINT_SLICE, print_endpoint_slice),
        ("certificates.k8s.io", "CertificateSigningRequest") => (CSR, print_csr),
        ("node.k8s.io", "RuntimeClass") => (RUNTIME_CLASS, print_runtime_class),
        ("metrics.k8s.io", "NodeMetrics") => (RESOURCE_METRICS, print_node_metrics),
        ("metrics.k8s.io", "PodMetrics") => (RESOURCE_METRICS, print_pod_metrics),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => (WEBHOOKS, print_webhooks),
        _ => return None,
    };
    Some(found)
}

/// metrics-server's columns for NodeMetrics and PodMetrics.
const RESOURCE_METRICS: &[Col] = &[
    Col::name(),
    Col::new("CPU", "string", 0, "Amount of CPU used"),
    Col::new("Memory", "string", 0, "Amount of memory used (working set)"),
    Col::new(
        "Window",
        "string",
        0,
        "The window over which usage was measured",
    ),
];

fn print_node_metrics(metrics: &Value, _: &Clock) -> Row {
    Row::new(vec![
        metrics["metadata"]["name"].clone(),
        json!(text(&metrics["usage"]["cpu"])),
        json!(text(&metrics["usage"]["memory"])),
        json!(text(&metrics["window"])),
    ])
}

/// A pod's row sums its containers, as metrics-server prints it.
fn print_pod_metrics(metrics: &Value, _: &Clock) -> Row {
    let containers = metrics["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sum = |resource: &str, unit: &str| {
        let total: u64 = containers
            .iter()
            .filter_map(|c| c["usage"][resource].as_str())
            .filter_map(|q| q.trim_end_matches(unit).parse::<u64>().ok())
            .sum();
        format!("{total}{unit}")
    };
    Row::new(vec![
        metrics["metadata"]["name"].clone(),
        json!(sum("cpu", "n")),
        json!(sum("memory", "Ki")),
        json!(text(&metrics["window"])),
    ])
}

const ROLE: &[Col] = &[Col::name(), Col::created_at()];

fn print_role(role: &Value, _: &Clock) -> Row {
    Row::new(vec![role["metadata"]["name"].clone(), created_at(role)])
}

const ROLE_BINDING: &[Col] = &[
    Col::name(),
    Col::new(
        "Role",
        "string",
        0,
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    ),
    Col::age(),
    Col::new("Users", "string", 1, "Users in the roleBinding"),
    Col::new("Groups", "string", 1, "Groups in the roleBinding"),
    Col::new(
        "ServiceAccounts",
        "string",
        1,
        "ServiceAccounts in the roleBinding",
    ),
];

fn print_role_binding(rb: &Value, clock: &Clock) -> Row {
    let role = format!(
        "{}/{}",
        text(&rb["roleRef"]["kind"]),
        text(&rb["roleRef"]["name"])
    );
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(&rb["subjects"]) {
        let name = text(&subject["name"]);
        match subject["kind"].as_str().unwrap_or_default() {
            "User" => users.push(name),
            "Group" => groups.push(name),
            "ServiceAccount" => sas.push(
                match subject["namespace"].as_str().filter(|n| !n.is_empty()) {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                },
            ),
            _ => {}
        }
    }
    Row::new(vec![
        rb["metadata"]["name"].clone(),
        json!(role),
        json!(clock.age(rb)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ])
}

const LEASE: &[Col] = &[
    Col::name(),
    Col::new("Holder", "string", 0, "The holder of the lease"),
    Col::age(),
];

fn print_lease(lease: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        lease["metadata"]["name"].clone(),
        json!(text(&lease["spec"]["holderIdentity"])),
        json!(clock.age(lease)),
    ])
}

const STORAGE_CLASS: &[Col] = &[
    Col::name(),
    Col::new(
        "Provisioner",
        "string",
        0,
        "provisioner indicates the type of the provisioner.",
    ),
    Col::new(
        "ReclaimPolicy",
        "string",
        0,
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
    ),
    Col::new(
        "VolumeBindingMode",
        "string",
        0,
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
    ),
    Col::new(
        "AllowVolumeExpansion",
        "string",
        0,
        "allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    Col::age(),
];

fn print_storage_class(sc: &Value, clock: &Clock) -> Row {
    let annotations = &sc["metadata"]["annotations"];
    let is_default = annotations["storageclass.kubernetes.io/is-default-class"] == "true"
        || annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true";
    let name = text(&sc["metadata"]["name"]);
    let name = if is_default {
        format!("{name} (default)")
    } else {
        name
    };
    Row::new(vec![
        json!(name),
        json!(text(&sc["provisioner"])),
        json!(text_or(&sc["reclaimPolicy"], "Delete")),
        json!(text_or(&sc["volumeBindingMode"], "Immediate")),
        json!(sc["allowVolumeExpansion"].as_bool().unwrap_or(false)),
        json!(clock.age(sc)),
    ])
}

const PRIORITY_CLASS: &[Col] = &[
    Col::name(),
    Col::new(
        "Value",
        "integer",
        0,
        "value represents the integer value of this priority class.",
    ),
    Col::new(
        "Global-Default",
        "boolean",
        0,
        "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
    ),
    Col::age(),
    Col::new(
        "PreemptionPolicy",
        "string",
        0,
        "preemptionPolicy is the Policy for preempting pods with lower priority.",
    ),
];

fn print_priority_class(pc: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        pc["metadata"]["name"].clone(),
        json!(int(&pc["value"])),
        json!(pc["globalDefault"].as_bool().unwrap_or(false)),
        json!(clock.age(pc)),
        json!(text_or(&pc["preemptionPolicy"], "<unset>")),
    ])
}

const INGRESS_CLASS: &[Col] = &[
    Col::name(),
    Col::new(
        "Controller",
        "string",
        0,
        "Controller that is responsible for handling this class",
    ),
    Col::new(
        "Parameters",
        "string",
        0,
        "A reference to a resource with additional parameters",
    ),
    Col::age(),
];

fn print_ingress_class(ic: &Value, clock: &Clock) -> Row {
    let params = &ic["spec"]["parameters"];
    let parameters = if params.is_object() {
        let kind = match params["apiGroup"].as_str() {
            Some(group) => format!("{}.{group}", text(&params["kind"])),
            None => text(&params["kind"]),
        };
        format!("{kind}/{}", text(&params["name"]))
    } else {
        NONE.to_string()
    };
    Row::new(vec![
        ic["metadata"]["name"].clone(),
        json!(text(&ic["spec"]["controller"])),
        json!(parameters),
        json!(clock.age(ic)),
    ])
}

const INGRESS: &[Col] = &[
    Col::name(),
    Col::new(
        "Class",
        "string",
        0,
        "The name of the IngressClass resource that should be used for this Ingress.",
    ),
    Col::new(
        "Hosts",
        "string",
        0,
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Col::new(
        "Address",
        "string",
        0,
        "Address is a list containing ingress points for the load-balancer",
    ),
    Col::new(
        "Ports",
        "string",
        0,
        "Ports of TLS configurations that open",
    ),
    Col::age(),
];

fn print_ingress(ing: &Value, clock: &Clock) -> Row {
    let spec = &ing["spec"];
    let rules = list(&spec["rules"]);
    let mut hosts: Vec<String> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == 3 {
            more = true;
        }
        if let Some(host) = rule["host"].as_str().filter(|h| !more && !h.is_empty()) {
            hosts.push(host.to_string());
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    };
    let address: Vec<String> = list(&ing["status"]["loadBalancer"]["ingress"])
        .iter()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or_else(|| i["hostname"].as_str())
        })
        .map(str::to_string)
        .collect();
    let ports = if list(&spec["tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    Row::new(vec![
        ing["metadata"]["name"].clone(),
        json!(spec["ingressClassName"].as_str().unwrap_or(NONE)),
        json!(hosts),
        json!(address.join(",")),
        json!(ports),
        json!(clock.age(ing)),
    ])
}

const NETWORK_POLICY: &[Col] = &[
    Col::name(),
    Col::new(
        "Pod-Selector",
        "string",
        0,
        "podSelector selects the pods to which this NetworkPolicy object applies.",
    ),
    Col::age(),
];

fn print_network_policy(np: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        np["metadata"]["name"].clone(),
        json!(format_label_selector(&np["spec"]["podSelector"])),
        json!(clock.age(np)),
    ])
}

const ENDPOINT_SLICE: &[Col] = &[
    Col::name(),
    Col::new(
        "AddressType",
        "string",
        0,
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    Col::new(
        "Ports",
        "string",
        0,
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    Col::new(
        "Endpoints",
        "string",
        0,
        "endpoints is a list of unique endpoints in this slice.",
    ),
    Col::age(),
];

fn print_endpoint_slice(slice: &Value, clock: &Clock) -> Row {
    let ports: Vec<String> = list(&slice["ports"])
        .iter()
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = list(&slice["endpoints"])
        .iter()
        .flat_map(|e| list(&e["addresses"]).iter().map(text))
        .collect();
    let unset = |s: String| {
        if s.is_empty() {
            "<unset>".to_string()
        } else {
            s
        }
    };
    Row::new(vec![
        slice["metadata"]["name"].clone(),
        json!(text(&slice["addressType"])),
        json!(unset(with_more(&ports, ports.len(), 3))),
        json!(unset(with_more(&addresses, addresses.len(), 3))),
        json!(clock.age(slice)),
    ])
}

const CSR: &[Col] = &[
    Col::name(),
    Col::age(),
    Col::new(
        "SignerName",
        "string",
        0,
        "signerName indicates the requested signer, and is a qualified name.",
    ),
    Col::new(
        "Requestor",
        "string",
        0,
        "Name of the user requesting the certificate.",
    ),
    Col::new(
        "RequestedDuration",
        "string",
        0,
        "expirationSeconds is the requested duration of validity of the issued certificate.",
    ),
    Col::new(
        "Condition",
        "string",
        0,
        "Conditions applied to the request.",
    ),
];

fn print_csr(csr: &Value, clock: &Clock) -> Row {
    let conditions = list(&csr["status"]["conditions"]);
    let has = |t: &str| conditions.iter().any(|c| c["type"] == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".into()
    } else {
        "Pending".into()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if csr["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        status.push_str(",Issued");
    }
    let duration = csr["spec"]["expirationSeconds"].as_u64().map_or_else(
        || NONE.to_string(),
        |s| human_seconds(Duration::from_secs(s)),
    );
    Row::new(vec![
        csr["metadata"]["name"].clone(),
        json!(clock.age(csr)),
        json!(text_or(&csr["spec"]["signerName"], NONE)),
        json!(text(&csr["spec"]["username"])),
        json!(duration),
        json!(status),
    ])
}

const RUNTIME_CLASS: &[Col] = &[
    Col::name(),
    Col::new(
        "Handler",
        "string",
        0,
        "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
    ),
    Col::age(),
];

fn print_runtime_class(rc: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        rc["metadata"]["name"].clone(),
        json!(text(&rc["handler"])),
        json!(clock.age(rc)),
    ])
}

const WEBHOOKS: &[Col] = &[
    Col::name(),
    Col::new(
        "Webhooks",
        "integer",
        0,
        "Webhooks is a list of webhooks and the affected resources and operations.",
    ),
    Col::age(),
];

fn print_webhooks(cfg: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        cfg["metadata"]["name"].clone(),
        json!(list(&cfg["webhooks"]).len()),
        json!(clock.age(cfg)),
    ])
}
