//! The Endpoints controller: the legacy `core/v1` Endpoints object, named like
//! its Service, for every Service with a selector, as kube-controller-manager's
//! `endpoint-controller` keeps it for clients that have not moved to
//! EndpointSlices.
//!
//! Ready pods go to `addresses` and the rest to `notReadyAddresses` (all to
//! `addresses` under `publishNotReadyAddresses`); terminating pods are left out
//! unless the Service publishes not-ready addresses. Addresses with the same
//! resolved ports share one subset, in a canonical order so an unchanged set of
//! pods never rewrites the object. When the Service goes, its Endpoints go too.

use crate::endpointslice::{
    HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION, hostname_for, is_headless, manages, pod_ips, pod_ref,
    resolve_port, selects, services_of_pod, should_be_endpoint, trigger_time,
};
use crate::util::is_ready;
use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kite_client::events::WARNING;
use kite_client::{Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The Endpoints controller.
pub struct Controller {
    client: kube::Client,
    services: Informer<Service>,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
    queue: WorkQueue,
    recorder: Recorder,
}

impl Controller {
    /// A controller over the shared informers.
    pub fn new(
        config: &Config,
        services: Informer<Service>,
        pods: Informer<Pod>,
        endpoints: Informer<Endpoints>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        services.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        let svcs = services.clone();
        endpoints.on_change(move |change| {
            // Someone else's edit to a managed Endpoints is undone.
            let key = key_of(&change.object().metadata);
            if svcs.get(&key).is_some_and(|s| manages(&s)) {
                q.add(&key);
            }
        });
        pods.on_change(services_of_pod(queue.clone(), services.clone()));
        Self {
            client: config.client.clone(),
            services,
            pods,
            endpoints,
            queue,
            recorder: Recorder::new(config.client.clone(), "endpoint-controller", &config.host),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.services.wait_synced().await;
        self.pods.wait_synced().await;
        self.endpoints.wait_synced().await;
        work("endpoints", self.queue.clone(), |key| self.reconcile(key)).await
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let (namespace, name) = kite_client::split_key(&key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let Some(service) = self.services.get(&key) else {
            if self.endpoints.get(&key).is_some() {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(error) => return Err(error.into()),
                }
            }
            return Ok(None);
        };
        if !manages(&service) || service.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let pods = self
            .pods
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace) && selects(&service, p));
        let subsets = desired_subsets(&service, &pods);
        let mut labels = service.metadata.labels.clone().unwrap_or_default();
        labels.remove(HEADLESS_LABEL);
        if is_headless(&service) {
            labels.insert(HEADLESS_LABEL.to_string(), String::new());
        }
        let current = self.endpoints.get(&key);
        if let Some(current) = &current
            && current.subsets.clone().unwrap_or_default() == subsets
            && current.metadata.labels.clone().unwrap_or_default() == labels
        {
            return Ok(None);
        }
        let mut endpoints = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            subsets: None,
        });
        endpoints.metadata.labels = Some(labels);
        endpoints.metadata.managed_fields = None;
        endpoints
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(
                TRIGGER_TIME_ANNOTATION.to_string(),
                trigger_time(&service, &pods),
            );
        endpoints.subsets = Some(subsets);
        let written = if current.is_some() {
            api.replace(name, &PostParams::default(), &endpoints).await
        } else {
            api.create(&PostParams::default(), &endpoints).await
        };
        match written {
            Ok(_) => Ok(None),
            // A stale cache: the retry reads the newer object.
            Err(kube::Error::Api(s)) if s.code == 409 => Err(kube::Error::Api(s).into()),
            Err(error) => {
                self.recorder.publish(
                    service.object_ref(&()),
                    WARNING,
                    "FailedToUpdateEndpoint",
                    &format!("Failed to update endpoint {key}: {error}"),
                );
                Err(error.into())
            }
        }
    }
}

/// The subsets of `service`'s Endpoints for `pods` (already filtered by its selector).
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ipv6 = spec
        .ip_families
        .as_deref()
        .and_then(<[String]>::first)
        .map(|f| f == "IPv6")
        .unwrap_or_else(|| {
            spec.cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.is_ipv6())
        });
    let service_ports = spec.ports.unwrap_or_default();
    // Port set (canonical JSON) -> (ports, ready, not ready).
    type Group = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods {
        if !should_be_endpoint(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pod_ips(pod).into_iter().find(|ip| ip.is_ipv6() == ipv6) else {
            continue;
        };
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: hostname_for(service, pod),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_ref(pod)),
        };
        let ready = tolerate_unready || is_ready(pod);
        let mut add = |ports: Vec<EndpointPort>| {
            let mut sorted = ports.clone();
            sorted.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
            let group = groups
                .entry(serde_json::to_string(&sorted).unwrap_or_default())
                .or_insert_with(|| (sorted, Vec::new(), Vec::new()));
            if ready {
                group.1.push(address.clone());
            } else {
                group.2.push(address.clone());
            }
        };
        if service_ports.is_empty() {
            // Only a headless Service lists pods without ports.
            if is_headless(service) {
                add(Vec::new());
            }
            continue;
        }
        // One subset per port, as Kubernetes builds them, merged by port set below.
        for sp in &service_ports {
            let Some(port) = resolve_port(pod, sp) else {
                continue;
            };
            add(vec![EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            }]);
        }
    }
    repack(groups.into_values().collect())
}

