//! kite's service proxy (kube-proxy in nftables mode): Services and
//! EndpointSlices from the API become one nftables table of kite's own
//! ([`ruleset`]), so ClusterIPs, NodePorts, external and load-balancer IPs
//! reach their endpoints by DNAT in the kernel, and ports without endpoints
//! refuse connections at once.
//!
//! Syncs are batched: changes arriving within a short window become one
//! `nft` transaction that rewrites only the service ports that changed. The
//! first sync (and any failed one) rewrites the whole table.
//!
//! Module map: [`model`] (Services and slices → service ports with their
//! chosen endpoints), [`ruleset`] (service ports → nft scripts), [`policy`]
//! (NetworkPolicy enforcement, a task and a table of its own).

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod model;
pub mod policy;
pub mod ruleset;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kite_client::Informer;
use kube::api::Api;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Changes closer together than this go into one sync.
const BATCH: Duration = Duration::from_millis(30);

/// What the proxy needs.
#[derive(Clone)]
pub struct Config {
    /// Client for the API.
    pub client: kube::Client,
    /// This node's name (for the `Local` traffic policies).
    pub node_name: String,
    /// The cluster's pod range.
    pub cluster_cidr: Option<Ipv4Net>,
}

/// Makes sure bridged pod traffic passes netfilter (so replies between pods
/// on one bridge are un-DNATed); tells whether it does.
fn bridged_traffic_filtered() -> bool {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    match std::fs::read_to_string(path) {
        Ok(value) if value.trim() == "1" => true,
        Ok(_) => std::fs::write(path, "1").is_ok(),
        Err(_) => false,
    }
}

/// Runs the proxy until the future is dropped.
pub async fn run(config: Config) {
    let services: Informer<Service> = Informer::new(Api::all(config.client.clone()));
    let slices: Informer<EndpointSlice> = Informer::new(Api::all(config.client.clone()));
    let changed = Arc::new(Notify::new());
    {
        let changed = changed.clone();
        services.on_change(move |_| changed.notify_one());
    }
    {
        let changed = changed.clone();
        slices.on_change(move |_| changed.notify_one());
    }
    let masquerade_all = !bridged_traffic_filtered();
    if masquerade_all {
        tracing::warn!(
            "bridged traffic bypasses netfilter (no br_netfilter): masquerading all service traffic"
        );
    }
    let settings = ruleset::Settings {
        cluster_cidr: config.cluster_cidr,
        masquerade_all,
    };
    let sync = {
        let services = services.clone();
        let slices = slices.clone();
        async move {
            services.wait_synced().await;
            slices.wait_synced().await;
            let mut applied: Option<BTreeMap<String, ruleset::Rendered>> = None;
            loop {
                let started = Instant::now();
                let ports =
                    model::all_service_ports(&services.list(), &slices.list(), &config.node_name);
                let rendered: BTreeMap<String, ruleset::Rendered> = ports
                    .iter()
                    .map(|(id, port)| (id.clone(), ruleset::render(port, &settings)))
                    .collect();
                let script = match &applied {
                    Some(old) => ruleset::update(old, &rendered),
                    None => ruleset::full(&rendered),
                };
                if script.is_empty() {
                    applied = Some(rendered);
                } else {
                    let result =
                        tokio::task::spawn_blocking(move || kite_network::nft::apply(&script))
                            .await
                            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                    match result {
                        Ok(()) => {
                            tracing::debug!(
                                ports = rendered.len(),
                                took = ?started.elapsed(),
                                "service rules synced"
                            );
                            applied = Some(rendered);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot sync the service rules; rewriting the table next");
                            applied = None;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
                changed.notified().await;
                tokio::time::sleep(BATCH).await;
            }
        }
    };
    tokio::join!(services.run(), slices.run(), sync);
}
