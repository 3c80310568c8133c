//! `status.loadBalancer` of served Ingresses: the node's address, written
//! only when it differs from what the Ingress already shows, and taken away
//! again from an Ingress kite stops serving (its class changed).

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

/// Sets `ingress`'s address to `ip`, or clears it when `ip` is `None`.
pub async fn publish(
    client: &kube::Client,
    ingress: &Ingress,
    ip: Option<IpAddr>,
) -> Result<(), kube::Error> {
    let (Some(namespace), Some(name)) = (&ingress.metadata.namespace, &ingress.metadata.name)
    else {
        return Ok(());
    };
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let addresses = match ip {
        Some(ip) => json!([{"ip": ip.to_string()}]),
        None => json!(null),
    };
    let patch = json!({"status": {"loadBalancer": {"ingress": addresses}}});
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
