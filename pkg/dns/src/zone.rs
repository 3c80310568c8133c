//! The cluster zone: Services and EndpointSlices become a map of names to
//! records, and [`Zone::lookup`] answers a question from it, following the
//! Kubernetes DNS-based service discovery specification (schema 1.1.0):
//!
//! - `<svc>.<ns>.svc.<zone>`: A/AAAA of the ClusterIP; for headless Services
//!   one per ready endpoint address; CNAME to `externalName` for ExternalName.
//! - `<host>.<svc>.<ns>.svc.<zone>` for endpoints of headless Services (the
//!   endpoint's `hostname`, else its address with dashes, as CoreDNS does).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for named ports.
//! - PTR for ClusterIPs and headless endpoint addresses.
//! - `<a-b-c-d>.<ns>.pod.<zone>` A, `dns-version.<zone>` TXT.
//!
//! A name that exists with other types answers NOERROR without records
//! (NODATA); a name under the zone that does not exist at all is NXDOMAIN.
//! Both carry the zone's SOA so resolvers cache the negative answer.

use crate::wire::{Query, Rdata, Record, Response, rcode, rtype};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL of every cluster record (CoreDNS's default).
pub const TTL: u32 = 5;
/// The schema version `dns-version.<zone>` reports.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// Where a name belongs.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answered from the cluster zone.
    Local(Response),
    /// Not ours: forward it upstream.
    Forward,
}

/// The records of the cluster domain and the reverse names kite knows.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    domain: String,
    records: HashMap<String, Vec<Rdata>>,
    /// Names that own no records but have names below them (empty non-terminals).
    parents: HashSet<String>,
    serial: u32,
}

