//! The nftables table `ip kite-netpol` that enforces a [`Model`]:
//!
//! - a named set of addresses per selector peer (`peer-<hash>`), named after
//!   the peer's place in its policy, so a relabelled pod changes only a
//!   set's elements;
//! - per isolated pod and direction a chain (`ingress-<ip>`, `egress-<ip>`)
//!   whose rules `return` what the pod's policies allow and whose last rule
//!   drops the rest;
//! - verdict maps from a pod's address to its chains, consulted by the base
//!   chains: `forward` (pod to pod, pod to elsewhere: egress by source,
//!   then ingress by destination) and `input` (pod to the node: egress).
//!
//! Always allowed, before any policy: packets of established or related
//! connections (replies, and connections that were allowed when they
//! started), packets the node itself sends (its address, the bridge's
//! gateway: they leave through `output`, which this table does not hook,
//! so kubelet probes keep working), and queries from pods to the cluster
//! DNS on the node (`node-ip:<dns port>`, reached by DNAT from the DNS
//! ClusterIP; kite's DNS is no pod a policy could name, so egress
//! default-deny would otherwise cut name resolution). Other traffic from
//! pods to the node is egress like any other: allowed only by a rule whose
//! peers include the node's address (an `ipBlock`) or that has no peers.
//!
//! [`full`] writes the whole table in one transaction, replacing whatever
//! an earlier run left.

use super::model::{Direction, Model, Peer, PortRange, Rule};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// The table's name.
pub const TABLE: &str = "kite-netpol";

/// What the rules depend on besides the model.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The node-local port of the cluster DNS, always open to pods.
    pub dns_port: Option<u16>,
}

/// A short stable hash for set names (FNV-1a, 64 bits, base 32).
fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The name of the set holding a selector peer's addresses.
pub fn set_name(id: &str) -> String {
    format!("peer-{}", hash(id))
}

/// The name of a pod's chain for one direction.
pub fn chain_name(direction: Direction, ip: Ipv4Addr) -> String {
    match direction {
        Direction::Ingress => format!("ingress-{ip}"),
        Direction::Egress => format!("egress-{ip}"),
    }
}

/// The match on the peer of `direction` traffic.
fn peer_match(direction: Direction, peer: &Peer) -> String {
    let field = match direction {
        Direction::Ingress => "ip saddr",
        Direction::Egress => "ip daddr",
    };
    match peer {
        Peer::Pods { id, .. } => format!("{field} @{}", set_name(id)),
        Peer::Block { cidr, except } if except.is_empty() => format!("{field} {cidr}"),
        Peer::Block { cidr, except } => {
            let except: Vec<String> = except.iter().map(ToString::to_string).collect();
            format!("{field} {cidr} {field} != {{ {} }}", except.join(", "))
        }
    }
}

/// The match on the destination port.
fn port_match(range: &PortRange) -> String {
    let proto = range.protocol.nft();
    if range.first == 0 && range.last == u16::MAX {
        format!("meta l4proto {proto}")
    } else if range.first == range.last {
        format!("meta l4proto {proto} th dport {}", range.first)
    } else {
        format!(
            "meta l4proto {proto} th dport {}-{}",
            range.first, range.last
        )
    }
}

