//! kite's workload controllers, as kube-controller-manager runs them.
//!
//! Start at [`run`]: it creates the informers the controllers share, then runs
//! each controller, one module per controller: [`serviceaccount`] (the `default`
//! ServiceAccount and `kube-root-ca.crt` in every namespace), [`replicaset`],
//! [`deployment`], the garbage collector [`gc`] and node IPAM ([`nodeipam`]). Each controller keeps a work
//! queue of object keys fed by informer handlers and a `reconcile` that reads
//! the informers' caches and writes through the API, like kube-runtime
//! controllers: reconciles are idempotent and may requeue themselves.

pub mod deployment;
pub mod gc;
pub mod nodeipam;
pub mod replicaset;
pub mod serviceaccount;
mod util;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kite_client::{Informer, WorkQueue};
use kube::api::Api;
use std::future::Future;
use std::time::Duration;

/// What the controllers need.
#[derive(Clone)]
pub struct Config {
    /// Client for the API (in-process inside `kite server`).
    pub client: kube::Client,
    /// PEM of the CA that signs the apiserver's certificate, published in
    /// every namespace's `kube-root-ca.crt` ConfigMap.
    pub root_ca_pem: String,
    /// Host name reported in events.
    pub host: String,
    /// The cluster's pod range, cut into each node's `spec.podCIDR`
    /// (`None`: nodes get no pod CIDR from kite).
    pub cluster_cidr: Option<ipnet::IpNet>,
}

/// Errors a reconcile can end with; the key is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs every controller until the future is dropped.
pub async fn run(config: Config) {
    let client = config.client.clone();
    let pods = Informer::new(Api::<Pod>::all(client.clone()));
    let replicasets = Informer::new(Api::<ReplicaSet>::all(client.clone()));
    let deployments = Informer::new(Api::<Deployment>::all(client.clone()));

    let sa = serviceaccount::Controller::new(&config);
    let rs = replicaset::Controller::new(&config, replicasets.clone(), pods.clone());
    let deploy = deployment::Controller::new(&config, deployments.clone(), replicasets.clone());
    let gc = gc::GarbageCollector::new(&config);
    let nodes = Informer::new(Api::<Node>::all(client.clone()));
    let ipam = nodeipam::Controller::new(&config, nodes.clone());

    tokio::join!(
        pods.run(),
        replicasets.run(),
        deployments.run(),
        sa.run(),
        rs.run(),
        deploy.run(),
        gc.run(),
        nodes.run(),
        async move {
            if let Some(ipam) = ipam {
                ipam.run().await;
            }
        },
    );
}

/// Takes keys from `queue` one at a time and reconciles them; a reconcile asks
/// for a later look by returning a delay, and failures retry with back-off.
async fn work<F, Fut>(name: &'static str, queue: WorkQueue, reconcile: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<Duration>>>,
{
    let mut failures: std::collections::HashMap<String, u32> = Default::default();
    loop {
        let key = queue.next().await;
        match reconcile(key.clone()).await {
            Ok(later) => {
                failures.remove(&key);
                if let Some(delay) = later {
                    queue.add_after(&key, delay);
                }
            }
            Err(error) => {
                let count = failures.entry(key.clone()).or_default();
                *count = count.saturating_add(1);
                let delay =
                    Duration::from_millis(5 << (*count).min(12)).min(Duration::from_secs(60));
                tracing::warn!(controller = name, %key, %error, "reconcile failed; retrying");
                queue.add_after(&key, delay);
            }
        }
        queue.done(&key);
    }
}