/// Merges subsets that hold the same addresses into one with all their ports,
/// and sorts everything, as Kubernetes' `RepackSubsets` does.
fn repack(
    groups: Vec<(
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    )>,
) -> Vec<EndpointSubset> {
    let key = |a: &EndpointAddress| {
        (
            a.ip.clone(),
            a.target_ref.as_ref().and_then(|r| r.uid.clone()),
        )
    };
    // (ip, pod uid, ready) -> the address and the ports it serves.
    type ByAddress = BTreeMap<(String, Option<String>, bool), (EndpointAddress, Vec<EndpointPort>)>;
    let mut by_address = ByAddress::new();
    for (ports, ready, not_ready) in groups {
        for (addresses, is_ready) in [(ready, true), (not_ready, false)] {
            for address in addresses {
                let (ip, uid) = key(&address);
                let entry = by_address
                    .entry((ip, uid, is_ready))
                    .or_insert_with(|| (address, Vec::new()));
                entry.1.extend(ports.iter().cloned());
            }
        }
    }
    // Port set -> addresses serving exactly that set.
    let mut subsets: BTreeMap<String, EndpointSubset> = BTreeMap::new();
    for ((_, _, ready), (address, mut ports)) in by_address {
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        ports.dedup();
        let subset = subsets
            .entry(serde_json::to_string(&ports).unwrap_or_default())
            .or_insert_with(|| EndpointSubset {
                ports: Some(ports.clone()).filter(|p| !p.is_empty()),
                ..Default::default()
            });
        let list = if ready {
            subset.addresses.get_or_insert_default()
        } else {
            subset.not_ready_addresses.get_or_insert_default()
        };
        list.push(address);
    }
    subsets.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "s1"},
            "spec": spec,
        }))
        .expect("service")
    }

    fn pod(name: &str, ip: &str, ready: bool, extra_spec: serde_json::Value) -> Arc<Pod> {
        let mut spec = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                              "ports": [{"name": "http", "containerPort": 8080}]}]});
        if let (Some(s), serde_json::Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
            s.extend(extra);
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                             "labels": {"app": "web"}},
                "spec": spec,
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
            }))
            .expect("pod"),
        )
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| a.ip.as_str())
            .collect()
    }

    #[test]
    fn ready_and_not_ready_pods_share_a_subset() {
        let svc = service(json!({"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}));
        let subsets = desired_subsets(
            &svc,
            &[
                pod("b", "10.0.0.2", false, json!({})),
                pod("a", "10.0.0.1", true, json!({})),
            ],
        );
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.2"]);
        let ports = subsets[0].ports.clone().unwrap_or_default();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), 8080)
        );
        let a = &subsets[0].addresses.as_deref().unwrap_or_default()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert_eq!(
            a.target_ref.as_ref().and_then(|r| r.name.as_deref()),
            Some("a")
        );
    }

    #[test]
    fn addresses_with_different_ports_get_their_own_subsets() {
        let svc = service(json!({"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                           {"name": "metrics", "port": 9100}]}));
        let bare = json!({"containers": [{"name": "c", "image": "busybox"}]});
        let subsets = desired_subsets(
            &svc,
            &[
                pod("a", "10.0.0.1", true, json!({})),
                pod("b", "10.0.0.2", true, bare),
            ],
        );
        let shape: Vec<(Vec<&str>, usize)> = subsets
            .iter()
            .map(|s| {
                (
                    ips(&s.addresses),
                    s.ports.as_deref().unwrap_or_default().len(),
                )
            })
            .collect();
        assert_eq!(shape, vec![(vec!["10.0.0.1"], 2), (vec!["10.0.0.2"], 1)]);
    }

    #[test]
    fn terminating_pods_are_left_out_unless_not_ready_addresses_are_published() {
        let mut gone = (*pod("a", "10.0.0.1", true, json!({}))).clone();
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let gone = Arc::new(gone);
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        assert!(desired_subsets(&svc, std::slice::from_ref(&gone)).is_empty());
        let publish = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}],
                                     "publishNotReadyAddresses": true}));
        let subsets = desired_subsets(&publish, &[gone, pod("b", "10.0.0.2", false, json!({}))]);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn headless_services_without_ports_list_pods_with_hostnames() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let named = json!({"hostname": "web-0", "subdomain": "web"});
        let subsets = desired_subsets(&svc, &[pod("a", "10.0.0.1", true, named)]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        let address = &subsets[0].addresses.as_deref().unwrap_or_default()[0];
        assert_eq!(address.hostname.as_deref(), Some("web-0"));
    }

    use k8s_openapi::jiff::Timestamp;
}