impl Zone {
    /// The zone for `domain` (such as `cluster.local`) from the API objects;
    /// `dns_ip` is the cluster DNS address (for the zone's NS record).
    pub fn build(
        domain: &str,
        dns_ip: Option<IpAddr>,
        services: &[impl AsRef<Service>],
        slices: &[impl AsRef<EndpointSlice>],
        serial: u32,
    ) -> Self {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut zone = Zone {
            domain: domain.clone(),
            serial,
            ..Default::default()
        };
        zone.add(&domain, zone.soa());
        let ns_name = format!("ns.dns.{domain}");
        zone.add(&domain, Rdata::Ns(ns_name.clone()));
        match dns_ip {
            Some(IpAddr::V4(ip)) => zone.add(&ns_name, Rdata::A(ip)),
            Some(IpAddr::V6(ip)) => zone.add(&ns_name, Rdata::Aaaa(ip)),
            None => {}
        }
        zone.add(
            &format!("dns-version.{domain}"),
            Rdata::Txt(SCHEMA_VERSION.to_string()),
        );
        zone.parents.insert(format!("svc.{domain}"));
        zone.parents.insert(format!("pod.{domain}"));

        let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let slice = slice.as_ref();
            let labels = slice.metadata.labels.as_ref();
            let (Some(ns), Some(svc)) = (
                slice.metadata.namespace.as_ref(),
                labels.and_then(|l| l.get("kubernetes.io/service-name")),
            ) else {
                continue;
            };
            by_service
                .entry((ns.clone(), svc.clone()))
                .or_default()
                .push(slice);
        }
        for svc in services {
            let svc = svc.as_ref();
            let (Some(ns), Some(name), Some(spec)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
                svc.spec.as_ref(),
            ) else {
                continue;
            };
            let base = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
            zone.parents
                .insert(format!("{ns}.svc.{domain}").to_ascii_lowercase());
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = &spec.external_name {
                    zone.add(
                        &base,
                        Rdata::Cname(target.trim_end_matches('.').to_string()),
                    );
                }
                continue;
            }
            let cluster_ips: Vec<IpAddr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let headless = spec.cluster_ip.as_deref() == Some("None") || cluster_ips.is_empty();
            // The service name exists even while it has no addresses.
            zone.parents.insert(base.clone());
            let ports = spec.ports.iter().flatten();
            if !headless {
                for ip in &cluster_ips {
                    zone.add(&base, address(*ip));
                    zone.add(&reverse_name(*ip), Rdata::Ptr(base.clone()));
                }
                for port in ports {
                    let (Some(port_name), Ok(number)) =
                        (port.name.as_deref(), u16::try_from(port.port))
                    else {
                        continue;
                    };
                    let proto = port.protocol.as_deref().unwrap_or("TCP");
                    zone.add(
                        &srv_name(port_name, proto, &base),
                        Rdata::Srv {
                            priority: 0,
                            weight: 100,
                            port: number,
                            target: base.clone(),
                        },
                    );
                }
                continue;
            }
            let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
            let key = (ns.to_string(), name.to_string());
            for slice in by_service.get(&key).into_iter().flatten() {
                for endpoint in &slice.endpoints {
                    let ready = endpoint
                        .conditions
                        .as_ref()
                        .and_then(|c| c.ready)
                        .unwrap_or(true);
                    if !ready && !publish_not_ready {
                        continue;
                    }
                    for ip in endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse::<IpAddr>().ok())
                    {
                        let host = endpoint
                            .hostname
                            .clone()
                            .unwrap_or_else(|| dashed(ip))
                            .to_ascii_lowercase();
                        let host_name = format!("{host}.{base}");
                        zone.add(&base, address(ip));
                        zone.add(&host_name, address(ip));
                        zone.add(&reverse_name(ip), Rdata::Ptr(host_name.clone()));
                        for port in slice.ports.iter().flatten() {
                            let (Some(port_name), Some(Ok(number))) =
                                (port.name.as_deref(), port.port.map(u16::try_from))
                            else {
                                continue;
                            };
                            if port_name.is_empty() {
                                continue;
                            }
                            let proto = port.protocol.as_deref().unwrap_or("TCP");
                            zone.add(
                                &srv_name(port_name, proto, &base),
                                Rdata::Srv {
                                    priority: 0,
                                    weight: 100,
                                    port: number,
                                    target: host_name.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
        // Every ancestor of a name inside the zone exists.
        let names: Vec<String> = zone
            .records
            .keys()
            .chain(zone.parents.iter())
            .cloned()
            .collect();
        for name in names {
            if !zone.contains(&name) {
                continue;
            }
            let mut rest = name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() < zone.domain.len() {
                    break;
                }
                zone.parents.insert(parent.to_string());
                rest = parent;
            }
        }
        zone
    }

    fn soa(&self) -> Rdata {
        Rdata::Soa {
            mname: format!("ns.dns.{}", self.domain),
            rname: format!("hostmaster.{}", self.domain),
            serial: self.serial,
            minimum: TTL,
        }
    }

    fn add(&mut self, name: &str, data: Rdata) {
        let list = self.records.entry(name.to_ascii_lowercase()).or_default();
        if !list.contains(&data) {
            list.push(data);
        }
    }

    /// Whether `name` (lower case) is in the cluster domain.
    fn contains(&self, name: &str) -> bool {
        name == self.domain || name.ends_with(&format!(".{}", self.domain))
    }

    /// Answers a query for the cluster domain or a reverse name kite knows;
    /// anything else is for the upstream resolvers.
    pub fn lookup(&self, query: &Query) -> Answer {
        let name = query.name.trim_end_matches('.').to_ascii_lowercase();
        let reverse = name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa");
        let known_reverse = reverse && self.records.contains_key(&name);
        if !self.contains(&name) && !known_reverse {
            return Answer::Forward;
        }
        let mut response = Response {
            authoritative: true,
            ..Default::default()
        };
        if query.qclass != crate::wire::CLASS_IN && query.qclass != 255 {
            response.rcode = rcode::REFUSED;
            return Answer::Local(response);
        }
        let records = self
            .records
            .get(&name)
            .cloned()
            .or_else(|| self.pod_record(&name).map(|r| vec![r]));
        match records {
            Some(records) => {
                let cname = records.iter().find(|r| matches!(r, Rdata::Cname(_)));
                let chosen: Vec<Rdata> = match cname {
                    // An alias answers every type with itself.
                    Some(alias) => vec![alias.clone()],
                    None => records
                        .into_iter()
                        .filter(|r| query.qtype == rtype::ANY || r.rtype() == query.qtype)
                        .collect(),
                };
                for data in chosen {
                    if let Rdata::Srv { target, .. } = &data {
                        for glue in self.records.get(target).into_iter().flatten() {
                            if matches!(glue, Rdata::A(_) | Rdata::Aaaa(_)) {
                                response.additional.push(Record {
                                    name: Some(target.clone()),
                                    ttl: TTL,
                                    data: glue.clone(),
                                });
                            }
                        }
                    }
                    response.answers.push(Record {
                        name: None,
                        ttl: TTL,
                        data,
                    });
                }
            }
            None if self.parents.contains(&name) => {}
            None => response.rcode = rcode::NXDOMAIN,
        }
        if response.answers.is_empty() {
            response.authority.push(Record {
                name: Some(self.domain.clone()),
                ttl: TTL,
                data: self.soa(),
            });
        }
        Answer::Local(response)
    }

    /// `<a-b-c-d>.<ns>.pod.<zone>`: the address written in the name, for
    /// any namespace (as CoreDNS's `pods insecure`).
    fn pod_record(&self, name: &str) -> Option<Rdata> {
        let rest = name.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (host, ns) = rest.split_once('.')?;
        if ns.is_empty() || ns.contains('.') {
            return None;
        }
        let ip: Ipv4Addr = host.replace('-', ".").parse().ok()?;
        Some(Rdata::A(ip))
    }
}

fn address(ip: IpAddr) -> Rdata {
    match ip {
        IpAddr::V4(ip) => Rdata::A(ip),
        IpAddr::V6(ip) => Rdata::Aaaa(ip),
    }
}

fn srv_name(port: &str, proto: &str, base: &str) -> String {
    format!("_{}._{}.{base}", port, proto).to_ascii_lowercase()
}

/// An address with dashes for dots (or colons), as a DNS label.
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        IpAddr::V6(ip) => ip.to_string().replace(':', "-"),
    }
}

/// The `in-addr.arpa` / `ip6.arpa` name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(ip) => v6_reverse(ip),
    }
}

fn v6_reverse(ip: Ipv6Addr) -> String {
    let mut out = String::new();
    for byte in ip.octets().iter().rev() {
        out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
    }
    out.push_str("ip6.arpa");
    out
}

#[cfg(test)]
mod tests;
