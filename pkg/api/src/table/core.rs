//! Printers for core (`v1`) kinds and events: nodes, namespaces, services,
//! endpoints, config maps, secrets, service accounts, events, volumes and
//! claims, limit ranges, quotas, component statuses and pod templates.

use super::format::{
    Clock, NONE, UNKNOWN, access_modes, container_cells, created_at, format_labels, list, map_len,
    quantity, text, text_or, with_more,
};
use super::pods::{POD_COLUMNS, print_pod};
use super::{Col, Printer, Row};
use serde_json::{Value, json};

pub(crate) fn printer(group: &str, kind: &str) -> Option<(&'static [Col], Printer)> {
    let found: (&'static [Col], Printer) = match (group, kind) {
        ("", "Pod") => (POD_COLUMNS, print_pod),
        ("", "Node") => (NODE, print_node),
        ("", "Namespace") => (NAMESPACE, print_namespace),
        ("", "Service") => (SERVICE, print_service),
        ("", "Endpoints") => (ENDPOINTS, print_endpoints),
        ("", "ConfigMap") => (CONFIG_MAP, print_config_map),
        ("", "Secret") => (SECRET, print_secret),
        ("", "ServiceAccount") => (SERVICE_ACCOUNT, print_service_account),
        ("" | "events.k8s.io", "Event") => (EVENT, print_event),
        ("", "PersistentVolume") => (PV, print_pv),
        ("", "PersistentVolumeClaim") => (PVC, print_pvc),
        ("", "LimitRange") => (LIMIT_RANGE, print_limit_range),
        ("", "ResourceQuota") => (RESOURCE_QUOTA, print_resource_quota),
        ("", "ComponentStatus") => (COMPONENT_STATUS, print_component_status),
        ("", "PodTemplate") => (POD_TEMPLATE, print_pod_template),
        _ => return None,
    };
    Some(found)
}

