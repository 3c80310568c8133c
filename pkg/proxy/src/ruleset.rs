//! The nftables table `ip kite-proxy`, laid out like kube-proxy's nftables
//! mode: verdict maps from `daddr . protocol . port` (and `protocol . port`
//! for NodePorts) to one chain per service port, which picks an endpoint
//! with `numgen random mod N` and jumps to that endpoint's chain, which
//! DNATs. Ports without endpoints are in separate maps consulted by filter
//! chains that reject new connections at once (TCP reset, else ICMP port
//! unreachable) instead of letting them time out.
//!
//! [`full`] writes the whole table with `nft` (at start: a restarted kite
//! leaves nothing stale); [`update`] turns the difference between two states
//! into the commands of one transaction that touches only the service ports
//! that changed, sent to the kernel directly ([`batch`]). Rules are typed
//! ([`Rule`]): each has its `nft` text and the kernel expressions `nft` would
//! compile it to.

use crate::model::{Endpoint, Protocol, ServicePort};
use ipnet::Ipv4Net;
use kite_network::nfnetlink::expr::{REG_1, REG_2};
use kite_network::nfnetlink::{Base, Batch, CmpOp, Expr, MetaKey, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::net::Ipv4Addr;

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

/// A rule of a service or endpoint chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// `ip saddr A jump mark-for-masquerade`: an endpoint reaching itself
    /// through its service (hairpin) must see the node as the source.
    MarkFrom(Ipv4Addr),
    /// `ip daddr A ip saddr != CIDR jump mark-for-masquerade`.
    MarkToFromOutside(Ipv4Addr, Ipv4Net),
    /// `ip daddr A jump mark-for-masquerade`.
    MarkTo(Ipv4Addr),
    /// `jump mark-for-masquerade`.
    Mark,
    /// `update @SET { ip saddr }`: remember the client (session affinity).
    Remember(String),
    /// `ip saddr @SET goto CHAIN`: a remembered client keeps its endpoint.
    Stick(String, String),
    /// `meta l4proto P dnat to A:PORT`.
    Dnat(Protocol, Endpoint),
    /// `numgen random mod N 0 goto CHAIN`: one in N goes to CHAIN.
    OneIn(u32, String),
    /// `goto CHAIN`.
    Goto(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MarkFrom(ip) => write!(f, "ip saddr {ip} jump mark-for-masquerade"),
            Self::MarkToFromOutside(ip, cidr) => write!(
                f,
                "ip daddr {ip} ip saddr != {cidr} jump mark-for-masquerade"
            ),
            Self::MarkTo(ip) => write!(f, "ip daddr {ip} jump mark-for-masquerade"),
            Self::Mark => write!(f, "jump mark-for-masquerade"),
            Self::Remember(set) => write!(f, "update @{set} {{ ip saddr }}"),
            Self::Stick(set, chain) => write!(f, "ip saddr @{set} goto {chain}"),
            Self::Dnat(proto, e) => write!(
                f,
                "meta l4proto {} dnat to {}:{}",
                proto.nft(),
                e.ip,
                e.port
            ),
            Self::OneIn(n, chain) => write!(f, "numgen random mod {n} 0 goto {chain}"),
            Self::Goto(chain) => write!(f, "goto {chain}"),
        }
    }
}

const IP_SADDR: Expr = Expr::Payload {
    base: Base::Network,
    offset: 12,
    len: 4,
    dreg: REG_1,
};
const IP_DADDR: Expr = Expr::Payload {
    base: Base::Network,
    offset: 16,
    len: 4,
    dreg: REG_1,
};

fn equals(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: REG_1,
        op: CmpOp::Eq,
        data,
    }
}

fn jump_to_mark() -> Expr {
    Expr::Verdict(Verdict::Jump("mark-for-masquerade".into()))
}

