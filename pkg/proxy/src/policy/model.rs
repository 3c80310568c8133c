//! What NetworkPolicies mean for this node, distilled from the policies, the
//! pods and the namespaces: for every local pod that some policy selects, its
//! allow lists per direction. Pure (no I/O), so every rule of the API's
//! semantics is unit-tested here:
//!
//! - `policyTypes` defaults to Ingress, plus Egress when egress rules exist;
//!   a direction a selecting policy names isolates the pod in it, even with
//!   no rules (that is a default deny);
//! - the allow lists of all policies selecting a pod add up (OR);
//! - a rule's peers are ORed; `from`/`to` missing or empty allows any peer;
//!   `ports` missing or empty allows any port;
//! - `namespaceSelector` and `podSelector` in one peer are ANDed; a
//!   `podSelector` alone looks in the policy's namespace;
//! - named ports resolve against the target pod's container ports (ingress)
//!   and the peer pods' (egress).
//!
//! Pods on the host network are neither targets nor peers (they have the
//! node's address, which is always allowed to reach pods).

use crate::model::Protocol;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kite_api::matching::selector_matches;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A traffic direction, seen from the selected pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic to the pod.
    Ingress,
    /// Traffic from the pod.
    Egress,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// The other end of allowed traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// Pods chosen by selectors. `id` names the peer in its policy (so the
    /// nftables set keeps its name while labels change its members).
    Pods {
        /// `namespace/policy/direction/rule/peer`.
        id: String,
        /// Their addresses.
        ips: BTreeSet<Ipv4Addr>,
    },
    /// An `ipBlock`.
    Block {
        /// The range.
        cidr: Ipv4Net,
        /// Parts of it that are not allowed.
        except: Vec<Ipv4Net>,
    },
}

/// Allowed destination ports of one protocol (`first..=last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The protocol.
    pub protocol: Protocol,
    /// First port.
    pub first: u16,
    /// Last port (equal to `first` for one port).
    pub last: u16,
}

impl PortRange {
    /// Every port of `protocol`.
    pub fn all(protocol: Protocol) -> Self {
        Self {
            protocol,
            first: 0,
            last: u16::MAX,
        }
    }
}

/// One allow rule as it applies to one pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Allowed peers; `None`: any address.
    pub peers: Option<Vec<Peer>>,
    /// Allowed ports; `None`: any port of any protocol.
    pub ports: Option<Vec<PortRange>>,
}

/// The policies' verdicts for one selected pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodRules {
    /// `namespace/name`.
    pub pod: String,
    /// `Some` when the pod is isolated for ingress: what may reach it.
    pub ingress: Option<Vec<Rule>>,
    /// `Some` when the pod is isolated for egress: what it may reach.
    pub egress: Option<Vec<Rule>>,
}

/// Everything to enforce on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Selected local pods by address.
    pub pods: BTreeMap<Ipv4Addr, PodRules>,
    /// What cannot be enforced: (policy `namespace/name`, what), for the
    /// log and a Warning event on the policy.
    pub warnings: BTreeSet<(String, String)>,
}

/// A pod as far as policies care.
struct PodInfo<'a> {
    namespace: &'a str,
    name: &'a str,
    labels: BTreeMap<String, String>,
    ip: Ipv4Addr,
    local: bool,
    /// Container ports: (name, protocol, number).
    ports: Vec<(&'a str, Protocol, u16)>,
}

impl<'a> PodInfo<'a> {
    /// `None` for pods without an address, on the host network or finished.
    fn of(pod: &'a Pod, node_name: &str) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        if spec.host_network == Some(true) {
            return None;
        }
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let ip = status.pod_ip.as_deref()?.parse().ok()?;
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let name = p.name.as_deref()?;
                let number = u16::try_from(p.container_port).ok()?;
                Some((name, Protocol::parse(p.protocol.as_deref()), number))
            })
            .collect();
        Some(Self {
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
            name: pod.metadata.name.as_deref().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            local: spec.node_name.as_deref() == Some(node_name),
            ports,
        })
    }

    fn port_named(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|(n, p, _)| *n == name && *p == protocol)
            .map(|(_, _, number)| *number)
    }
}

