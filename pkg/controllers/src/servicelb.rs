//! ServiceLB: Services of type LoadBalancer get the nodes' addresses as their
//! `status.loadBalancer.ingress`, like k3s's ServiceLB (klipper-lb) but with
//! no helper pods: the service proxy already answers on every ingress IP, so
//! publishing the addresses is all a node-address load balancer needs.
//!
//! As in k3s, an address is an ExternalIP when the node has one, else its
//! InternalIP, of Ready nodes only; a Service whose port a LoadBalancer
//! Service created earlier already holds stays pending (no ingress) with a
//! `SyncLoadBalancerFailed` event, since both cannot answer on one address.
//! Services with a `loadBalancerClass` belong to another implementation.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The ServiceLB controller.
pub struct Controller {
    client: kube::Client,
    services: Informer<Service>,
    nodes: Informer<Node>,
    queue: WorkQueue,
    recorder: Recorder,
}

/// A port a LoadBalancer Service answers on at the node addresses.
type Claim = (String, i32);

/// Whether kite balances this Service.
pub fn is_ours(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
    })
}

/// The address each Ready node offers: ExternalIPs if it has any, else InternalIPs.
pub fn node_addresses(nodes: &[Arc<Node>]) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for node in nodes {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let Some(addresses) = node.status.as_ref().and_then(|s| s.addresses.as_ref()) else {
            continue;
        };
        if !ready {
            continue;
        }
        let of_type = |kind: &str| -> Vec<IpAddr> {
            addresses
                .iter()
                .filter(|a| a.type_ == kind)
                .filter_map(|a| a.address.parse().ok())
                .collect()
        };
        let external = of_type("ExternalIP");
        out.extend(if external.is_empty() {
            of_type("InternalIP")
        } else {
            external
        });
    }
    out
}

fn claims(service: &Service) -> Vec<Claim> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
                .collect()
        })
        .unwrap_or_default()
}

/// Which Service holds each port: the oldest (then by namespace/name) wins.
pub fn port_holders(services: &[Arc<Service>]) -> BTreeMap<Claim, String> {
    let mut ours: Vec<&Arc<Service>> = services
        .iter()
        .filter(|s| is_ours(s) && s.metadata.deletion_timestamp.is_none())
        .collect();
    ours.sort_by_key(|s| (s.metadata.creation_timestamp.clone(), key_of(&s.metadata)));
    let mut holders = BTreeMap::new();
    for service in ours {
        let key = key_of(&service.metadata);
        let wanted = claims(service);
        // A Service gets all its ports or none, so it is never half reachable.
        if wanted.iter().all(|c| !holders.contains_key(c)) {
            for claim in wanted {
                holders.insert(claim, key.clone());
            }
        }
    }
    holders
}

/// The ingress a Service should show, or the reason it gets none.
pub fn desired(
    service: &Service,
    holders: &BTreeMap<Claim, String>,
    addresses: &BTreeSet<IpAddr>,
) -> std::result::Result<Vec<IpAddr>, String> {
    if !is_ours(service) {
        return Ok(Vec::new());
    }
    let key = key_of(&service.metadata);
    for claim in claims(service) {
        if let Some(holder) = holders.get(&claim)
            && *holder != key
        {
            return Err(format!(
                "port {}/{} is already used by LoadBalancer service {holder}",
                claim.1, claim.0
            ));
        }
    }
    let families: Vec<String> = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_else(|| vec!["IPv4".into()]);
    Ok(addresses
        .iter()
        .filter(|ip| {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            families.iter().any(|f| f == family)
        })
        .copied()
        .collect())
}

