//! ClusterIP and NodePort allocation for Services.
//!
//! The allocated values live only in the Services themselves, so restarts
//! cannot hand out duplicates: the used set is read back from the store under
//! a lock held until the new Service is written. Reading every Service for
//! every create would make creating n Services cost n² reads, so the set read
//! is kept, with everything handed out since, and read again every
//! [`REREAD`] (to see releases) or whenever it refuses a request: a kept set
//! holds at least what is in use, so what it calls free is free.

use crate::errors::ApiResult;
use crate::objects;
use ipnet::IpNet;
use kite_api::FieldError;
use kite_api::validation::invalid_status;
use kite_store::Backend;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a used set read from the store is trusted for free values.
pub const REREAD: Duration = Duration::from_secs(30);

/// The Service networks: `--service-cidr` and `--service-node-port-range`.
#[derive(Clone, Debug)]
pub struct ServiceNetwork {
    /// Where ClusterIPs come from.
    pub cidr: IpNet,
    /// First NodePort.
    pub node_port_first: u16,
    /// Last NodePort (inclusive).
    pub node_port_last: u16,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        Self {
            cidr: "10.43.0.0/16"
                .parse()
                .unwrap_or_else(|_| IpNet::V4(ipnet::Ipv4Net::default())),
            node_port_first: 30000,
            node_port_last: 32767,
        }
    }
}

/// Serialises Service allocation with the write that records it.
#[derive(Debug, Default)]
pub struct Allocator {
    /// Held from reading the used set until the Service is stored.
    pub lock: tokio::sync::Mutex<()>,
    /// The networks allocated from.
    pub network: ServiceNetwork,
    /// The used set last read, plus what was allocated since.
    known: Mutex<Option<Known>>,
}

/// ClusterIPs and NodePorts in use (or allocated moments ago).
#[derive(Debug)]
struct Known {
    ips: HashSet<IpAddr>,
    ports: HashSet<i64>,
    read_at: Instant,
}

fn used(services: &[Value]) -> (HashSet<IpAddr>, HashSet<i64>) {
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for svc in services {
        for ip in svc
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse().ok()) {
                ips.insert(ip);
            }
        }
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            ips.insert(ip);
        }
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = port.get("nodePort").and_then(Value::as_i64) {
                ports.insert(p);
            }
        }
        if let Some(p) = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
        {
            ports.insert(p);
        }
    }
    (ips, ports)
}

/// What the stored Services use.
async fn read_used(store: &dyn Backend, prefix: &str) -> ApiResult<Known> {
    let listed = store
        .list(prefix, None, 0, 0)
        .await
        .map_err(crate::errors::from_store)?;
    let existing: Vec<Value> = listed
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    let (ips, ports) = used(&existing);
    Ok(Known {
        ips,
        ports,
        read_at: Instant::now(),
    })
}

impl Allocator {
    /// Fills in the ClusterIP and NodePorts a new Service needs, checking requested ones.
    /// Call with `lock` held.
    pub async fn allocate(
        &self,
        store: &dyn Backend,
        prefix: &str,
        svc: &mut Value,
    ) -> ApiResult<()> {
        let kept = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|k| k.read_at.elapsed() < REREAD);
        let original = svc.clone();
        let (mut known, fresh) = match kept {
            Some(known) => (known, false),
            None => (read_used(store, prefix).await?, true),
        };
        let mut result = self.assign(svc, &mut known.ips, &mut known.ports);
        if result.is_err() && !fresh {
            // The kept set may still hold a released value: ask the store.
            *svc = original;
            known = read_used(store, prefix).await?;
            result = self.assign(svc, &mut known.ips, &mut known.ports);
        }
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = Some(known);
        result
    }

    /// Fills in `svc` from the used sets, adding what it takes to them.
    fn assign(
        &self,
        svc: &mut Value,
        used_ips: &mut HashSet<IpAddr>,
        taken: &mut HashSet<i64>,
    ) -> ApiResult<()> {
        let name = objects::name(svc).to_string();
        let invalid = |e: FieldError| invalid_status("", "Service", &name, &[e]);
        let needs = kite_api::defaults::service_allocations(svc);

        if let Some(requested) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && *s != "None")
        {
            let ip: IpAddr = requested.parse().map_err(|_| {
                invalid(FieldError::invalid(
                    "spec.clusterIP",
                    requested,
                    "must be a valid IP address",
                ))
            })?;
            if !self.network.cidr.contains(&ip) {
                return Err(invalid(FieldError::invalid(
                    "spec.clusterIPs",
                    requested,
                    format!(
                        "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                        self.network.cidr
                    ),
                )));
            }
            if used_ips.contains(&ip) {
                return Err(invalid(FieldError::invalid(
                    "spec.clusterIPs",
                    requested,
                    format!("failed to allocate IP {requested}: provided IP is already allocated"),
                )));
            }
            used_ips.insert(ip);
            svc["spec"]["clusterIPs"] = json!([requested]);
        } else if needs.cluster_ip {
            let ip = self.free_ip(used_ips).ok_or_else(|| {
                invalid(FieldError::internal(
                    "spec.clusterIPs",
                    format!(
                        "failed to allocate a serviceIP: range is full ({})",
                        self.network.cidr
                    ),
                ))
            })?;
            used_ips.insert(ip);
            svc["spec"]["clusterIP"] = json!(ip.to_string());
            svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }

        let span = (self.network.node_port_first, self.network.node_port_last);
        if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for (i, port) in ports.iter_mut().enumerate() {
                if let Some(requested) = port
                    .get("nodePort")
                    .and_then(Value::as_i64)
                    .filter(|p| *p != 0)
                {
                    if requested < i64::from(span.0) || requested > i64::from(span.1) {
                        return Err(invalid(FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            requested,
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                span.0, span.1
                            ),
                        )));
                    }
                    if !taken.insert(requested) {
                        return Err(invalid(FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            requested,
                            "provided port is already allocated",
                        )));
                    }
                } else if needs.node_ports.contains(&i) {
                    let port_number = free_port(taken, span).ok_or_else(|| {
                        invalid(FieldError::internal(
                            format!("spec.ports[{i}].nodePort"),
                            "range is full",
                        ))
                    })?;
                    taken.insert(port_number);
                    port["nodePort"] = json!(port_number);
                }
            }
        }
        if needs.health_check_node_port
            && svc.pointer("/spec/healthCheckNodePort").is_none()
            && let Some(p) = free_port(taken, span)
        {
            taken.insert(p);
            svc["spec"]["healthCheckNodePort"] = json!(p);
        }
        let family = if self.network.cidr.addr().is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        kite_api::defaults::service_ip_families(svc, &[family]);
        Ok(())
    }

    fn free_ip(&self, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        let hosts: Vec<IpAddr> = self.network.cidr.hosts().take(1 << 16).collect();
        if hosts.len() < 2 {
            return None;
        }
        // The first address is the API service. As kube-apiserver's static
        // subrange, dynamic allocation takes the lowest min(max(16, n/16), 256)
        // addresses only when the rest is full, so fixed ones requested there
        // (the cluster DNS, 10.43.0.10) stay free.
        let pool = &hosts[1..];
        let band = (hosts.len() / 16).clamp(16, 256).min(pool.len());
        let (low, high) = pool.split_at(band);
        random_free(high, used).or_else(|| random_free(low, used))
    }
}

