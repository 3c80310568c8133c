//! The EndpointSlice controller: `discovery.k8s.io/v1` EndpointSlices for every
//! Service with a selector, as kube-controller-manager's `endpointslice-controller`
//! keeps them.
//!
//! Endpoints are the selected pods that have an IP and are not finished (by their
//! restart policy); terminating pods stay listed with `terminating: true` so
//! proxies can drain them. Endpoints whose named target ports resolve to the same
//! port numbers share slices, at most [`MAX_ENDPOINTS`] per slice, one group per
//! address family of the Service. A Service whose pods give no endpoint still has
//! one empty *placeholder* slice, as Kubernetes keeps one. Slices are named by the
//! API from `<service>-` and owned by their Service, so the garbage collector
//! removes them with it. The pure part (which endpoint a pod gives, how endpoints
//! group) is in [`desired_slices`]; the rest compares with the cache and writes.

use crate::util::{controller_ref, is_ready};
use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kite_client::events::WARNING;
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label marking objects of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// When the change that led to the current endpoints happened.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Endpoints per slice (kube-controller-manager's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS: usize = 100;
/// Slices created or deleted but not yet seen in the cache are waited for this long.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The EndpointSlice controller.
pub struct Controller {
    client: kube::Client,
    services: Informer<Service>,
    pods: Informer<Pod>,
    slices: Informer<EndpointSlice>,
    queue: WorkQueue,
    recorder: Recorder,
    /// Per Service key: slices written that the cache has not caught up with.
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Default)]
struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    since: Option<Instant>,
}

impl Controller {
    /// A controller over the shared informers.
    pub fn new(
        config: &Config,
        services: Informer<Service>,
        pods: Informer<Pod>,
        slices: Informer<EndpointSlice>,
    ) -> Self {
        let queue = WorkQueue::new();
        let q = queue.clone();
        services.on_change(move |change| q.add(&key_of(&change.object().metadata)));
        let q = queue.clone();
        slices.on_change(move |change| {
            let meta = &change.object().metadata;
            let labels = meta.labels.clone().unwrap_or_default();
            if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
                return;
            }
            if let Some(service) = labels.get(SERVICE_NAME_LABEL) {
                q.add(&format!(
                    "{}/{service}",
                    meta.namespace.as_deref().unwrap_or_default()
                ));
            }
        });
        pods.on_change(services_of_pod(queue.clone(), services.clone()));
        Self {
            client: config.client.clone(),
            services,
            pods,
            slices,
            queue,
            recorder: Recorder::new(
                config.client.clone(),
                "endpointslice-controller",
                &config.host,
            ),
            pending: Mutex::default(),
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.services.wait_synced().await;
        self.pods.wait_synced().await;
        self.slices.wait_synced().await;
        work("endpointslice", self.queue.clone(), |key| {
            self.reconcile(key)
        })
        .await
    }

    /// Whether the cache shows every slice this controller wrote for `key`.
    fn caught_up(&self, key: &str) -> bool {
        let mut all = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = all.get_mut(key) else {
            return true;
        };
        let (namespace, _) = kite_client::split_key(key);
        pending
            .created
            .retain(|name| self.slices.get(&format!("{namespace}/{name}")).is_none());
        pending
            .deleted
            .retain(|name| self.slices.get(&format!("{namespace}/{name}")).is_some());
        let expired = pending
            .since
            .is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (pending.created.is_empty() && pending.deleted.is_empty()) || expired {
            all.remove(key);
            return true;
        }
        false
    }

    fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut all = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = all.entry(key.to_string()).or_default();
        pending.created.extend(created);
        pending.deleted.extend(deleted);
        pending.since = Some(Instant::now());
    }

    async fn reconcile(&self, key: String) -> Result<Option<Duration>> {
        let Some(service) = self.services.get(&key) else {
            // Slices go with their Service through the garbage collector.
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            return Ok(None);
        };
        if !manages(&service) || service.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        if !self.caught_up(&key) {
            return Ok(Some(Duration::from_millis(100)));
        }
        let (namespace, name) = kite_client::split_key(&key);
        let pods = self
            .pods
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace) && selects(&service, p));
        let desired = desired_slices(&service, &pods);
        let mut existing: Vec<Arc<EndpointSlice>> = self.slices.filter(|s| {
            s.metadata.namespace.as_deref() == Some(namespace) && {
                let labels = s.metadata.labels.clone().unwrap_or_default();
                labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                    && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
            }
        });
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let labels = slice_labels(&service);
        let owner = controller_ref("v1", "Service", &service.metadata);
        let trigger = trigger_time(&service, &pods);
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);

        let mut used: HashSet<String> = HashSet::new();
        let mut created = Vec::new();
        let mut deleted = Vec::new();
        let mut result = Ok(());
        for want in &desired {
            // Reuse a slice of the same address type and ports, the closest first.
            let reuse = existing
                .iter()
                .filter(|s| {
                    !used.contains(s.metadata.name.as_deref().unwrap_or_default())
                        && s.address_type == want.address_type
                        && s.ports.clone().unwrap_or_default() == want.ports
                })
                .max_by_key(|s| shared_endpoints(s, want));
            match reuse {
                Some(slice) => {
                    used.insert(slice.metadata.name.clone().unwrap_or_default());
                    if slice_matches(slice, want, &labels, &owner) {
                        continue;
                    }
                    let mut updated = (**slice).clone();
                    let meta = &mut updated.metadata;
                    meta.labels = Some(labels.clone());
                    meta.owner_references = Some(vec![owner.clone()]);
                    meta.annotations
                        .get_or_insert_default()
                        .insert(TRIGGER_TIME_ANNOTATION.to_string(), trigger.clone());
                    meta.managed_fields = None;
                    updated.endpoints = want.endpoints.clone();
                    updated.ports = Some(want.ports.clone());
                    let slice_name = slice.metadata.name.clone().unwrap_or_default();
                    if let Err(error) = api
                        .replace(&slice_name, &PostParams::default(), &updated)
                        .await
                    {
                        result = Err(error);
                        break;
                    }
                }
                None => {
                    let slice = EndpointSlice {
                        metadata: ObjectMeta {
                            generate_name: Some(format!("{name}-")),
                            namespace: Some(namespace.to_string()),
                            labels: Some(labels.clone()),
                            annotations: Some(BTreeMap::from([(
                                TRIGGER_TIME_ANNOTATION.to_string(),
                                trigger.clone(),
                            )])),
                            owner_references: Some(vec![owner.clone()]),
                            ..Default::default()
                        },
                        address_type: want.address_type.clone(),
                        endpoints: want.endpoints.clone(),
                        ports: Some(want.ports.clone()),
                    };
                    match api.create(&PostParams::default(), &slice).await {
                        Ok(made) => created.push(made.metadata.name.unwrap_or_default()),
                        Err(error) => {
                            result = Err(error);
                            break;
                        }
                    }
                }
            }
        }
        if result.is_ok() {
            for slice in &existing {
                let slice_name = slice.metadata.name.clone().unwrap_or_default();
                if used.contains(&slice_name) {
                    continue;
                }
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: slice.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&slice_name, &params).await {
                    Ok(_) => deleted.push(slice_name),
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
        }
        self.expect(&key, created, deleted);
        if let Err(error) = result {
            // A stale cache shows as a conflict: the retry reads the newer slice.
            if !matches!(&error, kube::Error::Api(s) if s.code == 409) {
                self.recorder.publish(
                    service.object_ref(&()),
                    WARNING,
                    "FailedToUpdateEndpointSlices",
                    &format!("Error updating Endpoint Slices for Service {key}: {error}"),
                );
            }
            return Err(error.into());
        }
        Ok(None)
    }
}