/// The rules of one pod's chain for one direction: what is allowed returns
/// (the other direction is checked next), the rest is dropped.
pub fn chain_rules(direction: Direction, rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    for rule in rules {
        let peers: Vec<String> = match &rule.peers {
            None => vec![String::new()],
            Some(list) => list.iter().map(|p| peer_match(direction, p)).collect(),
        };
        let ports: Vec<String> = match &rule.ports {
            None => vec![String::new()],
            Some(list) => list.iter().map(port_match).collect(),
        };
        for peer in &peers {
            for port in &ports {
                let text = [peer.as_str(), port.as_str(), "return"]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
    }
    out.push("drop".to_string());
    out
}

/// The script that removes the table (when network policy is disabled).
pub fn remove() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// The table for one model: everything but the peer sets' members
/// (`structure`, a script that replaces the table), and those members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The script creating the table with empty peer sets.
    pub structure: String,
    /// Peer set name → its addresses.
    pub sets: BTreeMap<String, BTreeSet<Ipv4Addr>>,
}

/// Renders the table `model` asks for.
pub fn render(model: &Model, settings: &Settings) -> Rendered {
    let mut sets: BTreeMap<&str, &BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for pod in model.pods.values() {
        for rule in pod.ingress.iter().chain(pod.egress.iter()).flatten() {
            for peer in rule.peers.iter().flatten() {
                if let Peer::Pods { id, ips } = peer {
                    sets.insert(id, ips);
                }
            }
        }
    }
    let mut t = remove();
    let _ = writeln!(t, "table ip {TABLE} {{");
    for id in sets.keys() {
        let _ = writeln!(t, "\tset {} {{", set_name(id));
        let _ = writeln!(t, "\t\ttype ipv4_addr; comment \"{}\";", quote(id));
        let _ = writeln!(t, "\t}}");
    }
    let mut maps: BTreeMap<Direction, Vec<String>> = BTreeMap::new();
    for (ip, pod) in &model.pods {
        for (direction, rules) in [
            (Direction::Ingress, &pod.ingress),
            (Direction::Egress, &pod.egress),
        ] {
            let Some(rules) = rules else {
                continue;
            };
            let chain = chain_name(direction, *ip);
            let _ = writeln!(t, "\tchain {chain} {{");
            let _ = writeln!(t, "\t\tcomment \"{}\"", quote(&pod.pod));
            for rule in chain_rules(direction, rules) {
                let _ = writeln!(t, "\t\t{rule}");
            }
            let _ = writeln!(t, "\t}}");
            maps.entry(direction)
                .or_default()
                .push(format!("{ip} : jump {chain}"));
        }
    }
    for (direction, map) in [
        (Direction::Ingress, "ingress-pods"),
        (Direction::Egress, "egress-pods"),
    ] {
        let _ = writeln!(t, "\tmap {map} {{");
        let _ = writeln!(t, "\t\ttype ipv4_addr : verdict;");
        if let Some(elements) = maps.get(&direction) {
            let _ = writeln!(t, "\t\telements = {{ {} }}", elements.join(", "));
        }
        let _ = writeln!(t, "\t}}");
    }
    let _ = writeln!(
        t,
        "\tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tct state established,related accept\n\
         \t\tfib saddr type local accept\n\
         \t\tip saddr vmap @egress-pods\n\
         \t\tip daddr vmap @ingress-pods\n\
         \t}}"
    );
    let dns = settings
        .dns_port
        .map(|port| format!("\t\tmeta l4proto {{ tcp, udp }} th dport {port} accept\n"))
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "\tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tct state established,related accept\n\
         {dns}\
         \t\tip saddr vmap @egress-pods\n\
         \t}}"
    );
    let _ = writeln!(t, "}}");
    Rendered {
        structure: t,
        sets: sets
            .into_iter()
            .map(|(id, ips)| (set_name(id), ips.clone()))
            .collect(),
    }
}

/// `add element` lines for `ips` of `set`.
fn add_elements(t: &mut String, verb: &str, set: &str, ips: &BTreeSet<Ipv4Addr>) {
    if ips.is_empty() {
        return;
    }
    let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        t,
        "{verb} element ip {TABLE} {set} {{ {} }}",
        list.join(", ")
    );
}

/// A script replacing the whole table with `rendered`.
pub fn full(rendered: &Rendered) -> String {
    let mut t = rendered.structure.clone();
    for (set, ips) in &rendered.sets {
        add_elements(&mut t, "add", set, ips);
    }
    t
}

/// A script turning the table from `old` into `new` by changing set members
/// only (a relabelled or new peer pod), empty when nothing changed; `None`
/// when anything else changed, which takes a [`full`] rewrite.
pub fn update(old: &Rendered, new: &Rendered) -> Option<String> {
    if old.structure != new.structure {
        return None;
    }
    let mut t = String::new();
    for (set, after) in &new.sets {
        let before = old.sets.get(set).cloned().unwrap_or_default();
        add_elements(
            &mut t,
            "delete",
            set,
            &before.difference(after).copied().collect(),
        );
        add_elements(
            &mut t,
            "add",
            set,
            &after.difference(&before).copied().collect(),
        );
    }
    Some(t)
}