/// The policy types of `policy`, defaulted as the API defaults them.
pub fn policy_types(policy: &NetworkPolicy) -> (bool, bool) {
    let Some(spec) = policy.spec.as_ref() else {
        return (true, false);
    };
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// Everything the policies ask of the pods on `node_name`.
pub fn build(
    policies: &[Arc<NetworkPolicy>],
    pods: &[Arc<Pod>],
    namespaces: &[Arc<Namespace>],
    node_name: &str,
) -> Model {
    let mut namespace_labels: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for namespace in namespaces {
        let Some(name) = namespace.metadata.name.as_deref() else {
            continue;
        };
        let mut labels = namespace.metadata.labels.clone().unwrap_or_default();
        // The API server sets it; older objects may lack it.
        labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| name.to_string());
        namespace_labels.insert(name, labels);
    }
    let pods: Vec<PodInfo> = pods
        .iter()
        .filter_map(|p| PodInfo::of(p, node_name))
        .collect();
    let context = Context {
        pods: &pods,
        namespace_labels: &namespace_labels,
    };
    let mut sorted: Vec<&NetworkPolicy> = policies.iter().map(Arc::as_ref).collect();
    sorted.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    let mut model = Model::default();
    for policy in sorted {
        let Some(spec) = policy.spec.as_ref() else {
            continue;
        };
        let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
        let id = format!(
            "{namespace}/{}",
            policy.metadata.name.as_deref().unwrap_or_default()
        );
        let (ingress, egress) = policy_types(policy);
        let selected: Vec<&PodInfo> = pods
            .iter()
            .filter(|p| {
                p.local
                    && p.namespace == namespace
                    && spec
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, &p.labels))
            })
            .collect();
        for pod in selected {
            let entry = model.pods.entry(pod.ip).or_insert_with(|| PodRules {
                pod: format!("{}/{}", pod.namespace, pod.name),
                ..PodRules::default()
            });
            if ingress {
                let list = entry.ingress.get_or_insert_with(Vec::new);
                for (i, rule) in spec.ingress.iter().flatten().enumerate() {
                    let base = format!("{id}/{}/{i}", Direction::Ingress.name());
                    list.extend(context.rule(
                        &base,
                        namespace,
                        Direction::Ingress,
                        rule.from.as_deref(),
                        rule.ports.as_deref(),
                        pod,
                        &mut model.warnings,
                    ));
                }
            }
            if egress {
                let list = entry.egress.get_or_insert_with(Vec::new);
                for (i, rule) in spec.egress.iter().flatten().enumerate() {
                    let base = format!("{id}/{}/{i}", Direction::Egress.name());
                    list.extend(context.rule(
                        &base,
                        namespace,
                        Direction::Egress,
                        rule.to.as_deref(),
                        rule.ports.as_deref(),
                        pod,
                        &mut model.warnings,
                    ));
                }
            }
        }
    }
    model
}

/// What rule evaluation looks things up in.
struct Context<'a> {
    pods: &'a [PodInfo<'a>],
    namespace_labels: &'a BTreeMap<&'a str, BTreeMap<String, String>>,
}

/// A rule's peers, each with the pods behind it (`None` for ipBlocks), kept
/// for resolving named egress ports.
type ResolvedPeers<'p> = Vec<(Peer, Option<Vec<&'p PodInfo<'p>>>)>;

/// A port entry of a rule before named ports are resolved.
enum PortSpec<'a> {
    Numbered(PortRange),
    Named(&'a str, Protocol),
}