/// A pod handler queueing the Services that select the pod before and after a change.
pub(crate) fn services_of_pod(
    queue: WorkQueue,
    services: Informer<Service>,
) -> impl Fn(&Change<Pod>) + Send + Sync + 'static {
    move |change| {
        let mut pods = vec![change.object().clone()];
        if let Change::Updated { old, .. } = change {
            pods.push(old.clone());
        }
        let mut keys = HashSet::new();
        for pod in &pods {
            let namespace = pod.metadata.namespace.as_deref();
            for service in services.filter(|s| {
                s.metadata.namespace.as_deref() == namespace && manages(s) && selects(s, pod)
            }) {
                keys.insert(key_of(&service.metadata));
            }
        }
        for key in keys {
            queue.add(&key);
        }
    }
}

/// Whether endpoints of `service` come from its selector (not ExternalName, not selectorless).
pub(crate) fn manages(service: &Service) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    // An empty selector means the same as none: someone else manages the endpoints.
    spec.selector.as_ref().is_some_and(|s| !s.is_empty())
        && spec.type_.as_deref() != Some("ExternalName")
}

/// Whether `service`'s selector matches `pod`'s labels.
pub(crate) fn selects(service: &Service, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether `pod` gives an endpoint at all: it has an IP, is not finished as its
/// restart policy sees it, and, unless `include_terminating`, is not being deleted.
pub(crate) fn should_be_endpoint(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ips(pod).is_empty() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => !matches!(phase, Some("Failed" | "Succeeded")),
        Some("OnFailure") => phase != Some("Succeeded"),
        _ => true,
    }
}

/// The pod's IPs, `podIPs` first, else `podIP`.
pub(crate) fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if ips.is_empty()
        && let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
    {
        ips.push(ip);
    }
    ips
}

/// The port number `service_port` reaches on `pod`: its `targetPort` as a number,
/// or the container port of that name and protocol; `None` if the pod has none.
pub(crate) fn resolve_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    match service_port.target_port.as_ref() {
        None => Some(service_port.port),
        Some(IntOrString::Int(0)) => Some(service_port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            // Sidecars (restartable init containers) serve too.
            let sidecars = spec
                .init_containers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.as_deref().unwrap_or_default())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The address families `service` serves, as EndpointSlice address types.
pub(crate) fn address_types(service: &Service) -> Vec<String> {
    let spec = service.spec.clone().unwrap_or_default();
    let families: Vec<String> = spec.ip_families.unwrap_or_default();
    if !families.is_empty() {
        return families;
    }
    match spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    {
        Some(IpAddr::V6(_)) => vec!["IPv6".to_string()],
        _ => vec!["IPv4".to_string()],
    }
}

fn family_matches(address_type: &str, ip: &IpAddr) -> bool {
    match address_type {
        "IPv6" => ip.is_ipv6(),
        _ => ip.is_ipv4(),
    }
}

/// The hostname a pod publishes through `service`: its `hostname` when its
/// `subdomain` names the Service (a headless Service gives it DNS records).
pub(crate) fn hostname_for(service: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_string())
}

/// A reference to `pod` as endpoints carry it.
pub(crate) fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// One slice's worth of desired endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSlice {
    /// `IPv4` or `IPv6`.
    pub address_type: String,
    /// The ports every endpoint in the slice serves.
    pub ports: Vec<EndpointPort>,
    /// At most [`MAX_ENDPOINTS`], sorted by address.
    pub endpoints: Vec<Endpoint>,
}

