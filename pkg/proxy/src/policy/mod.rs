//! NetworkPolicy enforcement (the counterpart of kube-router's netpol
//! controller in k3s). Informers on NetworkPolicies, Pods and Namespaces
//! feed a pure [`model`] (per selected local pod: what may reach it, what it
//! may reach), which [`ruleset`] renders as the nftables table
//! `ip kite-netpol`; pods no policy selects are not in it and stay
//! unrestricted.
//!
//! The table hooks `forward` and `input` at filter priority, after the
//! service proxy's DNAT, so rules see pod addresses, never ClusterIPs; with
//! br_netfilter, traffic between pods on the bridge passes the same hooks.
//! Peer pods are named sets, so a relabelled pod or namespace changes set
//! elements only; allowed traffic `return`s from a pod's chain and the rest
//! is dropped (as kube-router and Calico do: the client times out).
//!
//! Syncs are batched: changes within 30 ms become one `nft -f` transaction
//! that touches only what changed (a peer set's elements for a relabelled
//! pod, one pod's chain and map element for a newly selected pod, the
//! chains of the pods a changed policy selects); nothing changed (most pod
//! status churn) applies nothing. The first sync (and any after a failed
//! one) rewrites the whole table, replacing whatever an earlier run left;
//! [`remove`] deletes the table when network policy is disabled. What it cannot enforce (IPv6 blocks, named ports on ipBlocks)
//! is logged and reported as a Warning event `NotEnforced` on the policy,
//! once per change; the rest of the policy is enforced.

pub mod model;
pub mod ruleset;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kite_client::Informer;
use kube::api::Api;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Changes closer together than this go into one sync.
const BATCH: Duration = Duration::from_millis(30);

/// What network policy enforcement needs.
#[derive(Clone)]
pub struct Config {
    /// Client for the API.
    pub client: kube::Client,
    /// This node's name: only its pods are enforced here.
    pub node_name: String,
    /// The node-local port of the cluster DNS (always open to pods).
    pub dns_port: Option<u16>,
}

/// Deletes the table (network policy disabled: nothing stale stays).
pub fn remove() -> std::io::Result<()> {
    kite_network::nft::apply(&ruleset::remove())
}

/// The reference an event about `policy` names.
fn reference(policy: &NetworkPolicy) -> ObjectReference {
    ObjectReference {
        api_version: Some("networking.k8s.io/v1".into()),
        kind: Some("NetworkPolicy".into()),
        namespace: policy.metadata.namespace.clone(),
        name: policy.metadata.name.clone(),
        uid: policy.metadata.uid.clone(),
        resource_version: policy.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Enforces the cluster's NetworkPolicies until the future is dropped.
pub async fn run(config: Config) {
    let policies: Informer<NetworkPolicy> = Informer::new(Api::all(config.client.clone()));
    let pods: Informer<Pod> = Informer::new(Api::all(config.client.clone()));
    let namespaces: Informer<Namespace> = Informer::new(Api::all(config.client.clone()));
    let changed = Arc::new(Notify::new());
    {
        let changed = changed.clone();
        policies.on_change(move |_| changed.notify_one());
    }
    {
        let changed = changed.clone();
        pods.on_change(move |_| changed.notify_one());
    }
    {
        let changed = changed.clone();
        namespaces.on_change(move |_| changed.notify_one());
    }
    let recorder = kite_client::events::Recorder::new(
        config.client.clone(),
        "network-policy-controller",
        &config.node_name,
    );
    let settings = ruleset::Settings {
        dns_port: config.dns_port,
    };
    let sync = {
        let policies = policies.clone();
        let pods = pods.clone();
        let namespaces = namespaces.clone();
        async move {
            policies.wait_synced().await;
            pods.wait_synced().await;
            namespaces.wait_synced().await;
            let mut applied: Option<ruleset::Rendered> = None;
            let mut warned: BTreeSet<(String, String)> = BTreeSet::new();
            loop {
                let started = Instant::now();
                let model = model::build(
                    &policies.list(),
                    &pods.list(),
                    &namespaces.list(),
                    &config.node_name,
                );
                for (policy, what) in model.warnings.difference(&warned) {
                    tracing::warn!(%policy, %what, "network policy not fully enforced");
                    if let Some(object) = policies.get(policy) {
                        recorder.publish(
                            reference(&object),
                            kite_client::events::WARNING,
                            "NotEnforced",
                            what,
                        );
                    }
                }
                warned = model.warnings.clone();
                let rendered = ruleset::render(&model, &settings);
                let script = applied
                    .as_ref()
                    .and_then(|old| ruleset::update(old, &rendered))
                    .unwrap_or_else(|| ruleset::full(&rendered));
                if !script.is_empty() {
                    let result =
                        tokio::task::spawn_blocking(move || kite_network::nft::apply(&script))
                            .await
                            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                    if let Err(error) = result {
                        tracing::warn!(%error, "cannot sync the network policy rules; rewriting the table next");
                        applied = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    tracing::debug!(
                        pods = model.pods.len(),
                        took = ?started.elapsed(),
                        "network policy rules synced"
                    );
                }
                applied = Some(rendered);
                changed.notified().await;
                tokio::time::sleep(BATCH).await;
            }
        }
    };
    tokio::join!(policies.run(), pods.run(), namespaces.run(), sync);
}