impl Rule {
    /// The rule as kernel expressions, as `nft` would compile its text.
    pub fn exprs(&self) -> Vec<Expr> {
        match self {
            Self::MarkFrom(ip) => vec![IP_SADDR, equals(ip.octets().to_vec()), jump_to_mark()],
            Self::MarkToFromOutside(ip, cidr) => {
                let mut exprs = vec![IP_DADDR, equals(ip.octets().to_vec()), IP_SADDR];
                if cidr.prefix_len() < 32 {
                    exprs.push(Expr::Bitwise {
                        reg: REG_1,
                        mask: cidr.netmask().octets().to_vec(),
                        xor: vec![0; 4],
                    });
                }
                exprs.push(Expr::Cmp {
                    sreg: REG_1,
                    op: CmpOp::Neq,
                    data: cidr.network().octets().to_vec(),
                });
                exprs.push(jump_to_mark());
                exprs
            }
            Self::MarkTo(ip) => vec![IP_DADDR, equals(ip.octets().to_vec()), jump_to_mark()],
            Self::Mark => vec![jump_to_mark()],
            Self::Remember(set) => vec![
                IP_SADDR,
                Expr::Update {
                    set: set.clone(),
                    sreg: REG_1,
                },
            ],
            Self::Stick(set, chain) => vec![
                IP_SADDR,
                Expr::Lookup {
                    set: set.clone(),
                    sreg: REG_1,
                },
                Expr::Verdict(Verdict::Goto(chain.clone())),
            ],
            Self::Dnat(proto, e) => vec![
                Expr::Meta {
                    key: MetaKey::L4Proto,
                    dreg: REG_1,
                },
                equals(vec![proto.number()]),
                Expr::Value {
                    dreg: REG_1,
                    data: e.ip.octets().to_vec(),
                },
                Expr::Value {
                    dreg: REG_2,
                    data: e.port.to_be_bytes().to_vec(),
                },
                Expr::Dnat {
                    addr: REG_1,
                    port: REG_2,
                },
            ],
            Self::OneIn(n, chain) => vec![
                Expr::Random {
                    modulus: *n,
                    dreg: REG_1,
                },
                // numgen writes a host-order integer.
                equals(0u32.to_ne_bytes().to_vec()),
                Expr::Verdict(Verdict::Goto(chain.clone())),
            ],
            Self::Goto(chain) => vec![Expr::Verdict(Verdict::Goto(chain.clone()))],
        }
    }
}

/// The verdict maps service ports are entered through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Map {
    /// `daddr . protocol . port` of ports with endpoints.
    ServiceIps,
    /// `daddr . protocol . port` of ports without endpoints (rejected).
    NoEndpointServices,
    /// `protocol . port` of NodePorts with endpoints.
    ServiceNodePorts,
    /// `protocol . port` of NodePorts without endpoints (rejected).
    NoEndpointNodePorts,
}

impl Map {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::ServiceIps => "service-ips",
            Self::NoEndpointServices => "no-endpoint-services",
            Self::ServiceNodePorts => "service-nodeports",
            Self::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }
}

/// A map key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `A . protocol . port`.
    Address(Ipv4Addr, Protocol, u16),
    /// `protocol . port`.
    NodePort(Protocol, u16),
}

impl Key {
    /// The key's bytes: concatenated fields, each padded to four bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        let (proto, port) = match self {
            Self::Address(ip, proto, port) => {
                out.extend_from_slice(&ip.octets());
                (proto, port)
            }
            Self::NodePort(proto, port) => (proto, port),
        };
        out.extend_from_slice(&[proto.number(), 0, 0, 0]);
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(ip, proto, port) => write!(f, "{ip} . {} . {port}", proto.nft()),
            Self::NodePort(proto, port) => write!(f, "{} . {port}", proto.nft()),
        }
    }
}

/// A map element: `key : goto chain`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    /// The map.
    pub map: Map,
    /// The key.
    pub key: Key,
    /// The chain matching packets go to.
    pub chain: String,
}

impl Element {
    fn new(map: Map, key: Key, chain: &str) -> Self {
        Self {
            map,
            key,
            chain: chain.to_string(),
        }
    }
}