const NODE: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", 0, "The status of the node"),
    Col::new("Roles", "string", 0, "The roles of the node"),
    Col::age(),
    Col::new(
        "Version",
        "string",
        0,
        "Kubelet Version reported by the node.",
    ),
    Col::new(
        "Internal-IP",
        "string",
        1,
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    Col::new(
        "External-IP",
        "string",
        1,
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    Col::new(
        "OS-Image",
        "string",
        1,
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    Col::new(
        "Kernel-Version",
        "string",
        1,
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    Col::new(
        "Container-Runtime",
        "string",
        1,
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

fn print_node(node: &Value, clock: &Clock) -> Row {
    let ready = list(&node["status"]["conditions"])
        .iter()
        .rev()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True");
    let mut status: Vec<&str> = match ready {
        Some(true) => vec!["Ready"],
        Some(false) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    for (key, value) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = key
            .strip_prefix("node-role.kubernetes.io/")
            .filter(|r| !r.is_empty())
        {
            roles.push(role.to_string());
        } else if key == "kubernetes.io/role"
            && let Some(role) = value.as_str().filter(|r| !r.is_empty())
        {
            roles.push(role.to_string());
        }
    }
    roles.sort();
    roles.dedup();
    let roles = if roles.is_empty() {
        NONE.to_string()
    } else {
        roles.join(",")
    };
    let address = |kind: &str| {
        list(&node["status"]["addresses"])
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .unwrap_or(NONE)
            .to_string()
    };
    let info = &node["status"]["nodeInfo"];
    Row::new(vec![
        node["metadata"]["name"].clone(),
        json!(status.join(",")),
        json!(roles),
        json!(clock.age(node)),
        json!(text(&info["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(text_or(&info["osImage"], UNKNOWN)),
        json!(text_or(&info["kernelVersion"], UNKNOWN)),
        json!(text_or(&info["containerRuntimeVersion"], UNKNOWN)),
    ])
}

const NAMESPACE: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", 0, "The status of the namespace"),
    Col::age(),
];

fn print_namespace(ns: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        ns["metadata"]["name"].clone(),
        json!(text(&ns["status"]["phase"])),
        json!(clock.age(ns)),
    ])
}

const SERVICE: &[Col] = &[
    Col::name(),
    Col::new(
        "Type",
        "string",
        0,
        "type determines how the Service is exposed.",
    ),
    Col::new(
        "Cluster-IP",
        "string",
        0,
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    Col::new(
        "External-IP",
        "string",
        0,
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    Col::new(
        "Port(s)",
        "string",
        0,
        "The list of ports that are exposed by this service.",
    ),
    Col::age(),
    Col::new(
        "Selector",
        "string",
        1,
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

fn print_service(svc: &Value, clock: &Clock) -> Row {
    let spec = &svc["spec"];
    let cluster_ip = list(&spec["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or(NONE)
        .to_string();
    let external: Vec<String> = list(&spec["externalIPs"]).iter().map(text).collect();
    let lb: Vec<String> = list(&svc["status"]["loadBalancer"]["ingress"])
        .iter()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or_else(|| i["hostname"].as_str())
        })
        .map(str::to_string)
        .collect();
    let svc_type = text(&spec["type"]);
    let external_ip = match svc_type.as_str() {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => NONE.into(),
        "LoadBalancer" if !external.is_empty() => lb
            .iter()
            .chain(&external)
            .cloned()
            .collect::<Vec<_>>()
            .join(","),
        "LoadBalancer" if !lb.is_empty() => lb.join(","),
        "LoadBalancer" => "<pending>".into(),
        "ExternalName" => text(&spec["externalName"]),
        _ => UNKNOWN.into(),
    };
    let ports: Vec<String> = list(&spec["ports"])
        .iter()
        .map(|p| {
            let protocol = text(&p["protocol"]);
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node_port) => {
                    format!("{}:{node_port}/{protocol}", p["port"].as_i64().unwrap_or(0))
                }
                None => format!("{}/{protocol}", p["port"].as_i64().unwrap_or(0)),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        NONE.to_string()
    } else {
        ports.join(",")
    };
    Row::new(vec![
        svc["metadata"]["name"].clone(),
        json!(svc_type),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        json!(clock.age(svc)),
        json!(format_labels(&spec["selector"])),
    ])
}

const ENDPOINTS: &[Col] = &[
    Col::name(),
    Col::new(
        "Endpoints",
        "string",
        0,
        "The set of all endpoints is the union of all subsets.",
    ),
    Col::age(),
];

fn print_endpoints(ep: &Value, clock: &Clock) -> Row {
    let subsets = list(&ep["subsets"]);
    let cell = if subsets.is_empty() {
        NONE.to_string()
    } else {
        let mut all = Vec::new();
        for subset in subsets {
            let addresses = list(&subset["addresses"]);
            let ports = list(&subset["ports"]);
            if ports.is_empty() {
                all.extend(addresses.iter().map(|a| text(&a["ip"])));
                continue;
            }
            for port in ports {
                for address in addresses {
                    all.push(join_host_port(
                        &text(&address["ip"]),
                        port["port"].as_i64().unwrap_or(0),
                    ));
                }
            }
        }
        with_more(&all, all.len(), 3)
    };
    Row::new(vec![
        ep["metadata"]["name"].clone(),
        json!(cell),
        json!(clock.age(ep)),
    ])
}

/// `net.JoinHostPort`: brackets around IPv6 addresses.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

const CONFIG_MAP: &[Col] = &[
    Col::name(),
    Col::new("Data", "string", 0, "Data contains the configuration data."),
    Col::age(),
];

fn print_config_map(cm: &Value, clock: &Clock) -> Row {
    let count = map_len(&cm["data"]) + map_len(&cm["binaryData"]);
    Row::new(vec![
        cm["metadata"]["name"].clone(),
        json!(count),
        json!(clock.age(cm)),
    ])
}

const SECRET: &[Col] = &[
    Col::name(),
    Col::new(
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    Col::new("Data", "string", 0, "Data contains the secret data."),
    Col::age(),
];

fn print_secret(secret: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        secret["metadata"]["name"].clone(),
        json!(text(&secret["type"])),
        json!(map_len(&secret["data"])),
        json!(clock.age(secret)),
    ])
}

const SERVICE_ACCOUNT: &[Col] = &[
    Col::name(),
    Col::new(
        "Secrets",
        "string",
        0,
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    Col::age(),
];

fn print_service_account(sa: &Value, clock: &Clock) -> Row {
    Row::new(vec![
        sa["metadata"]["name"].clone(),
        json!(list(&sa["secrets"]).len()),
        json!(clock.age(sa)),
    ])
}

const EVENT: &[Col] = &[
    Col::new(
        "Last Seen",
        "string",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Col::new(
        "Type",
        "string",
        0,
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    Col::new(
        "Reason",
        "string",
        0,
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    Col::new(
        "Object",
        "string",
        0,
        "The object that this event is about.",
    ),
    Col::new(
        "Subobject",
        "string",
        1,
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
    ),
    Col::new(
        "Source",
        "string",
        1,
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    Col::new(
        "Message",
        "string",
        0,
        "A human-readable description of the status of this operation.",
    ),
    Col::new(
        "First Seen",
        "string",
        1,
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    Col::new(
        "Count",
        "string",
        1,
        "The number of times this event has occurred.",
    ),
    Col {
        format: "name",
        ..Col::new("Name", "string", 1, super::NAME_DOC)
    },
];

/// Prints core/v1 and events.k8s.io/v1 events alike (the latter renames fields).
fn print_event(ev: &Value, clock: &Clock) -> Row {
    let pick = |core: &str, v1: &str| {
        if ev.get(core).is_some() {
            ev[core].clone()
        } else {
            ev[v1].clone()
        }
    };
    let first_ts = pick("firstTimestamp", "deprecatedFirstTimestamp");
    let last_ts = pick("lastTimestamp", "deprecatedLastTimestamp");
    let first = if first_ts.as_str().is_some_and(|s| !s.is_empty()) {
        clock.since(&first_ts)
    } else {
        clock.since(&ev["eventTime"])
    };
    let mut last = if last_ts.as_str().is_some_and(|s| !s.is_empty()) {
        clock.since(&last_ts)
    } else {
        first.clone()
    };
    let mut count = pick("count", "deprecatedCount").as_i64().unwrap_or(0);
    if ev["series"].is_object() {
        last = clock.since(&ev["series"]["lastObservedTime"]);
        count = ev["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = pick("involvedObject", "regarding");
    let kind = text(&involved["kind"]).to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let source = pick("source", "deprecatedSource");
    let first_non_empty = |a: &Value, b: &Value| text_or(a, b.as_str().unwrap_or_default());
    let component = first_non_empty(&source["component"], &ev["reportingController"]);
    let component = if component.is_empty() {
        text(&ev["reportingComponent"])
    } else {
        component
    };
    let instance = first_non_empty(&source["host"], &ev["reportingInstance"]);
    let source_cell = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    let message = pick("message", "note");
    Row::new(vec![
        json!(last),
        json!(text(&ev["type"])),
        json!(text(&ev["reason"])),
        json!(target),
        json!(text(&involved["fieldPath"])),
        json!(source_cell),
        json!(text(&message).trim()),
        json!(first),
        json!(count),
        ev["metadata"]["name"].clone(),
    ])
}

const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn storage_class(obj: &Value) -> String {
    match obj["metadata"]["annotations"][STORAGE_CLASS_ANNOTATION].as_str() {
        Some(class) => class.to_string(),
        None => text(&obj["spec"]["storageClassName"]),
    }
}

const PV: &[Col] = &[
    Col::name(),
    Col::new(
        "Capacity",
        "string",
        0,
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    Col::new(
        "Access Modes",
        "string",
        0,
        "accessModes contains all ways the volume can be mounted.",
    ),
    Col::new(
        "Reclaim Policy",
        "string",
        0,
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    Col::new(
        "Status",
        "string",
        0,
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    Col::new(
        "Claim",
        "string",
        0,
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    Col::new("StorageClass", "string", 0, "StorageClass of the pv"),
    Col::new(
        "VolumeAttributesClass",
        "string",
        0,
        "VolumeAttributesClass of the pv",
    ),
    Col::new(
        "Reason",
        "string",
        0,
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    Col::age(),
    Col::new(
        "VolumeMode",
        "string",
        1,
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

fn print_pv(pv: &Value, clock: &Clock) -> Row {
    let spec = &pv["spec"];
    let claim = if spec["claimRef"].is_object() {
        format!(
            "{}/{}",
            text(&spec["claimRef"]["namespace"]),
            text(&spec["claimRef"]["name"])
        )
    } else {
        String::new()
    };
    let phase = if pv["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".into()
    } else {
        text(&pv["status"]["phase"])
    };
    Row::new(vec![
        pv["metadata"]["name"].clone(),
        json!(quantity(&spec["capacity"]["storage"])),
        json!(access_modes(&spec["accessModes"])),
        json!(text(&spec["persistentVolumeReclaimPolicy"])),
        json!(phase),
        json!(claim),
        json!(storage_class(pv)),
        json!(text_or(&spec["volumeAttributesClassName"], "<unset>")),
        json!(text(&pv["status"]["reason"])),
        json!(clock.age(pv)),
        json!(text_or(&spec["volumeMode"], "<unset>")),
    ])
}

const PVC: &[Col] = &[
    Col::name(),
    Col::new(
        "Status",
        "string",
        0,
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    Col::new(
        "Volume",
        "string",
        0,
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    Col::new(
        "Capacity",
        "string",
        0,
        "capacity represents the actual resources of the underlying volume.",
    ),
    Col::new(
        "Access Modes",
        "string",
        0,
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    Col::new("StorageClass", "string", 0, "StorageClass of the pvc"),
    Col::new(
        "VolumeAttributesClass",
        "string",
        0,
        "VolumeAttributesClass of the pvc",
    ),
    Col::age(),
    Col::new(
        "VolumeMode",
        "string",
        1,
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

fn print_pvc(pvc: &Value, clock: &Clock) -> Row {
    let spec = &pvc["spec"];
    let phase = if pvc["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".into()
    } else {
        text(&pvc["status"]["phase"])
    };
    let volume = text(&spec["volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(&pvc["status"]["capacity"]["storage"]),
            access_modes(&pvc["status"]["accessModes"]),
        )
    };
    Row::new(vec![
        pvc["metadata"]["name"].clone(),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(pvc)),
        json!(text_or(&spec["volumeAttributesClassName"], "<unset>")),
        json!(clock.age(pvc)),
        json!(text_or(&spec["volumeMode"], "<unset>")),
    ])
}

const LIMIT_RANGE: &[Col] = &[Col::name(), Col::created_at()];

fn print_limit_range(lr: &Value, _: &Clock) -> Row {
    Row::new(vec![lr["metadata"]["name"].clone(), created_at(lr)])
}

const RESOURCE_QUOTA: &[Col] = &[
    Col::name(),
    Col::age(),
    Col::new(
        "Request",
        "string",
        0,
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Col::new(
        "Limit",
        "string",
        0,
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

fn print_resource_quota(quota: &Value, clock: &Clock) -> Row {
    let hard = quota["status"]["hard"].as_object();
    let mut names: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for name in names {
        let used = quantity(&quota["status"]["used"][name.as_str()]);
        let max = quantity(&quota["status"]["hard"][name.as_str()]);
        let entry = format!("{name}: {used}/{max}");
        if name.split('.').next() == Some("limits") && name.contains('.') {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    Row::new(vec![
        quota["metadata"]["name"].clone(),
        json!(clock.age(quota)),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
    ])
}

const COMPONENT_STATUS: &[Col] = &[
    Col::name(),
    Col::new("Status", "string", 0, "Status of the component conditions"),
    Col::new(
        "Message",
        "string",
        0,
        "Message of the component conditions",
    ),
    Col::new("Error", "string", 0, "Error of the component conditions"),
];

fn print_component_status(cs: &Value, _: &Clock) -> Row {
    let (mut status, mut message, mut error) = (UNKNOWN.to_string(), String::new(), String::new());
    if let Some(c) = list(&cs["conditions"])
        .iter()
        .find(|c| c["type"] == "Healthy")
    {
        status = if c["status"] == "True" {
            "Healthy".into()
        } else {
            "Unhealthy".into()
        };
        message = text(&c["message"]);
        error = text(&c["error"]);
    }
    Row::new(vec![
        cs["metadata"]["name"].clone(),
        json!(status),
        json!(message),
        json!(error),
    ])
}

const POD_TEMPLATE: &[Col] = &[
    Col::name(),
    Col::new(
        "Containers",
        "string",
        0,
        "Names of each container in the template.",
    ),
    Col::new(
        "Images",
        "string",
        0,
        "Images referenced by each container in the template.",
    ),
    Col::new(
        "Pod Labels",
        "string",
        0,
        "The labels for the pod template.",
    ),
];

fn print_pod_template(pt: &Value, _: &Clock) -> Row {
    let (names, images) = container_cells(&pt["template"]["spec"]);
    Row::new(vec![
        pt["metadata"]["name"].clone(),
        json!(names),
        json!(images),
        json!(format_labels(&pt["template"]["metadata"]["labels"])),
    ])
}