/// Text safe inside an nft comment.
fn quote(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::policy::model::PodRules;

    fn model() -> Model {
        let mut model = Model::default();
        model.pods.insert(
            "10.42.0.2".parse().unwrap(),
            PodRules {
                pod: "default/web".into(),
                ingress: Some(vec![
                    Rule {
                        peers: Some(vec![
                            Peer::Pods {
                                id: "default/p/ingress/0/0".into(),
                                ips: ["10.42.0.3".parse().unwrap()].into(),
                            },
                            Peer::Block {
                                cidr: "192.0.2.0/24".parse().unwrap(),
                                except: vec!["192.0.2.128/25".parse().unwrap()],
                            },
                        ]),
                        ports: Some(vec![
                            PortRange {
                                protocol: Protocol::Tcp,
                                first: 80,
                                last: 80,
                            },
                            PortRange {
                                protocol: Protocol::Tcp,
                                first: 8000,
                                last: 8100,
                            },
                        ]),
                    },
                    Rule {
                        peers: None,
                        ports: Some(vec![PortRange::all(Protocol::Udp)]),
                    },
                ]),
                egress: Some(vec![]),
            },
        );
        model
    }

    #[test]
    fn a_pods_chain_returns_what_is_allowed_and_drops_the_rest() {
        let m = model();
        let rules = chain_rules(
            Direction::Ingress,
            m.pods.values().next().unwrap().ingress.as_ref().unwrap(),
        );
        let set = set_name("default/p/ingress/0/0");
        assert_eq!(
            rules,
            vec![
                format!("ip saddr @{set} meta l4proto tcp th dport 80 return"),
                format!("ip saddr @{set} meta l4proto tcp th dport 8000-8100 return"),
                "ip saddr 192.0.2.0/24 ip saddr != { 192.0.2.128/25 } meta l4proto tcp th dport 80 return".to_string(),
                "ip saddr 192.0.2.0/24 ip saddr != { 192.0.2.128/25 } meta l4proto tcp th dport 8000-8100 return".to_string(),
                "meta l4proto udp return".to_string(),
                "drop".to_string(),
            ]
        );
        assert_eq!(chain_rules(Direction::Egress, &[]), vec!["drop"]);
        let any = Rule {
            peers: None,
            ports: None,
        };
        assert_eq!(
            chain_rules(Direction::Egress, &[any]),
            vec!["return", "drop"]
        );
    }

    #[test]
    fn the_table_is_replaced_whole_with_sets_chains_and_maps() {
        let script = full(&render(
            &model(),
            &Settings {
                dns_port: Some(10053),
            },
        ));
        assert!(script.starts_with("table ip kite-netpol\ndelete table ip kite-netpol\n"));
        let set = set_name("default/p/ingress/0/0");
        assert!(script.contains(&format!("set {set} {{")), "{script}");
        assert!(
            script.contains(&format!("add element ip kite-netpol {set} {{ 10.42.0.3 }}")),
            "{script}"
        );
        assert!(script.contains("elements = { 10.42.0.2 : jump ingress-10.42.0.2 }"));
        assert!(script.contains("elements = { 10.42.0.2 : jump egress-10.42.0.2 }"));
        assert!(script.contains("th dport 10053 accept"));
        // Sets and chains come before what refers to them.
        assert!(script.find(&format!("set {set}")) < script.find("chain ingress-10.42.0.2"));
        assert!(script.find("chain ingress-10.42.0.2") < script.find("map ingress-pods"));
        assert!(script.find("map ingress-pods") < script.find("chain forward"));
    }

    #[test]
    fn a_relabelled_peer_changes_set_members_only() {
        let settings = Settings::default();
        let old = render(&model(), &settings);
        let mut changed = model();
        for pod in changed.pods.values_mut() {
            for rule in pod.ingress.iter_mut().flatten() {
                for peer in rule.peers.iter_mut().flatten() {
                    if let Peer::Pods { ips, .. } = peer {
                        *ips = ["10.42.0.4".parse().unwrap()].into();
                    }
                }
            }
        }
        let new = render(&changed, &settings);
        let set = set_name("default/p/ingress/0/0");
        assert_eq!(
            update(&old, &new).unwrap(),
            format!(
                "delete element ip kite-netpol {set} {{ 10.42.0.3 }}\n\
                 add element ip kite-netpol {set} {{ 10.42.0.4 }}\n"
            )
        );
        assert_eq!(update(&new, &new).unwrap(), "");
        // Another pod selected: the structure changes, a full rewrite.
        changed.pods.insert(
            "10.42.0.9".parse().unwrap(),
            crate::policy::model::PodRules::default(),
        );
        changed
            .pods
            .get_mut(&"10.42.0.9".parse().unwrap())
            .unwrap()
            .ingress = Some(vec![]);
        assert_eq!(update(&new, &render(&changed, &settings)), None);
    }

    #[test]
    fn an_empty_model_still_hooks_but_maps_are_empty() {
        let script = full(&render(&Model::default(), &Settings::default()));
        assert!(script.contains("map ingress-pods {\n\t\ttype ipv4_addr : verdict;\n\t}"));
        assert!(!script.contains("10053"));
        assert!(!script.contains("drop"));
    }
}