fn current(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i: &LoadBalancerIngress| i.ip.as_deref())
                .filter_map(|ip| ip.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Controller {
    /// A controller over the shared Service and Node informers.
    pub fn new(config: &Config, services: Informer<Service>, nodes: Informer<Node>) -> Self {
        let queue = WorkQueue::new();
        {
            // Any LoadBalancer change can free or take a port another one waits for.
            let (q, services2) = (queue.clone(), services.clone());
            services.on_change(move |change| {
                q.add(&key_of(&change.object().metadata));
                for other in services2.list() {
                    if is_ours(&other) {
                        q.add(&key_of(&other.metadata));
                    }
                }
            });
        }
        {
            let (q, services2) = (queue.clone(), services.clone());
            nodes.on_change(move |_| {
                for service in services2.list() {
                    if is_ours(&service) {
                        q.add(&key_of(&service.metadata));
                    }
                }
            });
        }
        Self {
            client: config.client.clone(),
            services,
            nodes,
            queue,
            recorder: Recorder::new(config.client.clone(), "service-lb-controller", &config.host),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.services.wait_synced().await;
        self.nodes.wait_synced().await;
        work("servicelb", self.queue.clone(), |key| self.reconcile(key)).await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(service) = self.services.get(&key) else {
            return Ok(None);
        };
        let foreign = service
            .spec
            .as_ref()
            .is_some_and(|s| s.load_balancer_class.is_some());
        if foreign {
            return Ok(None);
        }
        let services = self.services.list();
        let holders = port_holders(&services);
        let addresses = node_addresses(&self.nodes.list());
        let want = match desired(&service, &holders, &addresses) {
            Ok(want) => want,
            Err(why) => {
                if !current(&service).is_empty() {
                    self.write(&service, &[]).await?;
                }
                self.recorder.publish(
                    service.object_ref(&()),
                    WARNING,
                    "SyncLoadBalancerFailed",
                    &format!("Error syncing load balancer: {why}"),
                );
                return Ok(None);
            }
        };
        let have = current(&service);
        if have == want {
            return Ok(None);
        }
        self.write(&service, &want).await?;
        if is_ours(&service) {
            self.recorder.publish(
                service.object_ref(&()),
                NORMAL,
                "UpdatedLoadBalancer",
                &format!("Updated LoadBalancer with new IPs: {have:?} -> {want:?}"),
            );
        }
        Ok(None)
    }

    async fn write(&self, service: &Service, ingress: &[IpAddr]) -> Result<()> {
        let key = key_of(&service.metadata);
        let (namespace, name) = kite_client::split_key(&key);
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let ingress: Vec<_> = ingress
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, created: &str, kind: &str, ports: &[(&str, i32)]) -> Arc<Service> {
        let ports: Vec<_> = ports
            .iter()
            .map(|(proto, port)| json!({"protocol": proto, "port": port}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "spec": {"type": kind, "ports": ports, "ipFamilies": ["IPv4"]},
            }))
            .expect("service"),
        )
    }

    fn node(ready: &str, addresses: &[(&str, &str)]) -> Arc<Node> {
        let addresses: Vec<_> = addresses
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": ready}], "addresses": addresses},
            }))
            .expect("node"),
        )
    }

    #[test]
    fn ready_nodes_offer_external_addresses_before_internal_ones() {
        let nodes = [
            node("True", &[("InternalIP", "10.0.0.1"), ("Hostname", "a")]),
            node(
                "True",
                &[("InternalIP", "10.0.0.2"), ("ExternalIP", "203.0.113.2")],
            ),
            node("False", &[("InternalIP", "10.0.0.3")]),
        ];
        let got: Vec<String> = node_addresses(&nodes)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.1", "203.0.113.2"]);
    }

    #[test]
    fn the_oldest_service_holds_a_port_and_the_next_one_waits() {
        let old = service(
            "old",
            "2026-01-01T00:00:00Z",
            "LoadBalancer",
            &[("TCP", 80)],
        );
        let new = service(
            "new",
            "2026-01-02T00:00:00Z",
            "LoadBalancer",
            &[("TCP", 80), ("TCP", 8080)],
        );
        let udp = service(
            "udp",
            "2026-01-03T00:00:00Z",
            "LoadBalancer",
            &[("UDP", 80)],
        );
        let cluster = service("plain", "2025-01-01T00:00:00Z", "ClusterIP", &[("TCP", 80)]);
        let all = [old.clone(), new.clone(), udp.clone(), cluster.clone()];
        let holders = port_holders(&all);
        let addresses: BTreeSet<IpAddr> = ["192.0.2.10".parse().expect("ip")].into();
        assert_eq!(
            desired(&old, &holders, &addresses),
            Ok(vec!["192.0.2.10".parse().expect("ip")])
        );
        assert_eq!(
            desired(&new, &holders, &addresses),
            Err("port 80/TCP is already used by LoadBalancer service default/old".into())
        );
        // The waiting service took none of its ports: 8080 stays free.
        assert!(!holders.contains_key(&("TCP".to_string(), 8080)));
        assert!(desired(&udp, &holders, &addresses).is_ok_and(|a| a.len() == 1));
        assert_eq!(desired(&cluster, &holders, &addresses), Ok(vec![]));
        // Once the old one goes, the new one gets the port.
        let holders = port_holders(&[new.clone(), udp]);
        assert!(desired(&new, &holders, &addresses).is_ok_and(|a| a.len() == 1));
    }

    #[test]
    fn another_load_balancer_class_is_left_alone() {
        let mut svc =
            (*service("x", "2026-01-01T00:00:00Z", "LoadBalancer", &[("TCP", 1)])).clone();
        svc.spec.as_mut().expect("spec").load_balancer_class = Some("example.com/lb".into());
        assert!(!is_ours(&svc));
    }
}
