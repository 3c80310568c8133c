//! The nftables table `ip kite-proxy`, laid out like kube-proxy's nftables
//! mode: verdict maps from `daddr . protocol . port` (and `protocol . port`
//! for NodePorts) to one chain per service port, which picks an endpoint
//! with `numgen random mod N` and jumps to that endpoint's chain, which
//! DNATs. Ports without endpoints are in separate maps consulted by filter
//! chains that reject new connections at once (TCP reset, else ICMP port
//! unreachable) instead of letting them time out.
//!
//! [`full`] writes the whole table (at start: a restarted kite leaves nothing
//! stale); [`update`] turns the difference between two states into one
//! transaction that touches only the service ports that changed.

use crate::model::{Endpoint, ServicePort};
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The table's name.
pub const TABLE: &str = "kite-proxy";
/// The packet mark asking `nat-postrouting` to masquerade.
const MASQ_MARK: &str = "0x4000";

/// What the rules depend on besides the services.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cluster's pod range: traffic from elsewhere to a ClusterIP is
    /// masqueraded so replies come back through this node.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Masquerade all traffic to services (when bridged traffic bypasses
    /// netfilter, replies between pods on one bridge would skip the un-DNAT).
    pub masquerade_all: bool,
}

/// The chains, sets and map elements of one service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chain name → its rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Set name → its definition (affinity sets).
    pub sets: BTreeMap<String, String>,
    /// `(map, element)` pairs.
    pub elements: BTreeSet<(String, String)>,
}

/// A short stable hash for chain names (FNV-1a, 64 bits, base 32).
fn hash(text: &str) -> String {
    short_hash(text, 8)
}

