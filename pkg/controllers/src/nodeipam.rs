//! Node IPAM, as kube-controller-manager's `nodeipam` controller with
//! `--allocate-node-cidrs`: every Node without `spec.podCIDR` gets the next
//! free `/24` of the cluster CIDR (`spec.podCIDR` and `spec.podCIDRs`), which
//! its kubelet hands out to pods. The CIDRs in use are read back from the
//! Node objects, so a restart never hands one out twice; a deleted Node's
//! CIDR is free again.

use crate::{Config, Result, work};
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Node;
use kite_client::{Informer, WorkQueue};
use kube::api::{Api, Patch, PatchParams};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The size of each node's range.
pub const NODE_CIDR_PREFIX: u8 = 24;

/// The node IPAM controller.
pub struct Controller {
    client: kube::Client,
    cluster_cidr: Ipv4Net,
    nodes: Informer<Node>,
    queue: WorkQueue,
    /// CIDRs given out whose Node update the cache may not show yet.
    given: Arc<Mutex<HashMap<String, Ipv4Net>>>,
}

impl Controller {
    /// A controller allocating from `cluster_cidr`, or `None` when there is
    /// none (or it is IPv6, which kite does not allocate yet).
    pub fn new(config: &Config, nodes: Informer<Node>) -> Option<Self> {
        let IpNet::V4(cluster_cidr) = config.cluster_cidr? else {
            tracing::warn!("node IPAM: only IPv4 cluster CIDRs are allocated");
            return None;
        };
        if cluster_cidr.prefix_len() > NODE_CIDR_PREFIX {
            tracing::warn!(%cluster_cidr, "node IPAM: the cluster CIDR is smaller than a /24");
            return None;
        }
        let controller = Self {
            client: config.client.clone(),
            cluster_cidr: cluster_cidr.trunc(),
            nodes,
            queue: WorkQueue::new(),
            given: Arc::default(),
        };
        let queue = controller.queue.clone();
        controller.nodes.on_change(move |change| {
            if let Some(name) = &change.object().metadata.name {
                queue.add(name);
            }
        });
        Some(controller)
    }

    /// Runs until dropped.
    pub async fn run(self) {
        self.nodes.wait_synced().await;
        work("nodeipam", self.queue.clone(), |name| self.reconcile(name)).await;
    }

    async fn reconcile(&self, name: String) -> Result<Option<Duration>> {
        let Some(node) = self.nodes.get(&name) else {
            self.given
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            return Ok(None);
        };
        let has_cidr = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty());
        if has_cidr {
            return Ok(None);
        }
        let mut used: BTreeSet<Ipv4Net> = self
            .nodes
            .list()
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(name.as_str()))
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok())
            .collect();
        let previously = {
            let given = self.given.lock().unwrap_or_else(PoisonError::into_inner);
            used.extend(given.iter().filter(|(n, _)| **n != name).map(|(_, c)| *c));
            given.get(&name).copied()
        };
        let Some(cidr) = previously
            .filter(|c| !used.contains(c))
            .or_else(|| next_free(self.cluster_cidr, &used))
        else {
            tracing::warn!(node = %name, cluster_cidr = %self.cluster_cidr, "no pod CIDR left for the node");
            return Ok(Some(Duration::from_secs(30)));
        };
        self.given
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), cidr);
        let patch = serde_json::json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        let api: Api<Node> = Api::all(self.client.clone());
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(node = %name, %cidr, "allocated the node's pod CIDR");
        Ok(None)
    }
}

/// The first `/24` of `cluster` not in `used`.
pub fn next_free(cluster: Ipv4Net, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    cluster.subnets(NODE_CIDR_PREFIX).ok()?.find(|candidate| {
        !used
            .iter()
            .any(|u| u.contains(candidate) || candidate.contains(u))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn the_first_free_slash_24_is_taken() {
        let cluster = net("10.42.0.0/16");
        let mut used = BTreeSet::new();
        assert_eq!(next_free(cluster, &used), Some(net("10.42.0.0/24")));
        used.insert(net("10.42.0.0/24"));
        used.insert(net("10.42.2.0/24"));
        assert_eq!(next_free(cluster, &used), Some(net("10.42.1.0/24")));
    }

    #[test]
    fn a_full_cluster_cidr_gives_nothing() {
        let cluster = net("10.42.0.0/24");
        let used: BTreeSet<_> = [net("10.42.0.0/24")].into();
        assert_eq!(next_free(cluster, &used), None);
    }
}