/// A free address of `pool`, probing from a random start.
fn random_free(pool: &[IpAddr], used: &HashSet<IpAddr>) -> Option<IpAddr> {
    if pool.is_empty() {
        return None;
    }
    let start = rand::random_range(0..pool.len());
    (0..pool.len())
        .map(|i| pool[(start + i) % pool.len()])
        .find(|ip| !used.contains(ip))
}

fn free_port(taken: &HashSet<i64>, (first, last): (u16, u16)) -> Option<i64> {
    let size = i64::from(last) - i64::from(first) + 1;
    let start = rand::random_range(0..size);
    (0..size)
        .map(|i| i64::from(first) + (start + i) % size)
        .find(|p| !taken.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn allocator(cidr: &str) -> Allocator {
        Allocator {
            network: ServiceNetwork {
                cidr: cidr.parse().expect("cidr"),
                ..ServiceNetwork::default()
            },
            ..Allocator::default()
        }
    }

    #[test]
    fn dynamic_ips_keep_clear_of_the_low_static_band_until_the_rest_is_full() {
        let a = allocator("10.43.0.0/16");
        for _ in 0..500 {
            let ip = a.free_ip(&HashSet::new()).expect("ip");
            assert!(
                !"10.43.0.0/24".parse::<IpNet>().expect("net").contains(&ip),
                "{ip}"
            );
        }
        // A /27: the band is 16 addresses; once the upper 14 are used, the band is used.
        let small = allocator("10.0.0.0/27");
        let hosts: Vec<IpAddr> = small.network.cidr.hosts().collect();
        let used: HashSet<IpAddr> = hosts[17..].iter().copied().collect();
        let ip = small.free_ip(&used).expect("ip");
        assert!(hosts[1..17].contains(&ip), "{ip}");
        let all: HashSet<IpAddr> = hosts.iter().copied().collect();
        assert_eq!(small.free_ip(&all), None);
    }

    fn service(name: &str, cluster_ip: Option<&str>) -> Value {
        let mut spec = json!({"ports": [{"port": 80}]});
        if let Some(ip) = cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    #[tokio::test]
    async fn the_kept_set_never_hands_out_a_used_ip_and_a_released_one_can_be_asked_for_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            kite_store::SqliteBackend::open(&dir.path().join("state.db"), Default::default())
                .expect("store");
        let prefix = "/registry/services/specs/";
        let a = allocator("10.43.0.0/27");
        let mut taken = HashSet::new();
        // Fill most of the range; each create sees the ones before it without
        // reading the store (the store only learns of them here).
        for i in 0..20 {
            let mut svc = service(&format!("s{i}"), None);
            a.allocate(&store, prefix, &mut svc)
                .await
                .expect("allocate");
            let ip = svc["spec"]["clusterIP"].as_str().expect("ip").to_string();
            assert!(taken.insert(ip.clone()), "{ip} handed out twice");
            let key = format!("{prefix}default/s{i}");
            store
                .create(
                    &key,
                    Bytes::from(serde_json::to_vec(&svc).expect("json")),
                    0,
                )
                .await
                .expect("create");
        }
        // Delete one: asking for its address refuses from the kept set, then
        // the store is read and the request succeeds.
        let released = {
            let (_, kv) = store
                .get(&format!("{prefix}default/s3"), 0)
                .await
                .expect("get");
            let svc: Value = serde_json::from_slice(&kv.expect("s3").value).expect("json");
            svc["spec"]["clusterIP"].as_str().expect("ip").to_string()
        };
        store
            .delete(&format!("{prefix}default/s3"), None)
            .await
            .expect("delete");
        let mut again = service("again", Some(&released));
        a.allocate(&store, prefix, &mut again)
            .await
            .expect("released ip");
        // A used one is still refused.
        let used = taken.iter().find(|ip| **ip != released).expect("used");
        let mut clash = service("clash", Some(used));
        assert!(a.allocate(&store, prefix, &mut clash).await.is_err());
    }
}