/// The slices `service` should have for `pods` (already filtered by its selector).
pub fn desired_slices(service: &Service, pods: &[Arc<Pod>]) -> Vec<DesiredSlice> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.unwrap_or_default();
    let mut slices = Vec::new();
    for address_type in address_types(service) {
        let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
        for pod in pods {
            if !should_be_endpoint(pod, true) {
                continue;
            }
            let addresses: Vec<String> = pod_ips(pod)
                .iter()
                .filter(|ip| family_matches(&address_type, ip))
                .take(1)
                .map(IpAddr::to_string)
                .collect();
            if addresses.is_empty() {
                continue;
            }
            let ports: Vec<EndpointPort> = service_ports
                .iter()
                .filter_map(|sp| {
                    Some(EndpointPort {
                        name: Some(sp.name.clone().unwrap_or_default()),
                        port: Some(resolve_port(pod, sp)?),
                        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect();
            let serving = is_ready(pod);
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let endpoint = Endpoint {
                addresses,
                conditions: Some(EndpointConditions {
                    ready: Some(publish_not_ready || (serving && !terminating)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                hostname: hostname_for(service, pod),
                node_name: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .filter(|n| !n.is_empty()),
                target_ref: Some(pod_ref(pod)),
                ..Default::default()
            };
            let group = serde_json::to_string(&ports).unwrap_or_default();
            groups
                .entry(group)
                .or_insert_with(|| (ports, Vec::new()))
                .1
                .push(endpoint);
        }
        if groups.is_empty() {
            slices.push(DesiredSlice {
                address_type,
                ports: Vec::new(),
                endpoints: Vec::new(),
            });
            continue;
        }
        for (_, (ports, mut endpoints)) in groups {
            endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
            for chunk in endpoints.chunks(MAX_ENDPOINTS) {
                slices.push(DesiredSlice {
                    address_type: address_type.clone(),
                    ports: ports.clone(),
                    endpoints: chunk.to_vec(),
                });
            }
        }
    }
    slices
}

/// The labels of `service`'s endpoint objects: its own (but not the ones the
/// controller owns), plus the Service name, the manager and `headless`.
pub(crate) fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != SERVICE_NAME_LABEL && k != MANAGED_BY_LABEL && k != HEADLESS_LABEL)
        .collect();
    labels.insert(
        SERVICE_NAME_LABEL.to_string(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels
}

/// Whether `service` is headless (`clusterIP: None`).
pub(crate) fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The time of the latest change behind the endpoints: the Service's creation
/// or a pod's creation or readiness change, as RFC 3339.
pub(crate) fn trigger_time(service: &Service, pods: &[Arc<Pod>]) -> String {
    let mut latest = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
    for pod in pods {
        let ready_change = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        latest = latest.max(ready_change).max(created);
    }
    latest.unwrap_or_else(Timestamp::now).to_string()
}

fn shared_endpoints(slice: &EndpointSlice, want: &DesiredSlice) -> usize {
    let have: HashSet<&Vec<String>> = slice.endpoints.iter().map(|e| &e.addresses).collect();
    want.endpoints
        .iter()
        .filter(|e| have.contains(&e.addresses))
        .count()
}

fn slice_matches(
    slice: &EndpointSlice,
    want: &DesiredSlice,
    labels: &BTreeMap<String, String>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> bool {
    slice.endpoints == want.endpoints
        && slice.metadata.labels.as_ref() == Some(labels)
        && slice.metadata.owner_references.as_deref() == Some(std::slice::from_ref(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "s1", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .expect("service")
    }

    fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Arc<Pod> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                     "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        });
        merge(&mut value, extra);
        Arc::new(serde_json::from_value(value).expect("pod"))
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    fn conditions(e: &Endpoint) -> (bool, bool, bool) {
        let c = e.conditions.clone().unwrap_or_default();
        (
            c.ready.unwrap_or_default(),
            c.serving.unwrap_or_default(),
            c.terminating.unwrap_or_default(),
        )
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let svc = service(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        let pods = vec![
            pod("a", "10.0.0.1", true, json!({})),
            pod("b", "10.0.0.2", false, json!({})),
            pod(
                "c",
                "10.0.0.3",
                true,
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            ),
            pod("d", "", true, json!({})),
        ];
        let slices = desired_slices(&svc, &pods);
        assert_eq!(slices.len(), 1);
        let got: Vec<_> = slices[0]
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].clone(), conditions(e)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".to_string(), (true, true, false)),
                ("10.0.0.2".to_string(), (false, false, false)),
                ("10.0.0.3".to_string(), (false, true, true)),
            ]
        );
        assert_eq!(slices[0].ports[0].port, Some(8080));
        assert_eq!(slices[0].endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            slices[0].endpoints[0]
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref()),
            Some("a")
        );
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let svc = service(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                                 "ports": [{"port": 80}]}),
        );
        let slices = desired_slices(&svc, &[pod("b", "10.0.0.2", false, json!({}))]);
        assert_eq!(conditions(&slices[0].endpoints[0]), (true, false, false));
    }

    #[test]
    fn finished_pods_leave_by_restart_policy() {
        let done = json!({"spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}});
        assert!(!should_be_endpoint(&pod("a", "10.0.0.1", true, done), true));
        let failed = json!({"spec": {"restartPolicy": "OnFailure"}, "status": {"phase": "Failed"}});
        assert!(should_be_endpoint(
            &pod("a", "10.0.0.1", true, failed),
            true
        ));
        let always = json!({"status": {"phase": "Failed"}});
        assert!(should_be_endpoint(
            &pod("a", "10.0.0.1", true, always),
            true
        ));
    }

    #[test]
    fn pods_without_the_named_port_go_to_their_own_slice() {
        let svc = service(json!({"selector": {"app": "web"},
                                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                           {"name": "raw", "port": 81, "targetPort": 9000}]}));
        let other = json!({"spec": {"containers": [{"name": "c", "image": "busybox",
                           "ports": [{"name": "http", "containerPort": 9090}]}]}});
        let bare = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let slices = desired_slices(
            &svc,
            &[
                pod("a", "10.0.0.1", true, json!({})),
                pod("b", "10.0.0.2", true, other),
                pod("c", "10.0.0.3", true, bare),
            ],
        );
        let mut ports: Vec<Vec<Option<i32>>> = slices
            .iter()
            .map(|s| s.ports.iter().map(|p| p.port).collect())
            .collect();
        ports.sort();
        assert_eq!(
            ports,
            vec![
                vec![Some(8080), Some(9000)],
                vec![Some(9000)],
                vec![Some(9090), Some(9000)]
            ]
        );
    }

    #[test]
    fn hostnames_are_published_to_the_subdomain_service() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let named = json!({"spec": {"hostname": "web-0", "subdomain": "web"}});
        let elsewhere = json!({"spec": {"hostname": "web-1", "subdomain": "other"}});
        let slices = desired_slices(
            &svc,
            &[
                pod("a", "10.0.0.1", true, named),
                pod("b", "10.0.0.2", true, elsewhere),
            ],
        );
        let hosts: Vec<_> = slices[0]
            .endpoints
            .iter()
            .map(|e| e.hostname.clone())
            .collect();
        assert_eq!(hosts, vec![Some("web-0".to_string()), None]);
        assert_eq!(
            slice_labels(&svc).get(HEADLESS_LABEL).map(String::as_str),
            Some("")
        );
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder_slice() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let slices = desired_slices(&svc, &[]);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty() && slices[0].ports.is_empty());
        assert_eq!(slices[0].address_type, "IPv4");
    }

    #[test]
    fn large_services_split_into_slices_of_at_most_a_hundred() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    json!({}),
                )
            })
            .collect();
        let sizes: Vec<usize> = desired_slices(&svc, &pods)
            .iter()
            .map(|s| s.endpoints.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }

    #[test]
    fn selectorless_and_external_name_services_are_left_alone() {
        assert!(!manages(&service(json!({"ports": [{"port": 80}]}))));
        assert!(!manages(&service(
            json!({"type": "ExternalName", "selector": {"a": "b"}})
        )));
        assert!(!manages(&service(json!({"selector": {}}))));
        assert!(manages(&service(json!({"selector": {"app": "web"}}))));
    }
}
