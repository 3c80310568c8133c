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
//! an earlier run left; [`update`] turns the difference between two
//! renderings into one transaction touching only the sets, chains and map
//! elements that differ.

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

/// A short stable hash for set names.
fn hash(text: &str) -> String {
    crate::ruleset::short_hash(text, 10)
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

/// The table for one model, in parts [`update`] can compare.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The fixed part: the verdict maps (empty) and the base chains.
    pub skeleton: String,
    /// Peer set name → (comment, its addresses).
    pub sets: BTreeMap<String, (String, BTreeSet<Ipv4Addr>)>,
    /// Pod chain name → (comment, its rules).
    pub chains: BTreeMap<String, (String, Vec<String>)>,
    /// Verdict map elements: (map, pod address, chain jumped to).
    pub elements: BTreeSet<(&'static str, Ipv4Addr, String)>,
}

/// Renders the table `model` asks for.
pub fn render(model: &Model, settings: &Settings) -> Rendered {
    let mut out = Rendered {
        skeleton: skeleton(settings),
        ..Rendered::default()
    };
    for (ip, pod) in &model.pods {
        for (direction, rules, map) in [
            (Direction::Ingress, &pod.ingress, "ingress-pods"),
            (Direction::Egress, &pod.egress, "egress-pods"),
        ] {
            let Some(rules) = rules else {
                continue;
            };
            for peer in rules.iter().flat_map(|r| r.peers.iter().flatten()) {
                if let Peer::Pods { id, ips } = peer {
                    out.sets.insert(set_name(id), (quote(id), ips.clone()));
                }
            }
            let chain = chain_name(direction, *ip);
            out.chains.insert(
                chain.clone(),
                (quote(&pod.pod), chain_rules(direction, rules)),
            );
            out.elements.insert((map, *ip, chain));
        }
    }
    out
}

/// The maps and base chains.
fn skeleton(settings: &Settings) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "table ip {TABLE} {{");
    for map in ["ingress-pods", "egress-pods"] {
        let _ = writeln!(t, "\tmap {map} {{ type ipv4_addr : verdict; }}");
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
    t
}

/// `add element`/`delete element` lines for `ips` of `set`.
fn set_elements<'a>(
    t: &mut String,
    verb: &str,
    set: &str,
    ips: impl Iterator<Item = &'a Ipv4Addr>,
) {
    let list: Vec<String> = ips.map(ToString::to_string).collect();
    if !list.is_empty() {
        let _ = writeln!(
            t,
            "{verb} element ip {TABLE} {set} {{ {} }}",
            list.join(", ")
        );
    }
}

/// A script replacing the whole table with `rendered` (at start and after a
/// failed sync: nothing an earlier run left stays).
pub fn full(rendered: &Rendered) -> String {
    let empty = Rendered {
        skeleton: rendered.skeleton.clone(),
        ..Rendered::default()
    };
    let mut t = remove();
    t.push_str(&rendered.skeleton);
    t.push_str(&update(&empty, rendered).unwrap_or_default());
    t
}

