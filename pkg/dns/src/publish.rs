//! The `kube-system/kube-dns` Service (kube's conventional name, with the
//! fixed `--cluster-dns` ClusterIP and no selector) and the EndpointSlice
//! that points it at this node's DNS listener, so the service proxy DNATs
//! pods' queries to kite.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

/// The Service's namespace and name.
pub const NAMESPACE: &str = "kube-system";
/// The Service's name (what kubeadm and k3s call it).
pub const SERVICE: &str = "kube-dns";
/// The EndpointSlice kite writes for it.
pub const SLICE: &str = "kube-dns-kite";

/// The Service object.
pub fn service(cluster_ip: IpAddr, target_port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "kite-dns",
            },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip.to_string(),
            "clusterIPs": [cluster_ip.to_string()],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": target_port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": target_port},
            ],
        },
    })
}

/// The EndpointSlice object.
pub fn slice(listen: SocketAddr, node_name: &str) -> serde_json::Value {
    let family = if listen.is_ipv4() { "IPv4" } else { "IPv6" };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SLICE,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": "kite-dns",
            },
        },
        "addressType": family,
        "endpoints": [{
            "addresses": [listen.ip().to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node_name,
        }],
        "ports": [
            {"name": "dns", "port": listen.port(), "protocol": "UDP"},
            {"name": "dns-tcp", "port": listen.port(), "protocol": "TCP"},
        ],
    })
}

/// Creates the Service if absent and creates or refreshes the EndpointSlice.
pub async fn ensure(
    client: &kube::Client,
    cluster_ip: IpAddr,
    listen: SocketAddr,
    node_name: &str,
) -> Result<(), kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let wanted: Service = serde_json::from_value(service(cluster_ip, listen.port()))
        .map_err(kube::Error::SerdeError)?;
    // Look first: creating a Service whose fixed ClusterIP is taken (by this
    // very Service, after a restart) is refused as Invalid, not AlreadyExists.
    let current = match services.get_opt(SERVICE).await? {
        Some(current) => Some(current),
        None => match services.create(&PostParams::default(), &wanted).await {
            Ok(_) => {
                tracing::info!(%cluster_ip, "created the kube-dns Service");
                None
            }
            // Another server created it meanwhile.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Some(services.get(SERVICE).await?)
            }
            Err(error) => return Err(error),
        },
    };
    if let Some(current) = current {
        let ip = current.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
        if ip != Some(cluster_ip.to_string().as_str()) {
            tracing::warn!(
                existing = ?ip,
                %cluster_ip,
                "kube-system/kube-dns exists with another ClusterIP; pods' resolv.conf names --cluster-dns"
            );
        }
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let mut wanted: EndpointSlice =
        serde_json::from_value(slice(listen, node_name)).map_err(kube::Error::SerdeError)?;
    match slices.get_opt(SLICE).await? {
        None => {
            slices.create(&PostParams::default(), &wanted).await?;
        }
        Some(current) => {
            let same = current.endpoints == wanted.endpoints && current.ports == wanted.ports;
            if !same {
                wanted.metadata.resource_version = current.metadata.resource_version;
                slices
                    .replace(SLICE, &PostParams::default(), &wanted)
                    .await?;
            }
        }
    }
    Ok(())
}