/// The chains, sets and map elements of one service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chain name → its rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Affinity set name → its timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map elements.
    pub elements: BTreeSet<Element>,
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
    let proto = port.protocol;
    let key = format!("{}/{}", port.id, proto.nft());
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
        let mut rules = vec![Rule::MarkFrom(endpoint.ip)];
        if let Some(timeout) = port.affinity_seconds {
            out.sets.insert(set.clone(), timeout);
            rules.push(Rule::Remember(set));
        }
        rules.push(Rule::Dnat(proto, (*endpoint).clone()));
        out.chains.insert(chain, rules);
    }

    // Endpoint i of n is taken one time in n - i by the connections that got
    // past the earlier ones: uniform, with no anonymous map per service (the
    // kernel names those by scanning every set, which makes 10,000 of them
    // take minutes to load).
    let pick = |endpoints: &[Endpoint]| -> Vec<Rule> {
        let mut rules = Vec::new();
        if port.affinity_seconds.is_some() {
            for e in endpoints {
                let (chain, set) = endpoint_chain(e);
                rules.push(Rule::Stick(set, chain));
            }
        }
        let n = endpoints.len();
        for (i, e) in endpoints.iter().enumerate() {
            let chain = endpoint_chain(e).0;
            if i + 1 == n {
                rules.push(Rule::Goto(chain));
            } else {
                rules.push(Rule::OneIn(u32::try_from(n - i).unwrap_or(u32::MAX), chain));
            }
        }
        rules
    };

    if !port.cluster_endpoints.is_empty() {
        let mut rules = Vec::new();
        for ip in &port.cluster_ips {
            if settings.masquerade_all {
                rules.push(Rule::MarkTo(*ip));
            } else if let Some(cidr) = settings.cluster_cidr {
                rules.push(Rule::MarkToFromOutside(*ip, cidr));
            }
        }
        rules.extend(pick(&port.cluster_endpoints));
        out.chains.insert(svc.clone(), rules);
    }
    for ip in &port.cluster_ips {
        let element = Key::Address(*ip, proto, port.port);
        if port.cluster_endpoints.is_empty() {
            out.elements.insert(Element::new(
                Map::NoEndpointServices,
                element,
                "reject-chain",
            ));
        } else {
            out.elements
                .insert(Element::new(Map::ServiceIps, element, &svc));
        }
    }

    let has_external = port.node_port.is_some() || !port.external_ips.is_empty();
    if has_external && !port.external_endpoints.is_empty() {
        let mut rules = Vec::new();
        if !port.external_local {
            rules.push(Rule::Mark);
        }
        if port.external_endpoints == port.cluster_endpoints && !port.cluster_endpoints.is_empty() {
            rules.push(Rule::Goto(svc.clone()));
        } else {
            rules.extend(pick(&port.external_endpoints));
        }
        out.chains.insert(ext.clone(), rules);
    }
    if has_external {
        let reachable = !port.external_endpoints.is_empty();
        for ip in &port.external_ips {
            let key = Key::Address(*ip, proto, port.port);
            out.elements.insert(if reachable {
                Element::new(Map::ServiceIps, key, &ext)
            } else {
                Element::new(Map::NoEndpointServices, key, "reject-chain")
            });
        }
        if let Some(node_port) = port.node_port {
            let key = Key::NodePort(proto, node_port);
            out.elements.insert(if reachable {
                Element::new(Map::ServiceNodePorts, key, &ext)
            } else {
                Element::new(Map::NoEndpointNodePorts, key, "reject-chain")
            });
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

/// One command of a transaction on the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Removes a map element.
    DeleteElement(Element),
    /// Creates a chain unless it exists.
    AddChain(String),
    /// Empties a chain.
    FlushChain(String),
    /// Creates an affinity set with its timeout.
    AddSet(String, u32),
    /// Appends a rule to a chain.
    AddRule(String, Rule),
    /// Removes an (empty, unreferenced) chain.
    DeleteChain(String),
    /// Removes an affinity set.
    DeleteSet(String),
    /// Adds a map element.
    AddElement(Element),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeleteElement(e) => write!(
                f,
                "delete element ip {TABLE} {} {{ {} }}",
                e.map.name(),
                e.key
            ),
            Self::AddChain(chain) => write!(f, "add chain ip {TABLE} {chain}"),
            Self::FlushChain(chain) => write!(f, "flush chain ip {TABLE} {chain}"),
            Self::AddSet(set, timeout) => write!(
                f,
                "add set ip {TABLE} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            ),
            Self::AddRule(chain, rule) => write!(f, "add rule ip {TABLE} {chain} {rule}"),
            Self::DeleteChain(chain) => write!(f, "delete chain ip {TABLE} {chain}"),
            Self::DeleteSet(set) => write!(f, "delete set ip {TABLE} {set}"),
            Self::AddElement(e) => write!(
                f,
                "add element ip {TABLE} {} {{ {} : goto {} }}",
                e.map.name(),
                e.key,
                e.chain
            ),
        }
    }
}