/// A script turning the table from `old` into `new`, touching only the
/// sets, chains and map elements that differ (empty when nothing does);
/// `None` when the fixed part changed, which takes a [`full`] rewrite.
pub fn update(old: &Rendered, new: &Rendered) -> Option<String> {
    if old.skeleton != new.skeleton {
        return None;
    }
    let mut t = String::new();
    // Map elements out first, so nothing jumps to a chain about to go.
    for (map, ip, _) in old.elements.difference(&new.elements) {
        let _ = writeln!(t, "delete element ip {TABLE} {map} {{ {ip} }}");
    }
    for (set, (comment, after)) in &new.sets {
        match old.sets.get(set) {
            Some((_, before)) => {
                set_elements(&mut t, "delete", set, before.difference(after));
                set_elements(&mut t, "add", set, after.difference(before));
            }
            None => {
                let _ = writeln!(
                    t,
                    "add set ip {TABLE} {set} {{ type ipv4_addr; comment \"{comment}\"; }}"
                );
                set_elements(&mut t, "add", set, after.iter());
            }
        }
    }
    for (chain, body) in &new.chains {
        let before = old.chains.get(chain);
        if before == Some(body) {
            continue;
        }
        let (comment, rules) = body;
        if before.is_none() {
            let _ = writeln!(
                t,
                "add chain ip {TABLE} {chain} {{ comment \"{comment}\"; }}"
            );
        } else {
            let _ = writeln!(t, "flush chain ip {TABLE} {chain}");
        }
        for rule in rules {
            let _ = writeln!(t, "add rule ip {TABLE} {chain} {rule}");
        }
    }
    for chain in old.chains.keys() {
        if !new.chains.contains_key(chain) {
            let _ = writeln!(t, "delete chain ip {TABLE} {chain}");
        }
    }
    for set in old.sets.keys() {
        if !new.sets.contains_key(set) {
            let _ = writeln!(t, "delete set ip {TABLE} {set}");
        }
    }
    for (map, ip, chain) in new.elements.difference(&old.elements) {
        let _ = writeln!(t, "add element ip {TABLE} {map} {{ {ip} : jump {chain} }}");
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
        assert!(
            script.contains(&format!("add set ip kite-netpol {set} {{")),
            "{script}"
        );
        assert!(
            script.contains(&format!("add element ip kite-netpol {set} {{ 10.42.0.3 }}")),
            "{script}"
        );
        let element =
            "add element ip kite-netpol ingress-pods { 10.42.0.2 : jump ingress-10.42.0.2 }";
        assert!(script.contains(element), "{script}");
        assert!(script.contains(
            "add element ip kite-netpol egress-pods { 10.42.0.2 : jump egress-10.42.0.2 }"
        ));
        assert!(script.contains("th dport 10053 accept"));
        // Sets and chains come before what refers to them.
        let chain = script.find("add chain ip kite-netpol ingress-10.42.0.2");
        assert!(script.find(&format!("add set ip kite-netpol {set}")) < chain);
        assert!(chain < script.find(element));
        assert!(script.find("map ingress-pods") < script.find("chain forward"));
    }

    #[test]
    fn updates_touch_only_the_sets_chains_and_elements_that_changed() {
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
        // Another pod selected: its chain and map element are added, nothing else.
        changed.pods.insert(
            "10.42.0.9".parse().unwrap(),
            crate::policy::model::PodRules::default(),
        );
        changed
            .pods
            .get_mut(&"10.42.0.9".parse().unwrap())
            .unwrap()
            .ingress = Some(vec![]);
        let script = update(&new, &render(&changed, &settings)).unwrap();
        assert_eq!(
            script,
            "add chain ip kite-netpol ingress-10.42.0.9 { comment \"\"; }\n\
             add rule ip kite-netpol ingress-10.42.0.9 drop\n\
             add element ip kite-netpol ingress-pods { 10.42.0.9 : jump ingress-10.42.0.9 }\n"
        );
        // And it goes again: element first, then the chain.
        assert_eq!(
            update(&render(&changed, &settings), &new).unwrap(),
            "delete element ip kite-netpol ingress-pods { 10.42.0.9 }\n\
             delete chain ip kite-netpol ingress-10.42.0.9\n"
        );
        // Other settings: a full rewrite.
        let dns = Settings {
            dns_port: Some(10053),
        };
        assert_eq!(update(&new, &render(&changed, &dns)), None);
    }

    #[test]
    fn an_empty_model_still_hooks_but_maps_are_empty() {
        let script = full(&render(&Model::default(), &Settings::default()));
        assert!(script.contains("map ingress-pods { type ipv4_addr : verdict; }"));
        assert!(!script.contains("10053"));
        assert!(!script.contains("drop"));
    }
}
