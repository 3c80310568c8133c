//! What the scheduler knows about one node: the Node object and what the pods
//! already bound (or assumed bound) to it use.

use crate::resources::{Resources, node_allocatable, pod_requests};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use std::collections::HashMap;
use std::sync::Arc;

/// A host port in use: protocol, host IP (empty for all addresses) and port.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The host IP the port is bound on; `0.0.0.0` or empty means every address.
    pub ip: String,
    /// The port number.
    pub port: i32,
}

/// What one pod takes from its node.
#[derive(Clone, Debug, Default)]
pub struct PodUsage {
    /// Requests as filtering counts them.
    pub requests: Resources,
    /// Requests with defaults for missing CPU/memory, as scoring counts them.
    pub non_zero: Resources,
    /// Host ports the pod binds.
    pub ports: Vec<HostPort>,
}

impl PodUsage {
    /// The usage of `pod`.
    pub fn of(pod: &Pod) -> Self {
        let (requests, non_zero) = pod_requests(pod);
        Self {
            requests,
            non_zero,
            ports: host_ports(pod),
        }
    }
}

/// The host ports `pod`'s containers ask for.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                ip: p.host_ip.clone().unwrap_or_default(),
                port,
            })
        })
        .collect()
}

/// One node and the pods on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The Node object.
    pub node: Arc<Node>,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// Taints with the implicit ones for a node that is not Ready.
    pub taints: Vec<Taint>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' requests with scoring defaults.
    pub non_zero_requested: Resources,
    /// Pods on the node, by `namespace/name`.
    pub pods: HashMap<String, PodUsage>,
}

impl NodeInfo {
    /// A node with no pods yet.
    pub fn new(node: Arc<Node>) -> Self {
        let allocatable = node_allocatable(&node);
        let taints = effective_taints(&node);
        Self {
            node,
            allocatable,
            taints,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: HashMap::new(),
        }
    }

    /// Replaces the Node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        self.taints = effective_taints(&node);
        self.node = node;
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// Counts `usage` of the pod `key` on this node (replacing an earlier count).
    pub fn add_pod(&mut self, key: &str, usage: PodUsage) {
        self.remove_pod(key);
        self.requested.add(&usage.requests);
        self.non_zero_requested.add(&usage.non_zero);
        self.pods.insert(key.to_string(), usage);
    }

    /// Stops counting the pod `key`.
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(old) = self.pods.remove(key) {
            self.requested.sub(&old.requests);
            self.non_zero_requested.sub(&old.non_zero);
        }
    }

    /// Whether a host port is taken, by the same rule as kube-scheduler: the same
    /// protocol and port conflict when either side listens on every address.
    pub fn port_conflicts(&self, wanted: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.pods.values().flat_map(|u| &u.ports).any(|used| {
            used.protocol == wanted.protocol
                && used.port == wanted.port
                && (used.ip == wanted.ip || wildcard(&used.ip) || wildcard(&wanted.ip))
        })
    }
}

/// The taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint for a node whose Ready condition is Unknown or missing.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The node's taints, plus the NoSchedule taint Kubernetes' node lifecycle
/// controller would add for a node that is not Ready: kube-scheduler itself
/// keeps no readiness check and relies on that taint, so adding it here gives
/// the same placements and the same `FailedScheduling` wording.
fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let implied = match ready {
        Some("True") => None,
        Some("False") => Some(NOT_READY_TAINT),
        _ => Some(UNREACHABLE_TAINT),
    };
    if let Some(key) = implied
        && !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
    {
        taints.push(Taint {
            key: key.to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        });
    }
    taints
}