/// The commands as an `nft` script.
pub fn script(ops: &[Op]) -> String {
    let mut t = String::new();
    for op in ops {
        let _ = writeln!(t, "{op}");
    }
    t
}

/// The commands as one kernel transaction.
pub fn batch(ops: &[Op]) -> Batch {
    let mut b = Batch::new();
    for op in ops {
        match op {
            Op::DeleteElement(e) => b.delete_element(TABLE, e.map.name(), &e.key.bytes()),
            Op::AddChain(chain) => b.add_chain(TABLE, chain),
            Op::FlushChain(chain) => b.flush_chain(TABLE, chain),
            Op::AddSet(set, timeout) => b.add_address_timeout_set(TABLE, set, *timeout),
            Op::AddRule(chain, rule) => b.add_rule(TABLE, chain, &rule.exprs()),
            Op::DeleteChain(chain) => b.delete_chain(TABLE, chain),
            Op::DeleteSet(set) => b.delete_set(TABLE, set),
            Op::AddElement(e) => b.add_map_element(
                TABLE,
                e.map.name(),
                &e.key.bytes(),
                &Verdict::Goto(e.chain.clone()),
            ),
        }
    }
    b
}

/// A script that replaces the whole table with `ports`.
pub fn full(ports: &BTreeMap<String, Rendered>) -> String {
    let mut t = format!("table ip {TABLE}\ndelete table ip {TABLE}\n");
    t.push_str(&skeleton());
    let empty = BTreeMap::new();
    t.push_str(&script(&update(&empty, ports)));
    t
}

