//! Service ports → their ready endpoints (from EndpointSlices), and
//! round-robin over them.
//!
//! A backend names a Service port by number or name; the Service says which
//! port name that is, and the slices labelled with the Service's name give
//! each ready address and the number that name has on the endpoints (the
//! target port, resolved by the EndpointSlice controller).

use crate::routes::{Backend, ServicePort};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The ready endpoints of one Service port, with a round-robin cursor.
#[derive(Debug, Default)]
pub struct Endpoints {
    addresses: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Endpoints {
    /// Every ready address.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The addresses in the order this request should try them: each
    /// request starts one further along, and the rest follow in turn (the
    /// next endpoint on a refused connection).
    pub fn attempt_order(&self) -> Vec<SocketAddr> {
        let n = self.addresses.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|i| self.addresses[(start + i) % n]).collect()
    }
}

/// Every backend's endpoints.
#[derive(Debug, Default)]
pub struct Backends {
    by_backend: HashMap<Backend, Arc<Endpoints>>,
}

impl Backends {
    /// Resolves `backends` against the cluster's Services and slices.
    pub fn build(
        backends: &[Arc<Backend>],
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> Self {
        let services: HashMap<(&str, &str), &Service> = services
            .iter()
            .filter_map(|s| {
                Some((
                    (
                        s.metadata.namespace.as_deref()?,
                        s.metadata.name.as_deref()?,
                    ),
                    s.as_ref(),
                ))
            })
            .collect();
        let mut by_backend = HashMap::new();
        for backend in backends {
            let addresses =
                match services.get(&(backend.namespace.as_str(), backend.service.as_str())) {
                    Some(service) => resolve(backend, service, slices),
                    None => Vec::new(),
                };
            by_backend.insert(
                (**backend).clone(),
                Arc::new(Endpoints {
                    addresses,
                    next: AtomicUsize::new(0),
                }),
            );
        }
        Self { by_backend }
    }

    /// The endpoints of `backend` (none if it is unknown).
    pub fn get(&self, backend: &Backend) -> Option<Arc<Endpoints>> {
        self.by_backend.get(backend).cloned()
    }

    /// Keeps the round-robin position of backends whose endpoints did not
    /// change, so a sync does not send the next requests to the first one.
    pub fn carry_cursors_from(&self, old: &Backends) {
        for (backend, endpoints) in &self.by_backend {
            if let Some(previous) = old.by_backend.get(backend)
                && previous.addresses == endpoints.addresses
            {
                endpoints
                    .next
                    .store(previous.next.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// The ready addresses of one backend's Service port, sorted.
fn resolve(backend: &Backend, service: &Service, slices: &[Arc<EndpointSlice>]) -> Vec<SocketAddr> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(port) = ports.iter().find(|p| match &backend.port {
        ServicePort::Number(n) => p.port == *n,
        ServicePort::Name(name) => p.name.as_deref() == Some(name.as_str()),
    }) else {
        return Vec::new();
    };
    let port_name = port.name.clone().unwrap_or_default();
    let mut addresses = Vec::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        if slice.metadata.namespace.as_deref() != Some(backend.namespace.as_str())
            || labels
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                != Some(backend.service.as_str())
        {
            continue;
        }
        let Some(number) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    addresses.push(SocketAddr::new(ip, number));
                }
            }
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                   {"name": "admin", "port": 81}]},
            }))
            .unwrap(),
        )
    }

    fn slice(name: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn backend(port: ServicePort) -> Arc<Backend> {
        Arc::new(Backend {
            namespace: "default".into(),
            service: "web".into(),
            port,
        })
    }

    #[test]
    fn ports_resolve_by_number_or_name_to_ready_endpoints_only() {
        let by_number = backend(ServicePort::Number(80));
        let by_name = backend(ServicePort::Name("admin".into()));
        let missing = backend(ServicePort::Number(99));
        let slices = [
            slice(
                "a",
                json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                              {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}]),
            ),
            slice("b", json!([{"addresses": ["10.0.0.1"]}])),
        ];
        let backends = Backends::build(
            &[by_number.clone(), by_name.clone(), missing.clone()],
            &[service()],
            &slices,
        );
        let addrs = |b: &Backend| -> Vec<String> {
            backends
                .get(b)
                .unwrap()
                .addresses()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(addrs(&by_number), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert_eq!(addrs(&by_name), ["10.0.0.1:9090", "10.0.0.2:9090"]);
        assert!(addrs(&missing).is_empty());
    }

    #[test]
    fn each_attempt_starts_at_the_next_endpoint_and_tries_them_all() {
        let b = backend(ServicePort::Number(80));
        let backends = Backends::build(
            std::slice::from_ref(&b),
            &[service()],
            &[slice(
                "a",
                json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}]),
            )],
        );
        let endpoints = backends.get(&b).unwrap();
        let firsts: Vec<_> = (0..4).map(|_| endpoints.attempt_order()).collect();
        assert_eq!(firsts[0][0].to_string(), "10.0.0.1:8080");
        assert_eq!(firsts[1][0].to_string(), "10.0.0.2:8080");
        assert_eq!(firsts[3][0].to_string(), "10.0.0.1:8080");
        assert_eq!(firsts[1].len(), 3);
        assert_eq!(firsts[1][2].to_string(), "10.0.0.1:8080");
    }
}
