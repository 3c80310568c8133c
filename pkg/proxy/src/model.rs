//! What the proxy programs, distilled from Services and EndpointSlices: one
//! [`ServicePort`] per port of each Service with its addresses (ClusterIPs,
//! NodePort, external and load-balancer IPs) and the endpoints that may take
//! its traffic, chosen as kube-proxy chooses them: ready endpoints, else
//! serving-and-terminating ones; only this node's for the `Local` traffic
//! policies.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::Ipv4Addr;

/// A transport protocol nftables matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Kubernetes' name (`TCP`) to ours; anything else is TCP, the default.
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("UDP") => Self::Udp,
            Some("SCTP") => Self::Sctp,
            _ => Self::Tcp,
        }
    }

    /// nftables' name.
    pub fn nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }
}

/// One backend address of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The target port.
    pub port: u16,
}

/// One port of one Service, with what it forwards to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServicePort {
    /// `namespace/name:port-name` (`namespace/name` for an unnamed port).
    pub id: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The service port.
    pub port: u16,
    /// ClusterIPs (IPv4 ones).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// The NodePort, if any.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress` IPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// Endpoints for traffic to the ClusterIPs.
    pub cluster_endpoints: Vec<Endpoint>,
    /// Endpoints for traffic to the NodePort and external IPs.
    pub external_endpoints: Vec<Endpoint>,
    /// `externalTrafficPolicy: Local`: external traffic keeps its source.
    pub external_local: bool,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_seconds: Option<u32>,
}

/// One endpoint as a slice reports it.
#[derive(Clone, Debug)]
struct Candidate {
    endpoint: Endpoint,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
}

/// The service ports of `service` given the slices that belong to it, for the
/// node `node_name`. Services without a ClusterIP (headless) or of type
/// ExternalName have none.
pub fn service_ports(
    service: &Service,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Vec<ServicePort> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ips: Vec<Ipv4Addr> = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        external_ips.extend(
            service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    external_ips.sort();
    external_ips.dedup();
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .map_or(10_800, |t| t.clamp(1, 86_400) as u32)
    });
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let protocol = Protocol::parse(port.protocol.as_deref());
        let port_name = port.name.clone().unwrap_or_default();
        let candidates = candidates(slices, &port_name, protocol, node_name);
        let id = if port_name.is_empty() {
            format!("{namespace}/{name}")
        } else {
            format!("{namespace}/{name}:{port_name}")
        };
        out.push(ServicePort {
            id,
            protocol,
            port: port.port.clamp(0, 65535) as u16,
            cluster_ips: cluster_ips.clone(),
            node_port: port
                .node_port
                .filter(|p| (1..=65535).contains(p))
                .map(|p| p as u16),
            external_ips: external_ips.clone(),
            cluster_endpoints: choose(&candidates, internal_local),
            external_endpoints: choose(&candidates, external_local),
            external_local,
            affinity_seconds,
        });
    }
    out
}

fn candidates(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && Protocol::parse(p.protocol.as_deref()) == protocol
        }) else {
            continue;
        };
        let Some(number) = port.port.filter(|p| (1..=65535).contains(p)) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            // Kubernetes: a nil `ready` means ready; `serving` defaults to `ready`.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local = endpoint.node_name.as_deref() == Some(node_name);
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse() {
                    out.push(Candidate {
                        endpoint: Endpoint {
                            ip,
                            port: number as u16,
                        },
                        ready,
                        serving,
                        terminating,
                        local,
                    });
                }
            }
        }
    }
    out
}

/// Ready endpoints, else serving-and-terminating ones (so connections drain
/// rather than fail while a rollout replaces every pod).
fn choose(candidates: &[Candidate], local_only: bool) -> Vec<Endpoint> {
    let eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !local_only || c.local)
        .collect();
    let ready: Vec<Endpoint> = eligible
        .iter()
        .filter(|c| c.ready && !c.terminating)
        .map(|c| c.endpoint.clone())
        .collect();
    let mut chosen = if ready.is_empty() {
        eligible
            .iter()
            .filter(|c| c.serving && c.terminating)
            .map(|c| c.endpoint.clone())
            .collect()
    } else {
        ready
    };
    chosen.sort();
    chosen.dedup();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn ready_endpoints_are_chosen_and_terminating_ones_are_the_fallback() {
        let svc = service(
            json!({"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        );
        let s = slice(json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
            {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        ]));
        let ports = service_ports(&svc, &[&s], "n");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].id, "default/web:http");
        assert_eq!(
            ports[0].cluster_endpoints,
            vec![Endpoint {
                ip: "10.42.0.5".parse().unwrap(),
                port: 8080
            }]
        );
        let s = slice(json!([
            {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.42.0.7"], "conditions": {"ready": false, "serving": false, "terminating": true}},
        ]));
        let ports = service_ports(&svc, &[&s], "n");
        assert_eq!(ports[0].cluster_endpoints.len(), 1);
        assert_eq!(
            ports[0].cluster_endpoints[0].ip,
            "10.42.0.6".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn local_policies_keep_only_this_nodes_endpoints() {
        let svc = service(json!({"clusterIP": "10.43.0.20", "type": "NodePort",
            "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
        let s = slice(json!([
            {"addresses": ["10.42.0.5"], "nodeName": "here"},
            {"addresses": ["10.42.1.5"], "nodeName": "there"},
        ]));
        let ports = service_ports(&svc, &[&s], "here");
        assert_eq!(ports[0].cluster_endpoints.len(), 2);
        assert_eq!(ports[0].external_endpoints.len(), 1);
        assert_eq!(ports[0].node_port, Some(30080));
        assert!(ports[0].external_local);
    }

    #[test]
    fn headless_and_external_name_services_are_not_proxied() {
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_ports(&headless, &[], "n").is_empty());
        let external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(service_ports(&external, &[], "n").is_empty());
    }

    #[test]
    fn client_ip_affinity_defaults_to_three_hours() {
        let svc = service(
            json!({"clusterIP": "10.43.0.20", "sessionAffinity": "ClientIP",
            "ports": [{"port": 80}]}),
        );
        assert_eq!(
            service_ports(&svc, &[], "n")[0].affinity_seconds,
            Some(10_800)
        );
    }
}