/// The commands turning the table from `old` into `new`, touching only the
/// service ports whose rendering differs.
pub fn update(old: &BTreeMap<String, Rendered>, new: &BTreeMap<String, Rendered>) -> Vec<Op> {
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
    let mut ops = Vec::new();
    // Elements first out, so nothing refers to the chains about to change.
    for (before, after) in &changed {
        for element in before.elements.difference(&after.elements) {
            ops.push(Op::DeleteElement(element.clone()));
        }
    }
    for (before, after) in &changed {
        for chain in after.chains.keys() {
            ops.push(Op::AddChain(chain.clone()));
        }
        for chain in before.chains.keys() {
            ops.push(Op::FlushChain(chain.clone()));
        }
        for (set, timeout) in &after.sets {
            if before.sets.get(set) != Some(timeout) {
                ops.push(Op::AddSet(set.clone(), *timeout));
            }
        }
    }
    for (_, after) in &changed {
        for (chain, rules) in &after.chains {
            for rule in rules {
                ops.push(Op::AddRule(chain.clone(), rule.clone()));
            }
        }
    }
    for (before, after) in &changed {
        for chain in before.chains.keys() {
            if !after.chains.contains_key(chain) {
                ops.push(Op::DeleteChain(chain.clone()));
            }
        }
        for set in before.sets.keys() {
            if !after.sets.contains_key(set) {
                ops.push(Op::DeleteSet(set.clone()));
            }
        }
    }
    for (before, after) in &changed {
        for element in after.elements.difference(&before.elements) {
            ops.push(Op::AddElement(element.clone()));
        }
    }
    ops
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

    fn text(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(Rule::to_string).collect()
    }

    #[test]
    fn a_port_with_endpoints_balances_and_dnats() {
        let r = render(
            &port(&[("10.42.0.5", 8080), ("10.42.0.6", 8080)]),
            &settings(),
        );
        let svc = r.chains.keys().find(|c| c.starts_with("svc-")).unwrap();
        let rules = text(&r.chains[svc]);
        assert_eq!(
            rules[0],
            "ip daddr 10.43.0.20 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
        );
        assert!(
            rules[1].starts_with("numgen random mod 2 0 goto sep-"),
            "{rules:?}"
        );
        assert!(rules[2].starts_with("goto sep-"), "{rules:?}");
        let seps: Vec<_> = r.chains.keys().filter(|c| c.starts_with("sep-")).collect();
        assert_eq!(seps.len(), 2);
        assert!(
            text(&r.chains[seps[0]])
                .iter()
                .any(|rule| rule.starts_with("meta l4proto tcp dnat to 10.42.0."))
        );
        assert!(r.elements.contains(&Element::new(
            Map::ServiceIps,
            Key::Address("10.43.0.20".parse().unwrap(), Protocol::Tcp, 80),
            svc
        )));
        assert!(
            r.elements
                .iter()
                .any(|e| e.map == Map::ServiceNodePorts && e.chain.starts_with("ext-"))
        );
    }

    #[test]
    fn each_of_n_endpoints_is_picked_one_time_in_n() {
        let endpoints: Vec<(String, u16)> = (1..=4).map(|i| (format!("10.42.0.{i}"), 80)).collect();
        let refs: Vec<(&str, u16)> = endpoints.iter().map(|(a, p)| (a.as_str(), *p)).collect();
        let r = render(&port(&refs), &settings());
        let svc = r.chains.keys().find(|c| c.starts_with("svc-")).unwrap();
        // Probability of reaching rule i and taking it: product of misses so far × 1/(n-i).
        let mut reach = 1.0f64;
        let mut shares = Vec::new();
        for rule in &r.chains[svc][1..] {
            let take = match rule {
                Rule::OneIn(n, _) => 1.0 / f64::from(*n),
                Rule::Goto(_) => 1.0,
                other => panic!("unexpected {other}"),
            };
            shares.push(reach * take);
            reach *= 1.0 - take;
        }
        assert_eq!(shares.len(), 4);
        for share in shares {
            assert!((share - 0.25).abs() < 1e-9);
        }
    }

    #[test]
    fn a_port_without_endpoints_is_rejected() {
        let r = render(&port(&[]), &settings());
        assert!(r.chains.is_empty());
        let ip = "10.43.0.20".parse().unwrap();
        assert!(r.elements.contains(&Element::new(
            Map::NoEndpointServices,
            Key::Address(ip, Protocol::Tcp, 80),
            "reject-chain"
        )));
        assert!(r.elements.contains(&Element::new(
            Map::NoEndpointNodePorts,
            Key::NodePort(Protocol::Tcp, 30080),
            "reject-chain"
        )));
    }

    #[test]
    fn keys_are_fields_padded_to_four_bytes() {
        let key = Key::Address("10.43.0.20".parse().unwrap(), Protocol::Udp, 53);
        assert_eq!(key.bytes(), [10, 43, 0, 20, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(key.to_string(), "10.43.0.20 . udp . 53");
        let key = Key::NodePort(Protocol::Tcp, 30080);
        assert_eq!(key.bytes(), [6, 0, 0, 0, 0x75, 0x80, 0, 0]);
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
        let script = script(&update(&old, &new));
        assert!(script.contains("10.42.0.6"));
        assert!(!script.contains("10.42.0.9"), "{script}");
        assert!(update(&new, &new).is_empty());
        // Removing the service removes its elements before its chains.
        let gone: BTreeMap<_, _> = [("dns".to_string(), new["dns"].clone())].into();
        let script = super::script(&update(&new, &gone));
        let element = script.find("delete element").unwrap();
        let flush = script.find("flush chain").unwrap();
        let chain = script.find("delete chain").unwrap();
        assert!(element < flush && flush < chain, "{script}");
    }

    #[test]
    fn affinity_uses_a_timeout_set_per_endpoint() {
        let mut p = port(&[("10.42.0.5", 8080)]);
        p.affinity_seconds = Some(60);
        let r = render(&p, &settings());
        let (set, timeout) = r.sets.iter().next().unwrap();
        assert_eq!(*timeout, 60);
        let svc = r.chains.keys().find(|c| c.starts_with("svc-")).unwrap();
        assert!(
            text(&r.chains[svc])
                .iter()
                .any(|rule| rule.starts_with(&format!("ip saddr @{set} goto sep-")))
        );
    }

    /// Runs `f` on a thread of its own in a new network namespace (root only).
    fn in_new_netns(f: impl FnOnce() + Send + 'static) -> bool {
        std::thread::spawn(move || {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return false;
            }
            f();
            true
        })
        .join()
        .unwrap()
    }

    fn nft(args: &[&str]) -> String {
        let out = std::process::Command::new("nft")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The kernel transaction and the `nft` text of the same commands give
    /// the same table, as `nft` lists it.
    #[test]
    fn netlink_batches_match_the_nft_text() {
        if std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: no nft");
            return;
        }
        let ran = in_new_netns(|| {
            let mut sticky = port(&[("10.42.0.5", 8080), ("10.42.0.6", 8081), ("10.42.0.7", 80)]);
            sticky.affinity_seconds = Some(300);
            sticky.external_ips = vec!["192.0.2.7".parse().unwrap()];
            let mut dns = port(&[("10.42.0.9", 53)]);
            dns.id = "kube-system/dns".into();
            dns.protocol = Protocol::Udp;
            dns.node_port = None;
            let mut empty = port(&[]);
            empty.id = "default/empty".into();
            empty.cluster_ips = vec!["10.43.0.21".parse().unwrap()];
            empty.node_port = Some(30082);
            let mut local = port(&[("10.42.0.8", 80)]);
            local.id = "default/local".into();
            local.cluster_ips = vec!["10.43.0.22".parse().unwrap()];
            local.external_local = true;
            local.external_endpoints = vec![];
            local.node_port = Some(30081);
            let mut outside = settings();
            outside.cluster_cidr = Some("10.42.0.0/16".parse().unwrap());
            let ports: BTreeMap<String, Rendered> = [
                ("a", render(&sticky, &outside)),
                ("b", render(&dns, &outside)),
                ("c", render(&empty, &outside)),
                ("d", render(&local, &outside)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            outside.masquerade_all = true;
            let mut all = ports.clone();
            let mut everyone = sticky.clone();
            everyone.id = "default/everyone".into();
            everyone.cluster_ips = vec!["10.43.0.23".parse().unwrap()];
            everyone.external_ips = vec![];
            everyone.node_port = Some(30083);
            all.insert("e".into(), render(&everyone, &outside));
            let empty_state = BTreeMap::new();
            let skeleton = format!(
                "table ip {TABLE}\ndelete table ip {TABLE}\n{}",
                super::skeleton()
            );
            // By text.
            kite_network::nft::apply(&full(&all)).unwrap();
            let by_text = nft(&["list", "table", "ip", TABLE]);
            // By netlink, onto an empty skeleton.
            kite_network::nft::apply(&skeleton).unwrap();
            batch(&update(&empty_state, &all)).commit().unwrap();
            let by_netlink = nft(&["list", "table", "ip", TABLE]);
            assert_eq!(by_text, by_netlink);
            assert!(
                by_netlink.contains("numgen random mod 3 0 goto sep-"),
                "{by_netlink}"
            );
            // An incremental change and a removal by netlink match a rebuild by text.
            let mut changed = all.clone();
            changed.remove("c");
            let mut dns2 = dns.clone();
            dns2.cluster_endpoints.push(Endpoint {
                ip: "10.42.0.10".parse().unwrap(),
                port: 53,
            });
            dns2.external_endpoints = dns2.cluster_endpoints.clone();
            changed.insert("b".into(), render(&dns2, &settings()));
            changed.remove("e");
            batch(&update(&all, &changed)).commit().unwrap();
            let incremental = nft(&["list", "table", "ip", TABLE]);
            kite_network::nft::apply(&full(&changed)).unwrap();
            // Chains are listed in creation order; compare them as a set.
            let blocks = |listing: &str| {
                let body = listing.trim_end().strip_suffix('}').unwrap_or(listing);
                let mut blocks: Vec<String> =
                    body.split("\n\n").map(|b| b.trim().to_string()).collect();
                blocks.sort();
                blocks
            };
            assert_eq!(
                blocks(&incremental),
                blocks(&nft(&["list", "table", "ip", TABLE]))
            );
            // A failing transaction says what failed and changes nothing.
            let error = batch(&[Op::AddRule("no-such-chain".into(), Rule::Mark)])
                .commit()
                .unwrap_err()
                .to_string();
            assert!(error.contains("no-such-chain"), "{error}");
        });
        if !ran {
            eprintln!("skipped: cannot make a network namespace (not root)");
        }
    }
}