/// The first `len` (at most 12) base-32 digits of the FNV-1a hash of
/// `text`: stable names for nftables objects.
pub(crate) fn short_hash(text: &str, len: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..len.min(12))
        .map(|i| ALPHABET[((h >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// A name nftables accepts after the hash: letters, digits, `-`, `_`, `.`, `/`.
fn readable(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .take(180)
        .collect()
}

/// Renders one service port.
pub fn render(port: &ServicePort, settings: &Settings) -> Rendered {
    let mut out = Rendered::default();
    let proto = port.protocol.nft();
    let key = format!("{}/{}", port.id, proto);
    let svc = format!("svc-{}-{}", hash(&key), readable(&key));
    let ext = format!("ext-{}-{}", hash(&key), readable(&key));
    let endpoint_chain = |e: &Endpoint| {
        let id = format!("{key}/{}:{}", e.ip, e.port);
        (
            format!(
                "sep-{}-{}",
                hash(&id),
                readable(&format!("{}:{}", e.ip, e.port))
            ),
            format!("aff-{}", hash(&id)),
        )
    };

    let mut all: Vec<&Endpoint> = port
        .cluster_endpoints
        .iter()
        .chain(&port.external_endpoints)
        .collect();
    all.sort();
    all.dedup();
    for endpoint in &all {
        let (chain, set) = endpoint_chain(endpoint);
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", endpoint.ip)];
        if let Some(timeout) = port.affinity_seconds {
            out.sets.insert(
                set.clone(),
                format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
            );
            rules.push(format!("update @{set} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            endpoint.ip, endpoint.port
        ));
        out.chains.insert(chain, rules);
    }

    let pick = |endpoints: &[Endpoint]| -> Vec<String> {
        let mut rules = Vec::new();
        if port.affinity_seconds.is_some() {
            for e in endpoints {
                let (chain, set) = endpoint_chain(e);
                rules.push(format!("ip saddr @{set} goto {chain}"));
            }
        }
        let targets: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{i} : goto {}", endpoint_chain(e).0))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            targets.join(", ")
        ));
        rules
    };

    if !port.cluster_endpoints.is_empty() {
        let mut rules = Vec::new();
        for ip in &port.cluster_ips {
            if settings.masquerade_all {
                rules.push(format!("ip daddr {ip} jump mark-for-masquerade"));
            } else if let Some(cidr) = settings.cluster_cidr {
                rules.push(format!(
                    "ip daddr {ip} ip saddr != {cidr} jump mark-for-masquerade"
                ));
            }
        }
        rules.extend(pick(&port.cluster_endpoints));
        out.chains.insert(svc.clone(), rules);
    }
    for ip in &port.cluster_ips {
        let element = format!("{ip} . {proto} . {}", port.port);
        if port.cluster_endpoints.is_empty() {
            out.elements.insert((
                "no-endpoint-services".into(),
                format!("{element} : goto reject-chain"),
            ));
        } else {
            out.elements
                .insert(("service-ips".into(), format!("{element} : goto {svc}")));
        }
    }

    let has_external = port.node_port.is_some() || !port.external_ips.is_empty();
    if has_external && !port.external_endpoints.is_empty() {
        let mut rules = Vec::new();
        if !port.external_local {
            rules.push("jump mark-for-masquerade".to_string());
        }
        if port.external_endpoints == port.cluster_endpoints && !port.cluster_endpoints.is_empty() {
            rules.push(format!("goto {svc}"));
        } else {
            rules.extend(pick(&port.external_endpoints));
        }
        out.chains.insert(ext.clone(), rules);
    }
    if has_external {
        let reachable = !port.external_endpoints.is_empty();
        for ip in &port.external_ips {
            let element = format!("{ip} . {proto} . {}", port.port);
            if reachable {
                out.elements
                    .insert(("service-ips".into(), format!("{element} : goto {ext}")));
            } else {
                out.elements.insert((
                    "no-endpoint-services".into(),
                    format!("{element} : goto reject-chain"),
                ));
            }
        }
        if let Some(node_port) = port.node_port {
            let element = format!("{proto} . {node_port}");
            if reachable {
                out.elements.insert((
                    "service-nodeports".into(),
                    format!("{element} : goto {ext}"),
                ));
            } else {
                out.elements.insert((
                    "no-endpoint-nodeports".into(),
                    format!("{element} : goto reject-chain"),
                ));
            }
        }
    }
    out
}

/// The fixed part of the table: maps, hooks and helper chains.
fn skeleton() -> String {
    let mut t = String::new();
    let _ = writeln!(t, "table ip {TABLE} {{");
    for (map, key) in [
        ("service-ips", "ipv4_addr . inet_proto . inet_service"),
        (
            "no-endpoint-services",
            "ipv4_addr . inet_proto . inet_service",
        ),
        ("service-nodeports", "inet_proto . inet_service"),
        ("no-endpoint-nodeports", "inet_proto . inet_service"),
    ] {
        let _ = writeln!(t, "\tmap {map} {{ type {key} : verdict; }}");
    }
    let _ = writeln!(
        t,
        "\tchain reject-chain {{ meta l4proto tcp reject with tcp reset; reject; }}"
    );
    let _ = writeln!(
        t,
        "\tchain mark-for-masquerade {{ meta mark set meta mark | {MASQ_MARK}; }}"
    );
    let _ = writeln!(
        t,
        "\tchain services {{\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n\t}}"
    );
    let _ = writeln!(
        t,
        "\tchain endpoints-check {{\n\t\tip daddr . meta l4proto . th dport vmap @no-endpoint-services\n\t\tfib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports\n\t}}"
    );
    for (chain, hook, priority, body) in [
        (
            "nat-prerouting",
            "nat hook prerouting",
            "dstnat",
            "jump services",
        ),
        ("nat-output", "nat hook output", "-100", "jump services"),
        (
            "nat-postrouting",
            "nat hook postrouting",
            "srcnat",
            "meta mark & 0x4000 == 0 return\n\t\tmeta mark set meta mark ^ 0x4000\n\t\tmasquerade fully-random",
        ),
        (
            "filter-input",
            "filter hook input",
            "-110",
            "ct state new jump endpoints-check",
        ),
        (
            "filter-forward",
            "filter hook forward",
            "-110",
            "ct state new jump endpoints-check",
        ),
        (
            "filter-output",
            "filter hook output",
            "-110",
            "ct state new jump endpoints-check",
        ),
    ] {
        let _ = writeln!(
            t,
            "\tchain {chain} {{\n\t\ttype {hook} priority {priority}; policy accept;\n\t\t{body}\n\t}}"
        );
    }
    let _ = writeln!(t, "}}");
    t
}

/// A script that replaces the whole table with `ports`.
pub fn full(ports: &BTreeMap<String, Rendered>) -> String {
    let mut t = format!("table ip {TABLE}\ndelete table ip {TABLE}\n");
    t.push_str(&skeleton());
    let empty = BTreeMap::new();
    t.push_str(&update(&empty, ports));
    t
}

/// A script turning the table from `old` into `new`, touching only the
/// service ports whose rendering differs.
pub fn update(old: &BTreeMap<String, Rendered>, new: &BTreeMap<String, Rendered>) -> String {
    let none = Rendered::default();
    let ids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let changed: Vec<(&Rendered, &Rendered)> = ids
        .into_iter()
        .filter_map(|id| {
            let before = old.get(id).unwrap_or(&none);
            let after = new.get(id).unwrap_or(&none);
            (before != after).then_some((before, after))
        })
        .collect();
    let mut t = String::new();
    // Elements first out, so nothing refers to the chains about to change.
    for (before, after) in &changed {
        for (map, element) in before.elements.difference(&after.elements) {
            let key = element.split(" : ").next().unwrap_or(element);
            let _ = writeln!(t, "delete element ip {TABLE} {map} {{ {key} }}");
        }
    }
    for (before, after) in &changed {
        for chain in after.chains.keys().chain(before.chains.keys()) {
            let _ = writeln!(t, "add chain ip {TABLE} {chain}");
            let _ = writeln!(t, "flush chain ip {TABLE} {chain}");
        }
        for (set, definition) in &after.sets {
            if before.sets.get(set) != Some(definition) {
                let _ = writeln!(t, "add set ip {TABLE} {set} {{ {definition} }}");
            }
        }
    }
    for (_, after) in &changed {
        for (chain, rules) in &after.chains {
            for rule in rules {
                let _ = writeln!(t, "add rule ip {TABLE} {chain} {rule}");
            }
        }
    }
    for (before, after) in &changed {
        for chain in before.chains.keys() {
            if !after.chains.contains_key(chain) {
                let _ = writeln!(t, "delete chain ip {TABLE} {chain}");
            }
        }
        for set in before.sets.keys() {
            if !after.sets.contains_key(set) {
                let _ = writeln!(t, "delete set ip {TABLE} {set}");
            }
        }
    }
    for (before, after) in &changed {
        for (map, element) in after.elements.difference(&before.elements) {
            let _ = writeln!(t, "add element ip {TABLE} {map} {{ {element} }}");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn port(endpoints: &[(&str, u16)]) -> ServicePort {
        let endpoints: Vec<Endpoint> = endpoints
            .iter()
            .map(|(ip, port)| Endpoint {
                ip: ip.parse().unwrap(),
                port: *port,
            })
            .collect();
        ServicePort {
            id: "default/web".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec!["10.43.0.20".parse().unwrap()],
            node_port: Some(30080),
            external_ips: vec![],
            cluster_endpoints: endpoints.clone(),
            external_endpoints: endpoints,
            external_local: false,
            affinity_seconds: None,
        }
    }

    fn settings() -> Settings {
        Settings {
            cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
            masquerade_all: false,
        }
    }

    #[test]
    fn a_port_with_endpoints_balances_and_dnats() {
        let r = render(
            &port(&[("10.42.0.5", 8080), ("10.42.0.6", 8080)]),
            &settings(),
        );
        let svc = r.chains.keys().find(|c| c.starts_with("svc-")).unwrap();
        let rules = &r.chains[svc];
        assert_eq!(
            rules[0],
            "ip daddr 10.43.0.20 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
        );
        assert!(rules[1].starts_with("numgen random mod 2 vmap { 0 : goto sep-"));
        let seps: Vec<_> = r.chains.keys().filter(|c| c.starts_with("sep-")).collect();
        assert_eq!(seps.len(), 2);
        assert!(
            r.chains[seps[0]]
                .iter()
                .any(|rule| rule.starts_with("meta l4proto tcp dnat to 10.42.0."))
        );
        assert!(r.elements.contains(&(
            "service-ips".into(),
            format!("10.43.0.20 . tcp . 80 : goto {svc}")
        )));
        assert!(
            r.elements
                .iter()
                .any(|(m, e)| m == "service-nodeports" && e.starts_with("tcp . 30080 : goto ext-"))
        );
    }

    #[test]
    fn a_port_without_endpoints_is_rejected() {
        let r = render(&port(&[]), &settings());
        assert!(r.chains.is_empty());
        assert!(r.elements.contains(&(
            "no-endpoint-services".into(),
            "10.43.0.20 . tcp . 80 : goto reject-chain".into()
        )));
        assert!(r.elements.contains(&(
            "no-endpoint-nodeports".into(),
            "tcp . 30080 : goto reject-chain".into()
        )));
    }

    #[test]
    fn updates_touch_only_what_changed() {
        let a = render(&port(&[("10.42.0.5", 8080)]), &settings());
        let b = render(
            &port(&[("10.42.0.5", 8080), ("10.42.0.6", 8080)]),
            &settings(),
        );
        let other = {
            let mut p = port(&[("10.42.0.9", 53)]);
            p.id = "kube-system/dns".into();
            render(&p, &settings())
        };
        let old: BTreeMap<_, _> = [
            ("web".to_string(), a.clone()),
            ("dns".to_string(), other.clone()),
        ]
        .into();
        let new: BTreeMap<_, _> = [("web".to_string(), b), ("dns".to_string(), other)].into();
        let script = update(&old, &new);
        assert!(script.contains("10.42.0.6"));
        assert!(!script.contains("10.42.0.9"), "{script}");
        assert_eq!(update(&new, &new), "");
        // Removing the service removes its elements before its chains.
        let gone: BTreeMap<_, _> = [("dns".to_string(), new["dns"].clone())].into();
        let script = update(&new, &gone);
        let element = script.find("delete element").unwrap();
        let chain = script.find("delete chain").unwrap();
        assert!(element < chain, "{script}");
    }

    #[test]
    fn affinity_uses_a_timeout_set_per_endpoint() {
        let mut p = port(&[("10.42.0.5", 8080)]);
        p.affinity_seconds = Some(60);
        let r = render(&p, &settings());
        let (set, definition) = r.sets.iter().next().unwrap();
        assert!(definition.contains("timeout 60s"));
        let svc = r.chains.keys().find(|c| c.starts_with("svc-")).unwrap();
        assert!(
            r.chains[svc]
                .iter()
                .any(|rule| rule.starts_with(&format!("ip saddr @{set} goto sep-")))
        );
    }
}
