//! `status.loadBalancer` of served Ingresses: the node's address, written
//! only when it differs from what the Ingress already shows.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::net::IpAddr;

/// Whether `ingress` already shows exactly `ip`.
pub fn is_current(ingress: &Ingress, ip: IpAddr) -> bool {
    let shown: Vec<Option<&str>> = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().map(|i| i.ip.as_deref()).collect())
        .unwrap_or_default();
    shown == [Some(ip.to_string().as_str())]
}

/// Sets `ingress`'s address to `ip`.
pub async fn publish(
    client: &kube::Client,
    ingress: &Ingress,
    ip: IpAddr,
) -> Result<(), kube::Error> {
    let (Some(namespace), Some(name)) = (&ingress.metadata.namespace, &ingress.metadata.name)
    else {
        return Ok(());
    };
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_node_address_alone_is_current() {
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let with = |status: serde_json::Value| -> Ingress {
            serde_json::from_value(json!({"metadata": {"name": "a"}, "status": status})).unwrap()
        };
        assert!(is_current(
            &with(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}})),
            ip
        ));
        assert!(!is_current(&with(json!({"loadBalancer": {}})), ip));
        assert!(!is_current(
            &with(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}})),
            ip
        ));
    }
}
