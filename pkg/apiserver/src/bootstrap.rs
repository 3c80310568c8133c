//! Objects every cluster has from its first start: the system namespaces and
//! the `default/kubernetes` Service with the Endpoints and EndpointSlice that
//! point at this API server.

use crate::objects;
use crate::registry::Registry;
use crate::strategy;
use kite_store::Backend;
use serde_json::{Value, json};
use std::net::IpAddr;

/// Where the API server can be reached, for the `kubernetes` Service.
#[derive(Clone, Debug)]
pub struct ApiEndpoint {
    /// ClusterIP of the `kubernetes` Service (first address of the service CIDR).
    pub service_ip: IpAddr,
    /// The address pods reach the API server on (the advertise address).
    pub address: IpAddr,
    /// The API server's port.
    pub port: u16,
}

/// Creates the system objects that do not exist yet and refreshes the API endpoints.
pub async fn ensure(
    store: &dyn Backend,
    registry: &Registry,
    endpoint: &ApiEndpoint,
) -> Result<(), kite_store::Error> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create_if_absent(
            store,
            registry,
            "",
            "namespaces",
            None,
            json!({"metadata": {"name": ns}}),
        )
        .await?;
    }
    for (name, value, description) in kite_api::admission::priority::SYSTEM_CLASSES {
        create_if_absent(
            store,
            registry,
            "scheduling.k8s.io",
            "priorityclasses",
            None,
            json!({"metadata": {"name": name}, "value": value, "description": description,
                   "preemptionPolicy": "PreemptLowerPriority", "globalDefault": false}),
        )
        .await?;
    }
    let family = if endpoint.service_ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let service = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": endpoint.service_ip.to_string(),
            "clusterIPs": [endpoint.service_ip.to_string()],
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": endpoint.port}],
        },
    });
    create_if_absent(store, registry, "", "services", Some("default"), service).await?;
    let address_type = if endpoint.address.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let endpoints = json!({
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": endpoint.address.to_string()}],
            "ports": [{"name": "https", "port": endpoint.port, "protocol": "TCP"}],
        }],
    });
    put(store, registry, "", "endpoints", Some("default"), endpoints).await?;
    let slice = json!({
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": address_type,
        "endpoints": [{"addresses": [endpoint.address.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": endpoint.port, "protocol": "TCP"}],
    });
    put(
        store,
        registry,
        "discovery.k8s.io",
        "endpointslices",
        Some("default"),
        slice,
    )
    .await
}

/// The preferred version of `plural.group`, if served.
fn preferred(
    registry: &Registry,
    group: &str,
    plural: &str,
) -> Option<std::sync::Arc<kite_api::ResourceInfo>> {
    registry
        .all()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural && r.preferred)
}

async fn create_if_absent(
    store: &dyn Backend,
    registry: &Registry,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    mut obj: Value,
) -> Result<(), kite_store::Error> {
    let Some(resource) = preferred(registry, group, plural) else {
        return Ok(());
    };
    let key = objects::key(&resource, namespace, objects::name(&obj));
    if store.get(&key, 0).await?.1.is_some() {
        return Ok(());
    }
    strategy::prepare_for_create(&resource, &mut obj, namespace);
    match store.create(&key, objects::encode(&obj), 0).await {
        Ok(_) | Err(kite_store::Error::KeyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the object or, if it differs, replaces its content (keeping uid and creation time).
async fn put(
    store: &dyn Backend,
    registry: &Registry,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
    mut obj: Value,
) -> Result<(), kite_store::Error> {
    let Some(resource) = preferred(registry, group, plural) else {
        return Ok(());
    };
    let key = objects::key(&resource, namespace, objects::name(&obj));
    match store.get(&key, 0).await?.1 {
        None => {
            strategy::prepare_for_create(&resource, &mut obj, namespace);
            match store.create(&key, objects::encode(&obj), 0).await {
                Ok(_) | Err(kite_store::Error::KeyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(kv) => {
            let Ok(old) = objects::decode(&kv.value, kv.mod_revision) else {
                return Ok(());
            };
            if let Some(ns) = namespace {
                objects::metadata_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
            strategy::prepare_for_update(&resource, &mut obj, &old);
            objects::set_resource_version(&mut obj, kv.mod_revision);
            if obj == old {
                return Ok(());
            }
            store
                .update(&key, objects::encode(&obj), kv.mod_revision, 0)
                .await
                .map(|_| ())
        }
    }
}