impl Context<'_> {
    /// The pods one selector peer picks.
    fn selected_pods(&self, peer: &NetworkPolicyPeer, namespace: &str) -> Vec<&PodInfo<'_>> {
        self.pods
            .iter()
            .filter(|p| {
                let namespace_ok = match &peer.namespace_selector {
                    Some(selector) => self
                        .namespace_labels
                        .get(p.namespace)
                        .is_some_and(|labels| selector_matches(selector, labels)),
                    None => p.namespace == namespace,
                };
                namespace_ok
                    && peer
                        .pod_selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, &p.labels))
            })
            .collect()
    }

    /// One rule of a policy as it applies to `target`: none, one or (for
    /// egress named ports, one per resolved number) several rules.
    #[allow(clippy::too_many_arguments)]
    fn rule(
        &self,
        base: &str,
        namespace: &str,
        direction: Direction,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
        target: &PodInfo,
        warnings: &mut BTreeSet<(String, String)>,
    ) -> Vec<Rule> {
        let policy = base.rsplitn(3, '/').nth(2).unwrap_or(base);
        // Peers: `None` is anyone; for named egress ports the pods behind
        // each peer are kept too.
        let mut resolved: Option<ResolvedPeers> = None;
        if let Some(list) = peers.filter(|l| !l.is_empty()) {
            let mut out = Vec::new();
            for (j, peer) in list.iter().enumerate() {
                if let Some(block) = &peer.ip_block {
                    match parse_block(&block.cidr, block.except.as_deref().unwrap_or_default()) {
                        Ok(peer) => out.push((peer, None)),
                        Err(text) => {
                            warnings.insert((
                                policy.to_string(),
                                format!("ipBlock {text} is not enforced (IPv4 only)"),
                            ));
                        }
                    }
                    continue;
                }
                let pods = self.selected_pods(peer, namespace);
                out.push((
                    Peer::Pods {
                        id: format!("{base}/{j}"),
                        ips: pods.iter().map(|p| p.ip).collect(),
                    },
                    Some(pods),
                ));
            }
            if out.is_empty() {
                // Every peer was unusable: the rule allows nothing.
                return Vec::new();
            }
            resolved = Some(out);
        }

        let specs: Option<Vec<PortSpec>> = ports.filter(|l| !l.is_empty()).map(|list| {
            list.iter()
                .map(|p| {
                    let protocol = Protocol::parse(p.protocol.as_deref());
                    match &p.port {
                        None => PortSpec::Numbered(PortRange::all(protocol)),
                        Some(IntOrString::Int(n)) => {
                            let first = u16::try_from(*n).unwrap_or(0);
                            let last = p
                                .end_port
                                .and_then(|e| u16::try_from(e).ok())
                                .filter(|e| *e >= first)
                                .unwrap_or(first);
                            PortSpec::Numbered(PortRange {
                                protocol,
                                first,
                                last,
                            })
                        }
                        Some(IntOrString::String(name)) => match name.parse::<u16>() {
                            Ok(n) => PortSpec::Numbered(PortRange {
                                protocol,
                                first: n,
                                last: n,
                            }),
                            Err(_) => PortSpec::Named(name, protocol),
                        },
                    }
                })
                .collect()
        });
        let peers_only = |r: &Option<ResolvedPeers>| {
            r.as_ref()
                .map(|l| l.iter().map(|(peer, _)| peer.clone()).collect::<Vec<_>>())
        };
        let Some(specs) = specs else {
            return vec![Rule {
                peers: peers_only(&resolved),
                ports: None,
            }];
        };

        let mut numbered: Vec<PortRange> = Vec::new();
        let mut out = Vec::new();
        for spec in &specs {
            match spec {
                PortSpec::Numbered(range) => numbered.push(*range),
                PortSpec::Named(name, protocol) if direction == Direction::Ingress => {
                    if let Some(n) = target.port_named(name, *protocol) {
                        numbered.push(PortRange {
                            protocol: *protocol,
                            first: n,
                            last: n,
                        });
                    }
                }
                PortSpec::Named(name, protocol) => {
                    // Egress: the number is the peer pod's; group peer pods by it.
                    let candidates: Vec<(String, Vec<&PodInfo>)> = match &resolved {
                        None => vec![(format!("{base}/any"), self.pods.iter().collect())],
                        Some(list) => list
                            .iter()
                            .filter_map(|(peer, pods)| match (peer, pods) {
                                (Peer::Pods { id, .. }, Some(pods)) => {
                                    Some((id.clone(), pods.clone()))
                                }
                                _ => {
                                    warnings.insert((
                                        policy.to_string(),
                                        format!("named port {name} cannot apply to an ipBlock"),
                                    ));
                                    None
                                }
                            })
                            .collect(),
                    };
                    for (id, pods) in candidates {
                        let mut by_number: BTreeMap<u16, BTreeSet<Ipv4Addr>> = BTreeMap::new();
                        for pod in pods {
                            if let Some(n) = pod.port_named(name, *protocol) {
                                by_number.entry(n).or_default().insert(pod.ip);
                            }
                        }
                        for (n, ips) in by_number {
                            out.push(Rule {
                                peers: Some(vec![Peer::Pods {
                                    id: format!("{id}/{name}/{}/{n}", protocol.nft()),
                                    ips,
                                }]),
                                ports: Some(vec![PortRange {
                                    protocol: *protocol,
                                    first: n,
                                    last: n,
                                }]),
                            });
                        }
                    }
                }
            }
        }
        if !numbered.is_empty() {
            out.insert(
                0,
                Rule {
                    peers: peers_only(&resolved),
                    ports: Some(numbered),
                },
            );
        }
        out
    }
}

