//! kite's service proxy (kube-proxy in nftables mode): Services and
//! EndpointSlices from the API become one nftables table of kite's own
//! ([`ruleset`]), so ClusterIPs, NodePorts, external and load-balancer IPs
//! reach their endpoints by DNAT in the kernel, and ports without endpoints
//! refuse connections at once.
//!
//! Syncs are batched: changes arriving within a short window become one
//! transaction, sent straight to the kernel, that rewrites only the service
//! ports that changed. The first sync (and any failed one) rewrites the whole
//! table with `nft`.
//!
//! Module map: [`changes`] (which Services a sync must recompute), [`model`]
//! (Services and slices → service ports with their chosen endpoints),
//! [`ruleset`] (service ports → rules, as nft scripts or netlink batches),
//! [`policy`] (NetworkPolicy enforcement, a task and a table of its own).

// Tests may unwrap; library code may not (checked by the non-test clippy pass).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod changes;
pub mod model;
pub mod policy;
pub mod ruleset;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kite_client::Informer;
use kube::api::Api;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// The rendered rules of each Service (`namespace/name`), by service port ID.
type Applied = HashMap<String, BTreeMap<String, ruleset::Rendered>>;

/// What a successful sync wrote.
enum Synced {
    /// The whole table.
    Everything(Applied),
    /// The rules of these Services (none: the Service is gone).
    Changed(Applied),
}

/// Runs the proxy until the future is dropped.
pub async fn run(config: Config) {
    let services: Informer<Service> = Informer::new(Api::all(config.client.clone()));
    let slices: Informer<EndpointSlice> = Informer::new(Api::all(config.client.clone()));
    let wake = Arc::new(Notify::new());
    let changed = Arc::new(changes::Changed::default());
    {
        let (wake, changed) = (wake.clone(), changed.clone());
        services.on_change(move |change| {
            changed.service(change);
            wake.notify_one();
        });
    }
    {
        let (wake, changed) = (wake.clone(), changed.clone());
        slices.on_change(move |change| {
            changed.slice(change);
            wake.notify_one();
        });
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
            let mut applied: Option<Applied> = None;
            loop {
                let started = Instant::now();
                let keys = changed.take();
                let result = match &applied {
                    Some(old) => {
                        let (before, after) =
                            recompute(old, &keys, &services, &slices, &config, &settings);
                        let ops = ruleset::update(&flatten(&before), &flatten(&after));
                        let result = if ops.is_empty() {
                            Ok(())
                        } else {
                            let batch = ruleset::batch(&ops);
                            joined(tokio::task::spawn_blocking(move || batch.commit()).await)
                        };
                        result.map(|()| (Synced::Changed(after), ops.len()))
                    }
                    None => {
                        let all = everything(&services, &slices, &config, &settings);
                        let script = ruleset::full(&flatten(&all));
                        joined(
                            tokio::task::spawn_blocking(move || kite_network::nft::apply(&script))
                                .await,
                        )
                        .map(|()| (Synced::Everything(all), usize::MAX))
                    }
                };
                match result {
                    Ok((synced, commands)) => {
                        if commands > 0 {
                            tracing::debug!(
                                services = keys.len(),
                                commands,
                                took = ?started.elapsed(),
                                "service rules synced"
                            );
                        }
                        applied = Some(match synced {
                            Synced::Everything(all) => all,
                            Synced::Changed(after) => {
                                let mut next = applied.take().unwrap_or_default();
                                for (key, ports) in after {
                                    if ports.is_empty() {
                                        next.remove(&key);
                                    } else {
                                        next.insert(key, ports);
                                    }
                                }
                                next
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot sync the service rules; rewriting the table next");
                        applied = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
                wake.notified().await;
                tokio::time::sleep(BATCH).await;
            }
        }
    };
    tokio::join!(services.run(), slices.run(), sync);
}

fn joined(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    result.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// The rules of `service` with its `slices`.
fn rules_of(
    service: &Service,
    slices: &[&EndpointSlice],
    config: &Config,
    settings: &ruleset::Settings,
) -> BTreeMap<String, ruleset::Rendered> {
    model::service_ports(service, slices, &config.node_name)
        .into_iter()
        .map(|port| {
            let rendered = ruleset::render(&port, settings);
            (port.id, rendered)
        })
        .collect()
}

/// Every Service's rules (the first sync and any after a failure).
fn everything(
    services: &Informer<Service>,
    slices: &Informer<EndpointSlice>,
    config: &Config,
    settings: &ruleset::Settings,
) -> Applied {
    let slices = slices.list();
    let by_service = by_service(&slices);
    services
        .list()
        .iter()
        .filter_map(|service| {
            let key = kite_client::key_of(&service.metadata);
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            let rules = rules_of(service, slices, config, settings);
            (!rules.is_empty()).then_some((key, rules))
        })
        .collect()
}

/// The applied and the current rules of the Services in `keys`.
fn recompute(
    applied: &Applied,
    keys: &HashSet<String>,
    services: &Informer<Service>,
    slices: &Informer<EndpointSlice>,
    config: &Config,
    settings: &ruleset::Settings,
) -> (Applied, Applied) {
    if keys.is_empty() {
        return Default::default();
    }
    let slices = slices.filter(|s| changes::service_of(s).is_some_and(|k| keys.contains(&k)));
    let by_service = by_service(&slices);
    let mut before = Applied::new();
    let mut after = Applied::new();
    for key in keys {
        if let Some(old) = applied.get(key) {
            before.insert(key.clone(), old.clone());
        }
        let rules = match services.get(key) {
            Some(service) => {
                let mine = by_service.get(key).map(Vec::as_slice).unwrap_or_default();
                rules_of(&service, mine, config, settings)
            }
            None => BTreeMap::new(),
        };
        after.insert(key.clone(), rules);
    }
    (before, after)
}

/// The slices of each Service (`namespace/name`).
fn by_service(slices: &[Arc<EndpointSlice>]) -> HashMap<String, Vec<&EndpointSlice>> {
    let mut out: HashMap<String, Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        if let Some(key) = changes::service_of(slice) {
            out.entry(key).or_default().push(slice);
        }
    }
    out
}

/// Every service port's rules, by port ID (unique across Services).
fn flatten(applied: &Applied) -> BTreeMap<String, ruleset::Rendered> {
    applied
        .values()
        .flat_map(|ports| ports.iter().map(|(id, r)| (id.clone(), r.clone())))
        .collect()
}