/// An `ipBlock` as a peer; IPv6 ones are refused (the pod network is IPv4).
fn parse_block(cidr: &str, except: &[String]) -> Result<Peer, String> {
    let parse = |text: &str| text.parse::<Ipv4Net>().map(|n| n.trunc());
    let cidr = parse(cidr).map_err(|_| cidr.to_string())?;
    let except = except
        .iter()
        .filter_map(|e| parse(e).ok())
        .filter(|e| cidr.contains(e))
        .collect();
    Ok(Peer::Block { cidr, except })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(namespace: &str, name: &str, ip: &str, labels: Value) -> Arc<Pod> {
        pod_on(namespace, name, ip, labels, "here", json!([]))
    }

    fn pod_on(
        namespace: &str,
        name: &str,
        ip: &str,
        labels: Value,
        node: &str,
        ports: Value,
    ) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip},
            }))
            .unwrap(),
        )
    }

    fn namespace(name: &str, labels: Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn policy(namespace: &str, name: &str, spec: Value) -> Arc<NetworkPolicy> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": namespace}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn ips(rule: &Rule) -> Vec<BTreeSet<Ipv4Addr>> {
        rule.peers
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Peer::Pods { ips, .. } => Some(ips.clone()),
                Peer::Block { .. } => None,
            })
            .collect()
    }

    fn set(list: &[&str]) -> BTreeSet<Ipv4Addr> {
        list.iter().map(|s| ip(s)).collect()
    }

    fn world() -> (Vec<Arc<Pod>>, Vec<Arc<Namespace>>) {
        (
            vec![
                pod("default", "web", "10.42.0.2", json!({"app": "web"})),
                pod("default", "client", "10.42.0.3", json!({"role": "client"})),
                pod("default", "other", "10.42.0.4", json!({})),
                pod("prod", "client", "10.42.0.5", json!({"role": "client"})),
                pod("prod", "db", "10.42.0.6", json!({"app": "db"})),
            ],
            vec![
                namespace("default", json!({})),
                namespace("prod", json!({"env": "prod"})),
            ],
        )
    }

    #[test]
    fn policy_types_default_to_ingress_plus_egress_when_it_has_rules() {
        let p = policy("default", "p", json!({"podSelector": {}}));
        assert_eq!(policy_types(&p), (true, false));
        let p = policy("default", "p", json!({"podSelector": {}, "egress": [{}]}));
        assert_eq!(policy_types(&p), (true, true));
        let p = policy("default", "p", json!({"podSelector": {}, "egress": []}));
        assert_eq!(policy_types(&p), (true, false));
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        );
        assert_eq!(policy_types(&p), (false, true));
    }

    #[test]
    fn an_empty_pod_selector_selects_every_pod_of_the_namespace_and_denies() {
        let (pods, namespaces) = world();
        let p = policy("default", "deny", json!({"podSelector": {}}));
        let model = build(&[p], &pods, &namespaces, "here");
        let selected: Vec<_> = model.pods.keys().copied().collect();
        assert_eq!(
            selected,
            vec![ip("10.42.0.2"), ip("10.42.0.3"), ip("10.42.0.4")]
        );
        for rules in model.pods.values() {
            assert_eq!(rules.ingress, Some(vec![]));
            assert_eq!(rules.egress, None);
        }
    }

    #[test]
    fn unselected_pods_and_other_nodes_pods_are_not_in_the_model() {
        let (mut pods, namespaces) = world();
        pods.push(pod_on(
            "default",
            "far",
            "10.42.1.2",
            json!({"app": "web"}),
            "there",
            json!([]),
        ));
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}}}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        assert_eq!(
            model.pods.keys().copied().collect::<Vec<_>>(),
            vec![ip("10.42.0.2")]
        );
        assert_eq!(model.pods[&ip("10.42.0.2")].pod, "default/web");
    }

    #[test]
    fn host_network_and_finished_pods_are_ignored() {
        let (mut pods, namespaces) = world();
        pods.push(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "host", "namespace": "default"},
                "spec": {"nodeName": "here", "hostNetwork": true, "containers": []},
                "status": {"phase": "Running", "podIP": "192.0.2.10"},
            }))
            .unwrap(),
        ));
        pods.push(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "done", "namespace": "default"},
                "spec": {"nodeName": "here", "containers": []},
                "status": {"phase": "Succeeded", "podIP": "10.42.0.9"},
            }))
            .unwrap(),
        ));
        let p = policy("default", "deny", json!({"podSelector": {}}));
        let model = build(&[p], &pods, &namespaces, "here");
        assert!(!model.pods.contains_key(&ip("192.0.2.10")));
        assert!(!model.pods.contains_key(&ip("10.42.0.9")));
    }

    #[test]
    fn missing_or_empty_from_allows_everyone_and_a_rule_may_have_only_ports() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{}, {"from": []}, {"ports": [{"port": 80}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0],
            Rule {
                peers: None,
                ports: None
            }
        );
        assert_eq!(rules[1], rules[0]);
        assert_eq!(rules[2].peers, None);
        assert_eq!(
            rules[2].ports,
            Some(vec![PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80
            }])
        );
    }

    #[test]
    fn pod_selector_peers_look_in_the_policys_namespace() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(ips(&rules[0]), vec![set(&["10.42.0.3"])]);
        match &rules[0].peers.as_ref().unwrap()[0] {
            Peer::Pods { id, .. } => assert_eq!(id, "default/p/ingress/0/0"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespace_and_pod_selector_in_one_peer_and_but_separate_peers_or() {
        let (pods, namespaces) = world();
        let and = policy(
            "default",
            "and",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                          "podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        );
        let model = build(&[and], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(ips(&rules[0]), vec![set(&["10.42.0.5"])]);

        let or = policy(
            "default",
            "or",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}},
                                         {"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        );
        let model = build(&[or], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(
            ips(&rules[0]),
            vec![set(&["10.42.0.5", "10.42.0.6"]), set(&["10.42.0.3"])]
        );
    }

    #[test]
    fn an_empty_namespace_selector_means_every_namespace() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"namespaceSelector": {},
                                          "podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(ips(&rules[0]), vec![set(&["10.42.0.3", "10.42.0.5"])]);
    }

    #[test]
    fn namespaces_match_by_their_name_label() {
        let (pods, _) = world();
        let namespaces = vec![
            namespace("default", json!({})),
            namespace("prod", json!({})),
        ];
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"namespaceSelector":
                       {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(ips(&rules[0]), vec![set(&["10.42.0.5", "10.42.0.6"])]);
    }

    #[test]
    fn ip_blocks_keep_their_exceptions_and_ipv6_is_warned_about() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"ipBlock": {"cidr": "10.42.0.0/16", "except": ["10.42.0.3/32"]}},
                                         {"ipBlock": {"cidr": "fd00::/64"}}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(
            rules[0].peers,
            Some(vec![Peer::Block {
                cidr: "10.42.0.0/16".parse().unwrap(),
                except: vec!["10.42.0.3/32".parse().unwrap()],
            }])
        );
        assert_eq!(model.warnings.len(), 1, "{:?}", model.warnings);
    }

    #[test]
    fn ports_with_end_port_and_protocols() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"ports": [{"port": 8000, "endPort": 8100},
                                          {"protocol": "UDP", "port": 53},
                                          {"protocol": "SCTP"}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.2")].ingress.clone().unwrap();
        assert_eq!(
            rules[0].ports,
            Some(vec![
                PortRange {
                    protocol: Protocol::Tcp,
                    first: 8000,
                    last: 8100
                },
                PortRange {
                    protocol: Protocol::Udp,
                    first: 53,
                    last: 53
                },
                PortRange::all(Protocol::Sctp),
            ])
        );
    }

    #[test]
    fn named_ports_resolve_against_the_target_for_ingress() {
        let (_, namespaces) = world();
        let pods = vec![
            pod_on(
                "default",
                "web",
                "10.42.0.2",
                json!({"app": "web"}),
                "here",
                json!([{"name": "http", "containerPort": 8080}]),
            ),
            pod_on(
                "default",
                "web2",
                "10.42.0.7",
                json!({"app": "web"}),
                "here",
                json!([{"name": "http", "containerPort": 9090}]),
            ),
            pod("default", "plain", "10.42.0.8", json!({"app": "web"})),
        ];
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"ports": [{"port": "http"}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let port_of = |a: &str| model.pods[&ip(a)].ingress.clone().unwrap();
        assert_eq!(
            port_of("10.42.0.2")[0].ports.as_ref().unwrap()[0].first,
            8080
        );
        assert_eq!(
            port_of("10.42.0.7")[0].ports.as_ref().unwrap()[0].first,
            9090
        );
        // No such port: the rule allows nothing, the pod stays isolated.
        assert_eq!(port_of("10.42.0.8"), vec![]);
    }

    #[test]
    fn named_ports_resolve_against_the_peers_for_egress() {
        let (_, namespaces) = world();
        let pods = vec![
            pod("default", "client", "10.42.0.3", json!({"role": "client"})),
            pod_on(
                "default",
                "db1",
                "10.42.0.6",
                json!({"app": "db"}),
                "here",
                json!([{"name": "sql", "containerPort": 5432}]),
            ),
            pod_on(
                "default",
                "db2",
                "10.42.0.7",
                json!({"app": "db"}),
                "there",
                json!([{"name": "sql", "containerPort": 6432}]),
            ),
        ];
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"role": "client"}},
                   "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                               "ports": [{"port": "sql"}]}]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = model.pods[&ip("10.42.0.3")].egress.clone().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(ips(&rules[0]), vec![set(&["10.42.0.6"])]);
        assert_eq!(rules[0].ports.as_ref().unwrap()[0].first, 5432);
        assert_eq!(ips(&rules[1]), vec![set(&["10.42.0.7"])]);
        assert_eq!(rules[1].ports.as_ref().unwrap()[0].first, 6432);
        // No policyTypes: Ingress too, with no rules (deny).
        assert_eq!(model.pods[&ip("10.42.0.3")].ingress, Some(vec![]));
    }

    #[test]
    fn policies_selecting_one_pod_add_up() {
        let (pods, namespaces) = world();
        let deny = policy("default", "a-deny", json!({"podSelector": {}}));
        let allow = policy(
            "default",
            "b-allow",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
        );
        let model = build(&[allow, deny], &pods, &namespaces, "here");
        assert_eq!(
            model.pods[&ip("10.42.0.2")].ingress.as_ref().unwrap().len(),
            1
        );
        assert_eq!(
            model.pods[&ip("10.42.0.4")].ingress.as_ref().unwrap().len(),
            0
        );
    }

    #[test]
    fn egress_deny_isolates_only_egress() {
        let (pods, namespaces) = world();
        let p = policy(
            "default",
            "p",
            json!({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]}),
        );
        let model = build(&[p], &pods, &namespaces, "here");
        let rules = &model.pods[&ip("10.42.0.3")];
        assert_eq!(rules.ingress, None);
        assert_eq!(rules.egress, Some(vec![]));
    }
}
